"""The user's Convolution, Pooling and tensor-input Affine each alone against Keras's Conv2D, MaxPooling2D and
Flatten + Dense, in float64, at shapes that expose the chapter's traps: H != W, FN != FH, C > 1, stride 2, pad 1,
overlapping windows (stride < filter), batch sizes 1 and 3, a square input and windows that do not overlap (the
evidence parity.diagnosis.conv_traps reads), and max-pooling ties: the cases and their seeded inputs are in
parity.compare.probe_inputs. Keras's side is a parity.keras_side.layer_reference.KerasLayers (or a recording's).
Pooling is probed without padding: the book's Pooling computes out_h without pad (it pools unpadded maps only).
"""

from __future__ import annotations

import inspect

import numpy as np

from parity.compare.diff import ERROR, WARNING
from parity.compare.findings import Finding
from parity.compare.probe import Probe as _Probe
from parity.compare.probe_inputs import Case, conv_inputs, pool_inputs, tensor_affine_inputs
from parity.diagnosis import conv_traps as traps
from parity.diagnosis.mismatch import classify
from parity.diagnosis.referee import referee as by_differences
from parity.keras_side.layer_reference import LIVE, KerasLayers
from parity.settings.tolerances import within
from parity.user_code import guard
from parity.user_code.guard import UserCodeError
from parity.user_code.protocol import construct

__all__ = ["probe_image_layer", "probe_tensor_affine"]

RTOL, ATOL = traps.RTOL, traps.ATOL


def _drive(probe: _Probe, cls, name: str, args: tuple, run: traps.Run) -> None:
    """Build the layer, forward, backward (and read dW, db) through the guard; a failure becomes run.error."""
    a, kw = construct(cls, name, *args)
    try:
        layer = guard.call(cls, "__init__", *a, book=name, kwargs=kw)
        x_in, dout_in = run.x.copy(), run.dout.copy()
        run.ours["forward"] = guard.call(layer, "forward", x_in, book=name, expect=run.theirs["forward"].shape)
        probe.check_unchanged("forward", {"x": run.x}, {"x": x_in})
        run.ours["dx"] = guard.call(layer, "backward", dout_in, book=name, expect=run.x.shape)
        probe.check_unchanged("backward", {"dout": run.dout}, {"dout": dout_in})
        if run.W is not None:
            run.ours["dW"], run.ours["db"] = guard.gradients(layer, guard.held_array(layer, args[0]),
                                                             guard.held_array(layer, args[1]), name)
    except UserCodeError as err:
        run.error, run.failure = str(err), err


def _weighted(cls, name: str, args: tuple, x: np.ndarray, dout: np.ndarray) -> float:
    """sum(forward(x) * dout) of a freshly built layer, through the guard: the referee's scalar."""
    a, kw = construct(cls, name, *args)
    layer = guard.call(cls, "__init__", *a, book=name, kwargs=kw)
    return float(np.sum(guard.call(layer, "forward", x, book=name) * dout))


def _conv_run(keras: KerasLayers, case: Case, x, W, b, dout) -> traps.Run:
    out, theirs = keras.conv2d(W, b, x, dout, case.stride, case.pad)
    return traps.Run(case.name, x, dout, case.window[2:], case.stride, case.pad, theirs={"forward": out, **theirs},
                     W=W, b=b)


def _pool_run(keras: KerasLayers, case: Case, x, dout) -> traps.Run:
    out, dx = keras.max_pool(x, dout, case.window, case.stride, case.pad)
    return traps.Run(case.name, x, dout, case.window, case.stride, case.pad, theirs={"forward": out, "dx": dx})


def _args(name: str, run: traps.Run) -> tuple:
    if name == "Pooling":
        return (*run.window, run.stride, run.pad)
    return (run.W.copy(), run.b.copy(), run.stride, run.pad) if name == "Convolution" else (run.W.copy(), run.b.copy())


def _generic(probe: _Probe, cls, name: str, runs: dict[str, traps.Run], quantities: tuple[str, ...]) -> None:
    """Per quantity, the first case where it disagrees: classified, and for a gradient refereed by central
    differences of the user's own forward."""
    for what in quantities:
        for run in runs.values():
            if run.error is not None or traps.agrees(run.ours.get(what), run.theirs[what]):
                continue
            ours, theirs = run.ours[what], run.theirs[what]
            code, detail = classify(ours, theirs, RTOL, ATOL)
            if what == "forward" and code not in ("nan", "shape_mismatch"):
                code, detail = "forward_mismatch", f"forward differs from Keras's ({detail})"
            elif code not in ("nan", "shape_mismatch") and np.shape(ours) == np.shape(theirs):
                target = {"dx": run.x, "dW": run.W, "db": run.b}[what].copy()
                bad = ~within(ours, theirs, RTOL, ATOL)

                def f(target=target, what=what, run=run):
                    args = _args(name, run)
                    if what != "dx":
                        args = (target, args[1], *args[2:]) if what == "dW" else (args[0], target, *args[2:])
                    return _weighted(cls, name, args, target if what == "dx" else run.x.copy(), run.dout)
                detail += "; " + by_differences(f, target, ours, theirs, bad)
            probe.add(code, ERROR, f"{what} ({run.case}): {detail}", param=what)
            break


def probe_image_layer(cls, name: str, keras: KerasLayers = LIVE) -> list[Finding]:
    """Findings for a user's Convolution or Pooling: the traps named where the evidence shows them, else what
    differs, per quantity, at the first case that shows it. `keras` answers for Keras (or a recording does)."""
    probe = _Probe(name)
    conv = name == "Convolution"
    runs, tied = {}, None
    if conv:
        made = [_conv_run(keras, *inputs) for inputs in conv_inputs()]
    else:
        cases, tied = pool_inputs()
        made = [_pool_run(keras, *inputs) for inputs in cases]
    for run in made:
        _drive(probe, cls, name, _args(name, run), run)
        runs[run.case] = run
    quantities = ("forward", "dx", "dW", "db") if conv else ("forward", "dx")
    named = traps.hw_swapped(runs, quantities)
    if conv:
        named += traps.kernel_layout(runs, lambda run, kernel: keras.conv2d(kernel, run.b, run.x, run.dout,
                                                                            run.stride, run.pad)[0])
        named += traps.col2im_overwrite(runs) + traps.bias_missing(runs)
    else:
        named += traps.pool_routing(runs)
    for code, severity, message, param in named:
        probe.add(code, severity, message, param=param)
    failed = [r for r in runs.values() if r.error is not None]
    if failed and not any(code == "hw_swapped" for code, *_ in named):
        probe.error(failed[0].failure)
    elif not named and not failed:
        _generic(probe, cls, name, runs, quantities)
    if not conv and not probe.failed:
        probe.findings += _pool_conventions(cls, keras, tied, runs)
    return probe.findings


def _pool_conventions(cls, keras: KerasLayers, tied_inputs: tuple, runs: dict[str, traps.Run]) -> list[Finding]:
    """The 2016 printing's stride default, and how the class routes a tie: conventions, warnings at most."""
    probe = _Probe("Pooling")
    stride = inspect.signature(cls).parameters.get("stride") if _has_signature(cls) else None
    first = next(iter(runs.values()))
    if stride is not None and stride.default == 1 and first.error is None and traps.agrees(first.ours["forward"],
                                                                                           first.theirs["forward"]):
        probe.add("convention", WARNING, "Pooling's stride defaults to 1, as in the book's 2016 printing (2 since "
                  "2020; Keras's MaxPooling2D strides default to the pool size): Pooling(2, 2) alone would pool "
                  "overlapping windows. This run passes stride explicitly, so it is unaffected", param="stride")
    tied = traps.Run("ties", *tied_inputs, (2, 2), 2, 0)  # integers 0..2: most windows hold their maximum twice or more
    tied.theirs["forward"], tied.theirs["dx"] = keras.max_pool(tied.x, tied.dout, (2, 2), 2, 0)
    _drive(probe, cls, "Pooling", (2, 2, 2, 0), tied)
    if tied.error is None and not traps.agrees(tied.ours["dx"], tied.theirs["dx"]):
        totals = traps.agrees(traps.window_totals(tied.ours["dx"], tied), traps.window_totals(tied.theirs["dx"], tied))
        if totals:
            probe.add("pool_tie", WARNING, "where a window's maximum is not unique it sends its gradient to another "
                      "of the tied cells than TensorFlow does; each window's total agrees: a convention", param="dx")
        else:
            probe.add("pool_routing", ERROR, "where a window's maximum is not unique, the gradient it passes back in "
                      "total differs from dout (it must reach one cell, or be shared, never copied)", param="dx")
    return probe.findings


def _has_signature(cls) -> bool:
    try:
        inspect.signature(cls)
    except (TypeError, ValueError):
        return False
    return True


def probe_tensor_affine(cls, keras: KerasLayers = LIVE) -> list[Finding]:
    """An Affine fed an (N, C, H, W) map, as after a convolution: it flattens channel-major and returns dx in the
    input's shape, as the book's does (original_x_shape)."""
    probe = _Probe("Affine")
    x, W, b, dout = tensor_affine_inputs()
    out, theirs = keras.flatten_dense(W, b, x, dout)
    run = traps.Run("an (N, C, H, W) input of 3 x 2 x 3 x 4", x, dout, (1, 1), 1, 0, theirs={"forward": out, **theirs},
                    W=W, b=b)
    _drive(probe, cls, "Affine", (W.copy(), b.copy()), run)
    if run.error is not None:
        hint = "; keep x's shape in forward (self.original_x_shape = x.shape) and return dx.reshape(*self." \
               "original_x_shape)" if run.failure.kind == "shape" else ""
        probe.add("layer_error", ERROR, f"{run.failure} with {run.case} ({run.failure.where}){hint}",
                  param="tensor input", method=run.failure.method, where=run.failure.where or None)
        return probe.findings
    named = traps.flatten_order(run, lambda r, kernel: keras.flatten_dense(kernel, r.b, r.x, r.dout)[0])
    for code, severity, message, param in named:
        probe.add(code, severity, message, param=param)
    if not named:
        _generic(probe, cls, "Affine", {run.case: run}, ("forward", "dx", "dW", "db"))
    return probe.findings
