"""Name the traps of the book's chapter 6 by evidence: what a learner's Dropout or BatchNormalization got wrong, from
how its numbers relate to Keras's (NumPy only).

Each function takes the probe's runs and returns (code, severity, message, param) tuples for what it can prove;
nothing when the evidence is not there. A suspected bug is recomputed (the user's dx with the variance term dropped,
the variance with ddof=1) and named only when that recomputation equals what the class returned; where Keras can
say it (another epsilon, another momentum), Keras says it, through the callables passed in."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parity.book.regularization import BN_EPSILON
from parity.diagnosis.conv_traps import ATOL, RTOL, agrees
from parity.diagnosis.mismatch import classify

__all__ = ["DropoutRun", "BatchNormRun", "factor", "dropout_mask_returned", "dropout_scales", "keep_rate",
           "bn_forward", "bn_epsilon_split", "bn_backward", "bn_running_stats", "bn_layout"]

ERROR, WARNING = "error", "warning"


@dataclass
class DropoutRun:
    """One probe case of a user's Dropout: Keras's values (train mode on Keras's mask, test mode) and the class's."""

    case: str
    x: np.ndarray
    dout: np.ndarray
    rate: float
    theirs: dict  # forward, dx (train mode, on the units the class kept), test (test mode's output), factor
    ours: dict = field(default_factory=dict)  # forward, dx, test (as float64), boolean (forward returned bools)
    kept: np.ndarray | None = None  # the units the class kept (bool), as its output shows them
    route: str | None = None  # parity.user_code.dropout_draw: driven, swapped, or its own mask
    error: str | None = None
    failure: object = None
    written: set = field(default_factory=set)  # (method, argument) the class wrote into


@dataclass
class BatchNormRun:
    """One probe case of a user's BatchNormalization: its inputs, Keras's values and the class's."""

    case: str
    training: bool
    x: np.ndarray
    dout: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray  # the running statistics it starts from
    var: np.ndarray
    momentum: float
    theirs: dict  # forward, dx, dgamma, dbeta, running_mean, running_var
    ours: dict = field(default_factory=dict)
    error: str | None = None
    failure: object = None
    written: set = field(default_factory=set)  # (method, argument) the class wrote into


def factor(ours, theirs) -> float | None:
    """c where ours = c x theirs (1.0 where they agree), None where no one constant relates them."""
    if ours is None or np.shape(ours) != np.shape(theirs):
        return None
    ours = np.asarray(ours, dtype=np.float64)
    if not np.isfinite(ours).all():
        return None
    verdict = classify(ours, theirs, RTOL, ATOL)
    if verdict is None:
        return 1.0
    code, detail = verdict
    return -1.0 if code == "sign_flip" else float(detail) if code == "scale_factor" else None


def _same(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= 1e-9 * max(1.0, abs(b))


# -- Dropout ----------------------------------------------------------------------------------------

def dropout_mask_returned(runs: list[DropoutRun]) -> list[tuple]:
    """A forward whose output is the mask itself (True/1 where kept), not x times it."""
    for run in runs:
        out = run.ours.get("forward")
        if run.error is None and out is not None and run.kept is not None and np.shape(out) == run.x.shape \
                and np.array_equal(np.asarray(out, dtype=np.float64), run.kept.astype(np.float64)):
            kind = "a boolean array" if run.ours.get("boolean") else "0 and 1"
            return [("dropout_mask_returned", ERROR, f"forward returns the mask itself ({kind} where a unit is kept, "
                     f"{run.case}), not the input through it: return x * self.mask", "forward")]
    return []


def dropout_scales(runs: list[DropoutRun]) -> list[tuple]:
    """What the class's train-mode forward, its backward and its test-mode forward scale by, each against Keras's
    on the same mask: backward without the mask, backward without the factor forward applied, neither convention
    (train and test scaled inconsistently), or the book's convention (both times (1 - ratio)): a warning."""
    for run in runs:
        if run.error is not None:
            continue
        a = factor(run.ours.get("forward"), run.theirs["forward"])  # ours = a x Keras's, train mode
        b = factor(run.ours.get("test"), run.theirs["test"])  # test mode: Keras's is x itself
        d = factor(run.ours.get("dx"), run.theirs["dx"])
        r, keep = run.rate, 1.0 - run.rate
        dropped = (~run.kept) & (run.dout != 0) if run.kept is not None else None
        unmasked = factor(run.ours.get("dx"), run.dout)
        if a is not None and unmasked is not None and dropped is not None and dropped.any():
            return [("dropout_no_mask", ERROR, f"backward passes dout to every unit ({unmasked:.6g} x dout), also to "
                     f"the {int(dropped.sum())} units forward dropped ({run.case}): dx = dout * self.mask"
                     + (" / (1 - ratio)" if _same(a, 1.0) else ""), "dx")]
        if a is not None and d is not None and not _same(a, d):
            return [("dropout_backward_scale", ERROR, f"forward scales the kept units by {a * run.theirs['factor']:.6g} "
                     f"but backward scales dout by {d * run.theirs['factor']:.6g} ({run.case}): backward must apply "
                     f"exactly what forward applied (ratio {r}: mask / (1 - ratio) = mask x {1 / keep:.6g} in "
                     "the inverted convention)", "dx")]
        if a is None or b is None:
            continue
        if _same(a, b) and _same(a, 1.0):
            return []
        if _same(a, b) and _same(a, keep):
            return [("convention", WARNING, f"the book's convention: no scaling in training, x * (1 - ratio) in test "
                     f"mode; equal to Keras's inverted Dropout (x * mask / (1 - ratio) in training, x in test mode) "
                     f"times (1 - ratio) = {keep:.6g} in both modes, on Keras's own mask ({run.case}). Only the "
                     "scale of what follows differs, by that factor", "forward")]
        said = {1.0: "unscaled", keep: f"times (1 - ratio) = {keep:.6g}", 1 / keep: "times 1 / (1 - ratio)"}

        def scaled(c: float, base: float) -> str:
            value = c * base
            return next((words for v, words in said.items() if _same(value, v)), f"times {value:.6g}")
        return [("dropout_convention", ERROR, f"neither convention: in training the kept units come out "
                 f"{scaled(a, run.theirs['factor'])}, in test mode the input comes out {scaled(b, 1.0)} ({run.case}); "
                 f"the two modes must agree in expectation: inverted (training x / (1 - ratio), test x, as Keras) or "
                 f"the book's (training x, test x * (1 - ratio))", "forward")]
    return []


def keep_rate(rate: float, out: np.ndarray | None, tolerance: float) -> list[tuple]:
    """From a train-mode output of an all-ones input, drawn by the class itself: the share of units it keeps, and
    whether it keeps them as 0/1 (one constant scale) or multiplies by noise."""
    if out is None:
        return []
    out = np.asarray(out, dtype=np.float64)
    kept = out != 0
    share = float(kept.mean())
    values = out[kept]
    if values.size and not np.allclose(values, values[0], rtol=1e-9, atol=0):
        return [("keep_rate", ERROR, f"the mask is not 0/1: the kept units come out scaled by values from "
                 f"{values.min():.3g} to {values.max():.3g} over {out.size} draws (noise used as the mask, with no "
                 f"threshold); keep a unit where np.random.rand(*x.shape) > ratio", "forward")]
    if abs(share - (1 - rate)) > tolerance:
        return [("keep_rate", ERROR, f"keeps {share:.1%} of the units over {out.size} draws where ratio {rate} keeps "
                 f"{1 - rate:.0%} (Keras's Dropout keeps 1 - rate){_likely(share, rate)}", "forward")]
    return []


def _likely(share: float, rate: float) -> str:
    """A known cause of a keep rate, where the measured share is the one it gives."""
    from math import erf, sqrt

    causes = {0.5 * (1 - erf(rate / sqrt(2))): "a normal draw: np.random.randn(*x.shape) > ratio",
              rate: "the comparison reversed: rand < ratio keeps ratio, not 1 - ratio"}
    for value, cause in causes.items():
        if abs(share - value) < 0.02:
            return f"; likely {cause}"
    return ""


# -- BatchNormalization ---------------------------------------------------------------------------------

def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1)


def bn_forward(runs: list[BatchNormRun], keras_with, epsilons: tuple[float, ...]) -> list[tuple]:
    """A train-mode forward that differs from Keras's: the variance taken unbiased (ddof=1, recomputed and equal to
    the class's), or another epsilon in both modes (Keras with that epsilon equals the class's).
    `keras_with(run, epsilon)` is Keras's output for the run with that epsilon, for each of `epsilons`."""
    for run in runs:
        out = run.ours.get("forward")
        if run.error is not None or not run.training or out is None or agrees(out, run.theirs["forward"]):
            continue
        x = _flat(run.x)
        unbiased = run.gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0, ddof=1) + BN_EPSILON) + run.beta
        if agrees(out, unbiased.reshape(run.x.shape)):
            return [("bn_unbiased_variance", ERROR, f"forward divides by the unbiased variance (ddof=1, over n - 1) "
                     f"({run.case}): batch normalization, as the book and Keras compute it, uses the biased one: "
                     "np.mean(xc**2, axis=0)", "forward")]
        for epsilon in epsilons:
            if agrees(out, keras_with(run, epsilon)):
                test = [r for r in runs if not r.training and r.error is None]
                both = test and all(agrees(r.ours.get("forward"), keras_with(r, epsilon)) for r in test)
                return [("bn_epsilon", ERROR, f"forward is Keras's BatchNormalization with epsilon {epsilon:g} "
                         f"{'in both modes' if both else 'in training'} ({run.case}), where the book writes 10e-7 "
                         f"(that is {BN_EPSILON:g})", "forward")]
        return []
    return []


def bn_epsilon_split(runs: list[BatchNormRun], keras_with, epsilons: tuple[float, ...]) -> list[tuple]:
    """Training right and test mode equal to Keras's with another epsilon: the epsilon differs between the modes."""
    train, test = [r for r in runs if r.training], [r for r in runs if not r.training]
    if not train or not all(r.error is None and agrees(r.ours.get("forward"), r.theirs["forward"]) for r in train):
        return []
    for run in test:
        out = run.ours.get("forward")
        if run.error is not None or out is None or agrees(out, run.theirs["forward"]):
            continue
        for epsilon in epsilons:
            if agrees(out, keras_with(run, epsilon)):
                return [("bn_epsilon_split", ERROR, f"test mode is Keras's with epsilon {epsilon:g} while training "
                         f"uses {BN_EPSILON:g} ({run.case}): the same epsilon belongs in both", "forward")]
    return []


def bn_backward(runs: list[BatchNormRun]) -> list[tuple]:
    """A train-mode backward that differs from Keras's while its forward agrees: dx without the variance term
    (recomputed, equal to the class's), dx summed over the batch, dgamma or dbeta not summed over the batch."""
    for run in runs:
        if run.error is not None or not run.training or not agrees(run.ours.get("forward"), run.theirs["forward"]):
            continue
        dx, theirs = run.ours.get("dx"), run.theirs["dx"]
        if dx is not None and not agrees(dx, theirs):
            x, dout = _flat(run.x), _flat(run.dout)
            std = np.sqrt(x.var(axis=0) + BN_EPSILON)
            dxn = run.gamma * dout
            without = ((dxn - dxn.mean(axis=0)) / std).reshape(run.x.shape)
            if agrees(dx, without):
                return [("bn_variance_term", ERROR, f"dx is Keras's without the variance term ({run.case}): the "
                         "gradient through the batch's variance is missing (dstd, dvar, then dxc += 2/N * xc * dvar)",
                         "dx")]
            ours = np.asarray(dx, dtype=np.float64)
            summed = _flat(theirs).sum(axis=0)
            rows = ours.reshape(-1, summed.size) if ours.size % summed.size == 0 else None
            if rows is not None and all(agrees(row, summed) for row in rows):
                return [("bn_dx_summed", ERROR, f"dx is Keras's summed over the batch (shape {ours.shape}, "
                         f"{run.case}): dx has one row per sample, x's shape {run.x.shape}; only dgamma and dbeta "
                         "sum over the batch", "dx")]
        for name in ("dgamma", "dbeta"):
            ours, theirs = run.ours.get(name), run.theirs[name]
            if ours is None or agrees(ours, theirs):
                continue
            ours = np.asarray(ours, dtype=np.float64)
            n = run.x.shape[0]
            if (ours.size == n * theirs.size and agrees(ours.reshape(n, -1).sum(axis=0), theirs)) or \
                    agrees(ours, theirs / n):
                how = "kept per sample" if ours.size == n * theirs.size else f"averaged (1/{n} x Keras's)"
                return [("bn_batch_sum", ERROR, f"{name} is {how} where it sums over the batch ({run.case}): "
                         f"{name} = np.sum(..., axis=0)", name)]
    return []


def bn_running_stats(runs: list[BatchNormRun], keras_with_momentum) -> list[tuple]:
    """Running statistics after a train-mode call that are not Keras's moving ones: never assigned (None, or left
    at their start) or the momentum inverted, each shown by Keras with that momentum (1, or 1 - momentum)."""
    for run in runs:
        if run.error is not None or not run.training:
            continue
        for name in ("running_mean", "running_var"):
            ours, theirs = run.ours.get(name), run.theirs[name]
            if ours is not None and agrees(ours, theirs):
                continue
            start = run.mean if name == "running_mean" else run.var
            if ours is None or agrees(ours, start) or agrees(ours, keras_with_momentum(run, 1.0)[name]):
                return [("bn_running_stats", ERROR, f"{name} is never updated in training ({run.case}: "
                         f"{'not an array' if ours is None else 'still its start'}): assign it, self.{name} = "
                         f"momentum * self.{name} + (1 - momentum) * the batch's", name)]
            if agrees(ours, keras_with_momentum(run, 1.0 - run.momentum)[name]):
                return [("bn_running_stats", ERROR, f"{name} moves with the momentum inverted ({run.case}): it is "
                         f"Keras's with momentum {1 - run.momentum:g}, not {run.momentum:g}; running = momentum * "
                         f"running + (1 - momentum) * batch", name)]
    return []


def bn_layout(runs: list[BatchNormRun], quantities: tuple[str, ...]) -> list[tuple]:
    """Right on every 2-D batch, wrong on an (N, C, H, W) input: the 4-D path lays the activations out otherwise."""
    flat = [r for r in runs if r.x.ndim == 2]
    maps = [r for r in runs if r.x.ndim == 4]
    if flat and all(_right(r, quantities) for r in flat) and maps and not any(_right(r, quantities) for r in maps):
        run = maps[0]
        seen = f" ({run.error})" if run.error else ""
        return [("bn_layout", ERROR, f"right on every 2-D batch, wrong on {run.case} {run.x.shape}{seen}: the 4-D path "
                 "scrambles the layout; the book normalizes per activation: x.reshape(N, -1) as it comes, and "
                 "the output and dx reshaped back with .reshape(*self.input_shape)", "forward")]
    return []


def _right(run: BatchNormRun, quantities: tuple[str, ...]) -> bool:
    return run.error is None and all(agrees(run.ours.get(q), run.theirs[q]) for q in quantities
                                     if q in run.theirs and (run.training or q == "forward"))


def bn_per_activation(runs: list[BatchNormRun], quantities: tuple[str, ...]) -> list[tuple]:
    """A class right on every (N, C, H, W) map normalizes it per activation, as the book does; Keras's layer on an
    (N, H, W, C) map normalizes per channel. Said as a convention, with the evidence it was compared on."""
    maps = [r for r in runs if r.x.ndim == 4]
    if not maps or not all(_right(r, quantities) for r in maps):
        return []
    return [("convention", WARNING, f"normalizes an (N, C, H, W) map per activation (C * H * W features), as the book "
             f"does; Keras's BatchNormalization on a channels-last map normalizes per channel (C features): "
             f"compared with Keras's layer on the map reshaped to (N, C * H * W) ({maps[0].case})", "forward")]
