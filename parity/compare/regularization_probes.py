"""The user's Dropout and BatchNormalization each alone against Keras's, in float64, in training and in test mode.

Dropout: in training, Keras draws its mask in that very forward pass (parity.keras_side.regularization_reference);
the user's class is driven to draw the same one (parity.user_code.dropout_draw: driven, driven with the comparison
reversed, or, where its draw can't be driven, compared on the mask its own output shows, through Keras's own factor);
test mode is compared as it is; the keep rate is measured on the class's own draws. BatchNormalization couples the
samples of a batch: training mode runs on batches of 3 and 5 (a batch of one normalizes to 0) and compares the
output, dx, dgamma, dbeta and the running statistics after the call; test mode runs at batch 1 and 3 with given
running statistics. With convolutions, both get an (N, C, H, W) map too. Traps: parity.diagnosis.regularization_traps."""

from __future__ import annotations

import inspect

import numpy as np

from parity.book.regularization import BN_EPSILON
from parity.compare.diff import ERROR, INFO, WARNING
from parity.compare.findings import Finding
from parity.compare.probe import Probe as _Probe
from parity.compare.probe_inputs import SEED, seeded_numpy
from parity.compare.regularization_inputs import BN_EPSILONS, BN_MOMENTUM, DROPOUT_RATE, batch_norm_cases, dropout_cases
from parity.diagnosis import regularization_traps as traps
from parity.diagnosis.conv_traps import ATOL, RTOL, agrees
from parity.diagnosis.mismatch import classify
from parity.keras_side import layer_reference as keras_probes
from parity.keras_side import regularization_reference as reference
from parity.keras_side.recording import RecordingMiss
from parity.settings.tolerances import KEEP_RATE_DRAWS, KEEP_RATE_SLACK
from parity.user_code import guard
from parity.user_code.dropout_draw import DRIVEN, OWN_MASK, SWAPPED, drive
from parity.user_code.guard import UserCodeError, where_defined
from parity.user_code.train_flag import forward_call

__all__ = ["probe_dropout", "probe_batch_norm", "probe_mode_layer", "MODE_PROBES"]

# Where a learner's class keeps what the probe reads, the book's name first.
RUNNING = {"running_mean": ("running_mean", "moving_mean", "run_mean"),
           "running_var": ("running_var", "moving_var", "running_variance", "moving_variance", "run_var")}
GRADIENTS = {"dgamma": ("dgamma", "d_gamma", "grad_gamma", "gamma_grad"),
             "dbeta": ("dbeta", "d_beta", "grad_beta", "beta_grad")}


class _Said(_Probe):
    """A Probe whose findings say where in the class they are (the method's line): the class may not be one the
    pipeline's kit lists, so nothing later would."""

    def __init__(self, name: str, cls: type):
        super().__init__(name)
        self.cls = cls

    def add(self, code, severity, message, param=None, method=None, where=None, fix=None):
        method = method or ("backward" if param and param.startswith("d") else "forward")
        where = where or (where_defined(self.cls, method) if hasattr(self.cls, method) else "") or None
        super().add(code, severity, message, param=param, method=method, where=where, fix=fix)


def _forward(layer, cls, name: str, x, train: bool, expect=None):
    args, kwargs = forward_call(cls, x, train)
    return guard.call(layer, "forward", *args, book=name, expect=expect, kwargs=kwargs)


def _watched(run, method: str, arg: str, value: np.ndarray, call):
    """call(a copy of value), noting in run.written when the class wrote into that copy."""
    given = value.copy()
    try:
        return call(given)
    finally:
        if not np.array_equal(given, value, equal_nan=True):
            run.written.add((method, arg))


def _say_written(probe, runs: list) -> None:
    for method, arg in sorted({w for run in runs for w in run.written}):
        probe.add("input_mutation", WARNING, f"{method} wrote into its argument {arg}", param=arg, method=method)


def _own(layer, names: tuple[str, ...]):
    """The first of `names` the instance holds (its own attribute: no property of the class runs), else None."""
    held = getattr(layer, "__dict__", {})
    return next((held[n] for n in names if n in held), None)


def _array(value) -> np.ndarray | None:
    try:
        out = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return out if value is not None and out.ndim > 0 else None


def _misshapen(cls, name: str, method: str, out, shape) -> UserCodeError | None:
    """The guard's sentence for an output that is not an array of `shape` (a boolean array is let through)."""
    if isinstance(out, np.ndarray) and out.shape == tuple(shape) and out.dtype.kind in "biuf":
        return None
    got = f"shape {out.shape}" if isinstance(out, np.ndarray) else ("None" if out is None else type(out).__name__)
    return UserCodeError(name, cls, method, f"returned {got} where an array of shape {tuple(shape)} was expected",
                         where_defined(cls, method), "shape")


# -- Dropout ----------------------------------------------------------------------------------------

def _dropout_run(cls, keras, case: str, x, dout, seed: int) -> traps.DropoutRun:
    train = reference.dropout(keras, x, dout, DROPOUT_RATE, seed, True)
    test = reference.dropout(keras, x, dout, DROPOUT_RATE, seed, False)
    run = traps.DropoutRun(case, x, dout, DROPOUT_RATE, theirs={"forward": train["forward"], "dx": train["dx"],
                                                               "test": test["forward"], "factor": train["factor"]})
    try:
        with seeded_numpy(SEED + seed):  # a draw that can't be driven (randn) is the same on every check
            layer = guard.call(cls, "__init__", DROPOUT_RATE, book="Dropout")
            out, kept, run.route = drive(lambda a: _watched(run, "forward", "x", a, lambda c: _forward(
                layer, cls, "Dropout", c, True)), x, train["keep"], holder=layer)
        failure = _misshapen(cls, "Dropout", "forward", out, x.shape)
        if failure is not None:
            raise failure
        run.ours["forward"], run.kept, run.ours["boolean"] = np.asarray(out, dtype=np.float64), kept, out.dtype == bool
        if run.route == OWN_MASK:  # Keras's formula on the class's own mask, with the factor Keras applied
            run.theirs["forward"] = x * kept * train["factor"]
            run.theirs["dx"] = dout * kept * train["factor"]
        run.ours["dx"] = _watched(run, "backward", "dout", dout, lambda c: guard.call(
            layer, "backward", c, book="Dropout", expect=x.shape))
        run.ours["test"] = _watched(run, "forward", "x", x, lambda c: _forward(layer, cls, "Dropout", c, False,
                                                                                  expect=x.shape))
    except UserCodeError as err:
        run.error, run.failure = str(err), err
    return run


def _keep_share(cls) -> np.ndarray | None:
    """A train-mode output of an all-ones input, drawn by the class itself (nothing driven); None where it fails."""
    try:
        with seeded_numpy(SEED):
            layer = guard.call(cls, "__init__", DROPOUT_RATE, book="Dropout")
            out = _forward(layer, cls, "Dropout", np.ones(KEEP_RATE_DRAWS), True, expect=KEEP_RATE_DRAWS)
    except UserCodeError:
        return None  # the probe cases say why
    return np.asarray(out, dtype=np.float64)


def probe_dropout(cls, keras=None, images: bool = False) -> list[Finding]:
    """Findings for a user's Dropout: its traps where the evidence shows them, else what differs from Keras's."""
    keras = keras_probes.LIVE if keras is None else keras
    probe = _Said("Dropout", cls)
    runs = [_dropout_run(cls, keras, *case) for case in dropout_cases() if images or case[1].ndim == 2]
    failed = [r for r in runs if r.error is not None]
    if failed:
        probe.error(failed[0].failure)
        return probe.findings
    _say_written(probe, runs)
    named = traps.dropout_mask_returned(runs) + traps.keep_rate(DROPOUT_RATE, _keep_share(cls), KEEP_RATE_SLACK)
    named = named or traps.dropout_scales(runs)
    for code, severity, message, param in named:
        probe.add(code, severity, message + _route_said(runs), param=param)
    if not named:
        _generic(probe, runs, (("forward", "forward"), ("dx", "dx"), ("test", "forward (test mode)")))
    routes = {r.route for r in runs} - {DRIVEN}
    if routes and not probe.failed:
        probe.add("dropout_route", INFO, _route_said(runs).removeprefix(" (").removesuffix(")"), param="mask")
    return probe.findings


def _route_said(runs: list[traps.DropoutRun]) -> str:
    routes = {r.route for r in runs}
    if routes == {DRIVEN}:
        return ""
    if OWN_MASK in routes:
        return (" (its draw could not be driven with Keras's mask: compared on the mask its own output shows, "
                "with Keras's factor)")
    return f" ({SWAPPED}: it keeps a unit where its draw is small, so the drawn values were swapped)"


# -- BatchNormalization -----------------------------------------------------------------------------------

def _takes(cls, *names: str) -> bool:
    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return all(n in params for n in names) or any(p.kind == p.VAR_KEYWORD for p in params.values())


def _build_batch_norm(cls, gamma, beta, mean, var, training: bool):
    """The class built as the book builds it; in test mode handed the running statistics (as keywords where the
    constructor takes them, else set under the name the instance keeps them by)."""
    given = not training and _takes(cls, "running_mean", "running_var")
    kwargs = {"running_mean": mean.copy(), "running_var": var.copy()} if given else {}
    layer = guard.call(cls, "__init__", gamma.copy(), beta.copy(), book="BatchNormalization", kwargs=kwargs)
    if not training and not given:
        held = getattr(layer, "__dict__", {})
        for key, value in (("running_mean", mean), ("running_var", var)):
            setattr(layer, next((n for n in RUNNING[key] if n in held), key), value.copy())
    return layer


def _start(layer, key: str, default: np.ndarray) -> np.ndarray:
    """The running statistic the instance starts from: its own array of the right size, else the book's (zeros)."""
    held = _array(_own(layer, RUNNING[key]))
    return held.reshape(default.shape) if held is not None and held.size == default.size else default


def _momentum(layer) -> float:
    held = _own(layer, ("momentum",))
    return float(held) if isinstance(held, (int, float)) and 0 < held <= 1 else BN_MOMENTUM


def _batch_norm_run(cls, keras, case, training, x, dout, gamma, beta, mean, var) -> traps.BatchNormRun:
    mode = "training" if training else "test mode with given running statistics"
    run = traps.BatchNormRun(f"{case}, {mode}", training, x, dout, gamma, beta, mean, var, BN_MOMENTUM, theirs={})
    try:
        layer = _build_batch_norm(cls, gamma, beta, mean, var, training)
        if training:
            run.mean, run.var = _start(layer, "running_mean", mean), _start(layer, "running_var", var)
        run.momentum = _momentum(layer)
        run.theirs = reference.batch_norm(keras, x, dout, gamma, beta, run.mean, run.var, run.momentum, BN_EPSILON,
                                          training)
        run.ours["forward"] = _watched(run, "forward", "x", x, lambda c: _forward(
            layer, cls, "BatchNormalization", c, training, expect=x.shape))
        if not training:
            return run  # the book's backward follows a train-mode forward only
        dx = _watched(run, "backward", "dout", dout, lambda c: guard.call(layer, "backward", c,
                                                                            book="BatchNormalization"))
        run.ours["dx"] = _array(dx)
        for key, names in {**GRADIENTS, **RUNNING}.items():
            run.ours[key] = _array(_own(layer, names))
    except UserCodeError as err:
        run.error, run.failure = str(err), err
    return run


def _keras_with(keras, run: traps.BatchNormRun, momentum: float, epsilon: float) -> dict:
    """Keras's values for the run with another momentum or epsilon: the evidence for a named trap (NaN where a
    recording does not hold them, which proves nothing)."""
    try:
        return reference.batch_norm(keras, run.x, run.dout, run.gamma, run.beta, run.mean, run.var, momentum, epsilon,
                                    run.training)
    except RecordingMiss:
        return {k: np.full(np.shape(v), np.nan) for k, v in run.theirs.items()}


BN_QUANTITIES = ("forward", "dx", "dgamma", "dbeta", "running_mean", "running_var")


def probe_batch_norm(cls, keras=None, images: bool = False) -> list[Finding]:
    """Findings for a user's BatchNormalization: its traps where the evidence shows them, else what differs."""
    keras = keras_probes.LIVE if keras is None else keras
    probe = _Said("BatchNormalization", cls)
    runs = [_batch_norm_run(cls, keras, *case) for case in batch_norm_cases() if images or case[2].ndim == 2]
    layout = traps.bn_layout(runs, BN_QUANTITIES)  # a 4-D input that fails where every 2-D batch is right
    failed = [r for r in runs if r.error is not None]
    if failed and not layout:
        probe.error(failed[0].failure)
        return probe.findings
    _say_written(probe, runs)
    by_epsilon = lambda run, eps: _keras_with(keras, run, run.momentum, eps)["forward"]  # noqa: E731
    by_momentum = lambda run, momentum: _keras_with(keras, run, momentum, BN_EPSILON)  # noqa: E731
    named = layout or traps.bn_forward(runs, by_epsilon, BN_EPSILONS) or \
        traps.bn_epsilon_split(runs, by_epsilon, BN_EPSILONS)
    named += traps.bn_backward(runs) + traps.bn_running_stats(runs, by_momentum)
    named += traps.bn_per_activation(runs, BN_QUANTITIES) if images else []
    for code, severity, message, param in named:
        probe.add(code, severity, message, param=param, method="forward" if param.startswith("running") else None)
    if not [n for n in named if n[0] != "convention"]:
        _generic(probe, runs, tuple((q, q) for q in BN_QUANTITIES))
    return probe.findings


# -- both ---------------------------------------------------------------------------------------------

def _generic(probe: _Probe, runs: list, quantities: tuple[tuple[str, str], ...]) -> None:
    """Per quantity, the first case where it disagrees with Keras's, classified."""
    for what, said in quantities:
        for run in runs:
            ours, theirs = run.ours.get(what), run.theirs.get(what)
            if theirs is None or (what not in run.ours and not getattr(run, "training", True)):
                continue
            if ours is None:
                probe.add("layer_error", ERROR, f"{probe.name}: after backward, {what} is not an array ({run.case}): "
                          f"keep it as self.{what}, as the book does", param=what, method="backward")
                break
            if agrees(ours, theirs):
                continue
            code, detail = classify(ours, theirs, RTOL, ATOL, "output" if said.startswith("forward") else "gradient")
            if said.startswith("forward") and code not in ("nan", "shape_mismatch"):
                code, detail = "forward_mismatch", f"the output differs from Keras's ({detail})"
            probe.add(code, ERROR, f"{said} ({run.case}): {detail}", param=what,
                      method="forward" if what.startswith(("forward", "test", "running")) else "backward")
            break


MODE_PROBES = {"Dropout": probe_dropout, "BatchNormalization": probe_batch_norm}


def probe_mode_layer(cls, name: str, keras=None, images: bool = False) -> list[Finding]:
    """Findings for a user's chapter-6 class (`name` is Dropout or BatchNormalization). `images`: the run's model has
    convolutions, so the class is also fed an (N, C, H, W) map (a Dense network never gives it one, and a class
    written for 2-D input is right there)."""
    return MODE_PROBES[name](cls, keras, images)
