"""Stepping after a step that legitimately differs: the NumPy side steps on from where Keras stands (NumPy only).

A step at a ReLU kink (a mask flip within rounding of 0) or at a max-pooling tie is excused, but it moves the two
sides' parameters, and a stateful optimizer's state (velocity, accumulator, moments), apart by that step's
legitimate difference, and every later step would differ too. Where later steps fail, the NumPy side restarts after
such a step (excused, or failing besides: an optimizer's convention differs on every step and is judged later) from
Keras's parameters and Keras's optimizer state after it, as Keras recorded them: the run's
optimizer (the user's class or the book's) updates once per earlier step (so its step counter, whatever it calls it,
counts as Keras's `iterations` do, and its state exists), then holds Keras's state under the book's names
(parity.user_code.attributes.write_state). Each later step is then judged on its own. Where the class's state
cannot be set (kept under a name the tool does not know), nothing is guessed: the steps after the excused one are
`unjudged`, neither a pass nor a fail, and a warning says why.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from parity.compare.diff import WARNING, PhaseResult
from parity.compare.findings import Finding
from parity.diagnosis.fixes import fix_for
from parity.numpy_side.trace import Trace, splice
from parity.user_code.attributes import write_state

__all__ = ["DRIFT_LIMIT", "RESYNC_LIMIT", "Realigned", "fresh_restarts", "resync", "resynced_again", "settle_drift"]

RESYNC_LIMIT = 8  # excused steps after which the NumPy side restarts from Keras's parameters and state, at most
DRIFT_LIMIT = 8  # restarts before failing steps that agree from Keras's own state (rounding that compounded), at most
EXCUSED = ("kink", "tie")


def resync(ours: Trace, stepping: PhaseResult, make, step_from: Callable, compare: Callable, keras: Trace,
           names: tuple[str, ...]) -> tuple[PhaseResult, list[int], list[Finding]]:
    """Where steps after an excused one fail, restart the NumPy side after it (see the module's docstring).

    `make(params)` is the run's stepper (RunOptimizer.stepper); `step_from(with_optimizer, weights, start)` steps
    the training split from `start` and returns its trace; `compare(trace)` its PhaseResult; `names` the book's
    state names of the run's optimizer (OptimizerInfo.state). Returns the comparison, the excused steps it restarted
    after, and its findings (one `resync` warning per restart, an `unjudged` warning where it could not restart).
    """
    at: list[int] = []
    while len(at) < RESYNC_LIMIT:
        failing = np.flatnonzero(stepping.verdicts == "fail")
        s = next((int(e) for e in np.flatnonzero(_moved(stepping)) if e not in at and failing.size and failing.max() > e),
                 None)
        if s is None:
            break
        with_optimizer, why = _resumed(make, ours, keras, s, names)
        if why:
            later = (np.arange(len(stepping.verdicts)) > s) & (stepping.verdicts != "error")  # a raise is a raise
            rows = int(later.sum())
            stepping.verdicts = np.where(later, "unjudged", stepping.verdicts)
            return stepping, at, [*_said(at, stepping), _unjudged_finding(s, _cause(stepping, s), why, rows)]
        ours = splice(ours, step_from(with_optimizer, {k: v[s] for k, v in keras.params_after.items()}, s + 1), s + 1)
        stepping = compare(ours)
        at.append(s)
    return stepping, at, _said(at, stepping)


def resynced_again(trace: Trace, at: list[int], make, step_from: Callable, keras: Trace,
                   names: tuple[str, ...]) -> Trace:
    """`trace` (another stepper's run over the same layers) restarted after the same steps as `resync` did, with
    `make`'s optimizer resumed at Keras's state there: evidence judged on the same footing as the run it speaks for."""
    for s in at:
        restarted = _restarted_after(trace, s, make, step_from, keras, names)
        if restarted is None:
            break
        trace = restarted
    return trace


def _restarted_after(trace: Trace, s: int, make, step_from: Callable, keras: Trace, names: tuple[str, ...]):
    """`trace` with its steps after `s` stepped by fresh layers from Keras's parameters and optimizer state after
    step `s`; None where that state cannot be set."""
    with_optimizer, why = _resumed(make, trace, keras, s, names)
    if why:
        return None
    return splice(trace, step_from(with_optimizer, {k: v[s] for k, v in keras.params_after.items()}, s + 1), s + 1)


def _moved(stepping: PhaseResult) -> np.ndarray:
    """(n,) steps on which a flip at the kink or a pooling tie explains a difference: excused rows, and failing ones
    where it explains some quantity while another fails (an optimizer's convention, which is judged later, differs on
    every step). Restarting after a failing one hides nothing: it stays failing, and each later step is judged anew."""
    moved = np.isin(stepping.verdicts, EXCUSED)
    for rows in stepping.excused.values():
        moved |= rows & (stepping.verdicts == "fail")
    return moved


def _cause(stepping: PhaseResult, s: int) -> str:
    """kink or tie: what moved step `s`."""
    verdict = str(stepping.verdicts[s])
    return verdict if verdict in EXCUSED else "kink" if stepping.kink[s] else "tie"


def _resumed(make, ours: Trace, keras: Trace, s: int, names: tuple[str, ...]) -> tuple[object, str]:
    """(what the NumPy side steps on with after step `s`, "") or (None, why it cannot)."""
    missing = [book for book in names if book not in keras.state_after]
    if missing:
        return None, f"Keras's side holds no optimizer state {', '.join(missing)} to restart from"
    stepper = make({k: np.array(v[s], copy=True) for k, v in keras.params_after.items() if k in ours.grads})
    if isinstance(stepper, (int, float)):  # the reference's plain SGD: the parameters are all its state
        return (lambda params: stepper), ""
    raised = {e.row for e in ours.errors}  # a step whose layers raised gave the optimizer nothing
    seen = [{k: g[i] for k, g in ours.grads.items()} for i in range(s + 1) if i not in raised]
    why = stepper.resume(seen, {book: {k: v[s] for k, v in keras.state_after[book].items()} for book in names})
    return (None, why) if why else ((lambda params: stepper), "")


def _said(at: list[int], stepping: PhaseResult) -> list[Finding]:
    return [_resync_finding(s, _cause(stepping, s)) for s in at]


def _why(cause: str) -> str:
    return "a max-pooling tie" if cause == "tie" else "a ReLU mask flip at its kink"


def _resync_finding(s: int, cause: str) -> Finding:
    """The `resync` warning for a restart after step `s`, moved by `cause` (kink or tie); whatever else differs on
    that step has its own finding."""
    return Finding("resync", WARNING, "stepping", (
        f"stepping: {_why(cause)} at step {s} moved the two sides apart by that step's legitimate difference; "
        f"the NumPy side stepped on from Keras's parameters and optimizer state after step {s}, so each later step "
        "is judged on its own"), fix=fix_for("resync"), step=s)


def _unjudged_finding(s: int, cause: str, why: str, rows: int) -> Finding:
    return Finding("unjudged", WARNING, "stepping", (
        f"stepping: {_why(cause)} at step {s} moved the two sides apart by that step's legitimate difference, "
        f"and the NumPy side cannot restart from Keras's optimizer state after it: {why}; the {rows} later steps "
        "are not judged (neither passed nor failed)"), fix=fix_for("unjudged"), step=s, count=rows)


def settle_drift(stepping: PhaseResult, restart: Callable[[list[int]], Trace | None],
                 compare: Callable) -> tuple[PhaseResult, list[int], list[Finding]]:
    """Rounding that compounded, told from a bug by evidence: where step f fails with nothing excused before it, the
    NumPy side steps again from Keras's parameters and optimizer state after step f - 1. If step f then agrees, its
    difference was the two sides' rounding carried over f steps (in float32, a convolution's sums in another order, a
    velocity that keeps every step's), not a step computed otherwise: a `drift` warning, and the later steps are
    judged from there. If it still fails, nothing changes: that step is computed otherwise.

    `restart(at)` is the stepping run realigned with Keras after each step in `at` (fresh_restarts for the book's
    layers, realigned_run for a user's, whose own objects go on), None where it cannot be. Returns the comparison,
    the steps restarted after, and the warnings."""
    at: list[int] = []
    found: list[Finding] = []
    while len(at) < DRIFT_LIMIT:
        failing = np.flatnonzero(stepping.verdicts == "fail")
        if not failing.size or failing[0] == 0 or failing[0] - 1 in at:  # step 0 starts from the same weights
            break
        f = int(failing[0])
        trial = restart([*at, f - 1])
        if trial is None:
            break
        rechecked = compare(trial)
        if rechecked.verdicts[f] in ("fail", "error"):
            break
        quantity = max(stepping.diffs, key=lambda k: float(stepping.diffs[k].used[f]))
        found.append(_drift_finding(f, float(stepping.diffs[quantity].used[f]), quantity))
        at.append(f - 1)
        stepping = rechecked
    return stepping, at, found


def fresh_restarts(base: Trace, make, step_from: Callable, keras: Trace, names: tuple[str, ...]):
    """settle_drift's `restart` for the book's layers, which hold nothing but their parameters: `base` with its tail
    stepped by fresh layers from Keras's parameters and state after each step in `at`, as `resync` restarts."""
    def restart(at: list[int]) -> Trace | None:
        trace = base
        for s in at:
            trace = _restarted_after(trace, s, make, step_from, keras, names)
            if trace is None:
                return None
        return trace
    return restart


class Realigned:
    """An optimizer driver that, after its update on each step in `after`, holds Keras's parameters and optimizer state
    after that step: the network copies them into the layers' own arrays (Network.optimizer_step), so a user's layer
    objects go on from where Keras stands, whatever else they keep (a stale copy of W shows, as it would in training).
    `unwritten` lists the state it could not set."""

    def __init__(self, driver, keras: Trace, after: list[int], names: tuple[str, ...]):
        self._driver, self._keras, self._after, self._names = driver, keras, set(after), names
        self.unwritten: list[str] = []

    def update(self, grads: dict[str, np.ndarray], step: int) -> bool:
        ok = self._driver.update(grads, step)
        if ok and step in self._after:
            for k, param in self._driver.params.items():
                param[...] = self._keras.params_after[k][step]
            state = {book: {k: v[step] for k, v in self._keras.state_after[book].items()} for book in self._names}
            if state:
                self.unwritten += write_state(self._driver.instance, self._driver.settings.name, self._driver.params,
                                              state)
        return ok

    def __getattr__(self, name):
        return getattr(self._driver, name)


def _drift_finding(f: int, share: float, quantity: str) -> Finding:
    return Finding("drift", WARNING, "stepping", (
        f"stepping: by step {f} the two sides' rounding, carried from step to step, had moved them apart ({quantity} "
        f"at {share:.3g} times the tolerance); from Keras's parameters and optimizer state after step {f - 1}, step "
        f"{f} agrees, so it is computed alike: the NumPy side stepped on from there, and each later step is judged "
        "on its own"), fix=fix_for("drift"), step=f)
