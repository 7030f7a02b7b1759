"""Each user layer alone against its Keras counterpart, at fixed points, in float64: which layer is wrong, and how.

For every class a user supplies: forward and backward at batch 1 and batch 4 (batch-axis bugs
show only at 4), at the activation's kink (ReLU at exactly 0), an activation also on a convolution's (N, C, H, W)
map where the model has convolutions, with checks that no input is
written into. Keras computes its side by TensorFlow autodiff (`keras_probes`, which keeps it for the
next submission), or a recording answers for it (`keras=`): each class draws its inputs from its own seeded
generator (compare.probe_inputs), so they do not depend on which other classes were given. For a backward
that disagrees, float64
central differences of the user's own forward referee: the backward is wrong (differences agree with
Keras), the forward follows another convention (they agree with the user), or a kink (one-sided
differences disagree).
"""

from __future__ import annotations

import numpy as np

from parity.user_code import guard
from parity.keras_side import layer_reference as keras_probes
from parity.compare.probe_inputs import (ACTIVATION_MAP, FORM_OF_LOSS, FORM_TRIAL, FORMS, activation_inputs,
                                         activation_map_inputs, affine_inputs, loss_cases, rng)
from parity.compare.diff import ERROR, INFO, WARNING
from parity.compare.findings import Finding
from parity.diagnosis.mismatch import classify, said_scale, scale_cause
from parity.diagnosis.referee import referee as by_differences
from parity.compare.conv_probes import probe_image_layer, probe_tensor_affine
from parity.compare.regularization_probes import MODE_PROBES, probe_mode_layer
from parity.compare.probe import ATOL, RTOL, Probe as _Probe
from parity.user_code.guard import UserCodeError

__all__ = ["probe_layers"]

def _forward_sum(cls, name: str, args: tuple, inputs: tuple, weight: np.ndarray) -> float:
    """sum(forward(*inputs) * weight) of a freshly built layer, through the guard: the referee's scalar."""
    layer = guard.call(cls, "__init__", *args, book=name)
    return float(np.sum(guard.call(layer, "forward", *inputs, book=name) * weight))


def _probe_activation(cls, name: str, keras, images: bool = False) -> list[Finding]:
    """An activation on (2, 5) rows, as after a Dense layer; where the model has convolutions, then on an (N, C, H, W)
    map too, judged by the same rules (kinks at exactly 0 included), its mismatches named by (filter, row, col)."""
    probe = _Probe(name)
    _activation_at(probe, cls, name, keras, *activation_inputs(name))
    if images and not probe.failed:
        _activation_at(probe, cls, name, keras, *activation_map_inputs(name),
                       on="an (N, C, H, W) map of " + " x ".join(map(str, ACTIVATION_MAP)))
    return probe.findings


def _activation_at(probe: _Probe, cls, name: str, keras, x: np.ndarray, dout: np.ndarray, on: str | None = None):
    theirs_out, theirs_dx = keras.activation(name, x, dout)
    done = probe.forward_backward(cls, (), x, dout, theirs_out, len(x), on=on)
    if done is None:
        return
    layer, dx = done
    x_fd = x.copy()

    def referee(bad):
        return by_differences(lambda: _forward_sum(cls, name, (), (x_fd.copy(),), dout), x_fd, dx, theirs_dx, bad)
    probe.compare("dx", dx, theirs_dx, len(x), referee, kink=(x == 0) if name == "Relu" else None,
                  kink_note=_mask_already(layer, x) if name == "Relu" else None, on=on)


def _mask_already(layer, x: np.ndarray) -> tuple[str, str] | None:
    """For a Relu whose forward kept `mask` equal to x <= 0 (the book's): advice that does not tell it to use that mask."""
    mask = getattr(layer, "__dict__", {}).get("mask")  # the instance's own attribute: no property of theirs runs
    if not (isinstance(mask, np.ndarray) and mask.shape == x.shape and np.array_equal(mask, x <= 0)):
        return None
    return ("; your mask is already x <= 0, so backward does not apply it there",
            "make backward zero dout through the mask forward kept: np.where(self.mask, 0, dout)")


def _probe_affine(cls, keras) -> list[Finding]:
    probe = _Probe("Affine")
    W, b, inputs = affine_inputs()
    runs = {}
    for batch, x, dout in inputs:
        theirs_out, theirs = keras.dense(W, b, x, dout)
        given = (W.copy(), b.copy())
        done = probe.forward_backward(cls, given, x, dout, theirs_out, batch)
        if done is None:
            return probe.findings
        layer, dx = done
        try:  # dW and db, whatever protocol the class follows (dW/db, or grads beside params)
            dW, db = guard.gradients(layer, guard.held_array(layer, given[0]), guard.held_array(layer, given[1]))
        except UserCodeError as err:
            probe.error(err)
            return probe.findings
        runs[batch] = ({"dx": dx, "dW": dW, "db": db}, theirs, x, dout)
    for what in ("dx", "dW", "db"):
        at1 = classify(runs[1][0][what], runs[1][1][what], RTOL, ATOL)
        at4 = classify(runs[4][0][what], runs[4][1][what], RTOL, ATOL)
        if at1 is None and at4 is not None:  # right for one sample, wrong for a batch: the batch axis
            code, detail = at4
            if code == "scale_factor":
                detail = f"ours = {float(detail):.6g} x Keras's: {scale_cause(float(detail), 4)}"
            probe.add("batch_reduction", ERROR, f"{what} matches Keras at batch size 1 but not at 4 ({detail})",
                      param=what)
            continue
        ours, theirs, x, dout = runs[1][0][what], runs[1][1][what], runs[1][2], runs[1][3]
        target = {"dx": x, "dW": W, "db": b}[what]

        def referee(bad, what=what, target=target, x=x, dout=dout, ours=ours, theirs=theirs):
            def f():
                w_, b_, x_ = (target if what == "dW" else W), (target if what == "db" else b), (target if what == "dx" else x)
                return _forward_sum(cls, "Affine", (w_.copy(), b_.copy()), (x_.copy(),), dout)
            return by_differences(f, target, ours, theirs, bad)
        probe.compare(what, ours, theirs, 1, referee)
    return probe.findings


def _judge_loss(cls, name: str, form: str | None, draw, keras, batches=(1, 4)) -> _Probe:
    """A loss layer: forward(y, t) -> scalar, backward(dout=1) -> dL/dy, against Keras's loss, with t in `form`."""
    probe = _Probe(name)
    for batch, y, ours_t, theirs_t, labels in loss_cases(name, form, draw, batches):
        theirs_loss, theirs_dy = keras.loss(name, form, y, theirs_t)
        layer = probe.call(cls, "__init__")
        if layer is None:
            return probe
        y_in, t_in = y.copy(), np.array(ours_t, copy=True)
        loss = probe.call(layer, "forward", y_in, t_in, expect=guard.SCALAR)
        probe.check_unchanged("forward", {"y": y, "t": ours_t}, {"y": y_in, "t": t_in})
        if loss is None:
            return probe
        loss = float(np.asarray(loss, dtype=np.float64).reshape(()))
        dy = probe.call(layer, "backward", *guard.loss_backward_args(layer), expect=y.shape)
        if dy is None:
            return probe  # a layer_error, and nothing to compare
        if name == "SoftmaxWithLoss" and not np.isclose(loss, theirs_loss, rtol=RTOL, atol=ATOL):
            probs = keras.softmax(y)
            book = -np.mean(np.log(probs[np.arange(batch), labels] + 1e-7))
            if np.isclose(loss, book, rtol=1e-12, atol=0):  # explains the difference; Keras's side stays Keras's
                probe.add("convention", WARNING, f"the loss is the book's -log(y + 1e-7): {loss:.12g} where Keras "
                          f"computes {float(theirs_loss):.12g} from the logits; within float32 tolerance, visible in "
                          "float64", param="loss")
                loss = theirs_loss  # named above; the gradient is still compared below
        if batch == 4 and 1 in batches and classify(loss, theirs_loss, RTOL, ATOL) is not None and not any(
                f.param == "loss" and f.severity == ERROR for f in probe.findings):  # right alone, wrong in a batch
            probe.add("batch_reduction", ERROR, f"the loss matches Keras at batch size 1 but not at 4 "
                      f"({said_scale(loss / float(theirs_loss), 4, 'loss', single=True)})", param="loss")
        else:
            probe.compare("loss", loss, theirs_loss, batch)
        y_fd = y.copy()

        def referee(bad, y_fd=y_fd, t=ours_t, dy=dy, theirs_dy=theirs_dy):
            return by_differences(lambda: float(np.asarray(guard.call(guard.call(cls, "__init__", book=name), "forward",
                                                                y_fd.copy(), np.array(t, copy=True), book=name))),
                            y_fd, dy, theirs_dy, bad)
        if batch == 4 and 1 in batches and classify(dy, theirs_dy, RTOL, ATOL) is not None and not any(
                f.param == "dy" for f in probe.findings):
            code, detail = classify(dy, theirs_dy, RTOL, ATOL)  # right for one sample, wrong for a batch
            if code == "scale_factor":
                detail = f"ours = {float(detail):.6g} x Keras's: {scale_cause(float(detail), 4)}"
            probe.add("batch_reduction", ERROR, f"dy matches Keras at batch size 1 but not at 4 ({detail})", param="dy")
            continue
        probe.compare("dy", dy, theirs_dy, batch, referee)
    return probe


def _probe_loss(cls, name: str, loss: str | None, keras) -> list[Finding]:
    """A loss layer against Keras's loss. A SoftmaxWithLoss gets t in the form the run's loss uses,
    and is also tried with the other form: which forms it accepts is said, and a class that accepts
    only the form this run does not use fails on that, once."""
    if name != "SoftmaxWithLoss":
        return _judge_loss(cls, name, None, rng(name), keras).findings
    accepts = [form for form in FORMS if not _judge_loss(cls, name, form, rng(name, FORM_TRIAL), keras, (4,)).failed]
    form = FORM_OF_LOSS.get(loss) or ("labels" if "labels" in accepts or not accepts else "one-hot")
    judged = _judge_loss(cls, name, form, rng(name), keras)
    if judged.failed and accepts and form not in accepts:
        other = accepts[0]
        why = FORM_OF_LOSS.get(loss) and f"the {FORMS[form]} this run's {loss} feeds it"
        first = next(f.message for f in judged.findings if f.severity == ERROR).removeprefix(f"{name}: ")
        labels = _Probe(name)
        labels.add("label_form", ERROR, f"accepts {FORMS[other]} but not {why or FORMS[form]}; with them: {first}",
                   param="t")
        return labels.findings
    if accepts:
        judged.add("label_form", INFO, f"accepts {' and '.join(FORMS[f] for f in accepts)}"
                   + (" only" if len(accepts) == 1 else ""), param="t")
    return judged.findings


def probe_layers(kit: dict, user_names: list[str], loss: str | None = None, keras=None,
                 images: bool = False) -> list[Finding]:
    """Findings for each of the user's classes (names as in the reference kit).

    `loss` is the run's loss: a SoftmaxWithLoss is judged with the labels it feeds (integer labels for
    sparse_categorical_crossentropy, one-hot for categorical_crossentropy); without it, with whichever
    form the class accepts. `keras` answers for Keras (a layer_reference.KerasLayers): Keras itself when
    None, a recording's answers otherwise. `images`: the run's model has convolutions, so its Affine (parity.compare.
    conv_probes) and its activations are also fed an (N, C, H, W) map.
    """
    keras = keras_probes.LIVE if keras is None else keras
    out = []
    for name in user_names:
        cls = kit[name]
        if name in keras.ACTIVATIONS:
            out += _probe_activation(cls, name, keras, images)
        elif name == "Affine":
            found = _probe_affine(cls, keras)
            out += found
            if images and not any(f.severity == ERROR for f in found):
                out += probe_tensor_affine(cls, keras)
        elif name in ("Convolution", "Pooling"):
            out += probe_image_layer(cls, name, keras)
        elif name in MODE_PROBES:  # chapter 6: Dropout, BatchNormalization (in training and in test mode)
            out += probe_mode_layer(cls, name, keras, images)
        else:
            out += _probe_loss(cls, name, loss, keras)
    return out
