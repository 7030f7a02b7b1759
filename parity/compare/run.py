"""Compare one NumPy kit with the Keras side of its configuration. Returns data (a ParityResult).

The probe runs in chunks of rows, so a run of any size stays in bounded memory: each chunk is
compared, summarized (PhaseSummary), searched for findings and handed to `on_chunk` (the report
writer), then dropped. Batch and stepping phases cover the training split and are kept whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from parity.compare.consequences import Blame, settle
from parity.compare.dead_units import kink_rows, stepping_observation, unit_name
from parity.compare.cancelled_bias import Pinned, cancelled_biases, pinned_finding
from parity.compare.diff import ERROR, INFO, PhaseResult, compare_traces
from parity.compare.phase_findings import findings_for
from parity.compare.pool_routing import pool_routing
from parity.compare.findings import Finding
from parity.compare.modes import phase_modes
from parity.compare.optimizer_run import OptimizerVerdict, RunOptimizer, judge
from parity.compare.outcome import ParityResult
from parity.compare.resync import Realigned, fresh_restarts, resync, resynced_again, settle_drift
from parity.compare.root_causes import with_consequence_fixes
from parity.compare.stats import PhaseSummary
from parity.diagnosis.fixes import fix_for
from parity.diagnosis.mismatch import excuse_book_log
from parity.keras_side.reference import KerasReference, targets
from parity.numpy_side.closed_form import per_sample_closed_form, steps_closed_form
from parity.numpy_side.dropout_convention import wrappers_for
from parity.numpy_side.network import build_network
from parity.numpy_side.trace import Trace
from parity.settings.config import RunConfig
from parity.settings.resources import chunk_rows
from parity.settings.tolerances import Tolerance, tolerance_for

if TYPE_CHECKING:
    from parity.prepare import Prepared

__all__ = ["compare_numpy"]

KINK_LEDGER_LIMIT = 200


def _tolerance(config: RunConfig) -> Tolerance:
    tol = tolerance_for(config.dtype)
    if config.rtol is None and config.atol is None:
        return tol
    return replace(tol, rtol=tol.rtol if config.rtol is None else config.rtol,
                   atol=tol.atol if config.atol is None else config.atol,
                   reason="set in the configuration's [compare] section; the default was: " + tol.reason)


def compare_numpy(prepared: Prepared, reference: KerasReference, kit: dict | None = None,
                  layer_findings: list[Finding] = (), layers: dict[str, str] | None = None,
                  on_chunk: Callable[[PhaseResult], None] | None = None, chunk: int | None = None,
                  progress: Callable | None = None, optimizer: RunOptimizer | None = None,
                  on_phase: Callable[[str, ParityResult], None] | None = None) -> ParityResult:
    """Run the NumPy stack built from `kit` (reference layers where absent) against Keras's side.

    Without a kit the reference layers' probe and stepping records are computed in closed form (equal
    to running the layer objects sample by sample, as tested); a user's classes always run as objects,
    sample by sample, and the batch probe always runs the layer objects. Stepping uses `optimizer` (the
    user's class, or the book's for the run's optimizer when None), judged by optimizer_stepping.judge.
    `on_phase("probe", so far)` comes once the probe is whole, before Keras steps, and `on_phase("stepping", so far)`
    once the batch and stepping phases are final, before the findings are settled (ParityResult.so_far): the
    report's plot worker draws the pictures that read them meanwhile.
    """
    try:
        return _compared(prepared, reference, kit, list(layer_findings), layers, on_chunk, chunk, progress, optimizer,
                         on_phase)
    finally:  # Keras's phases may still be computing in a thread (KerasReference.train_meanwhile) if this failed
        reference.settle()


def _compared(prepared, reference, kit, layer_findings, layers, on_chunk, chunk, progress, optimizer,
              on_phase) -> ParityResult:
    config, spec, data = prepared.config, prepared.spec, prepared.data
    tol = _tolerance(config)
    hidden = [i for i, _ in spec.hidden()]
    relu = [i for i, layer in spec.hidden() if layer.activation == "relu"]
    sigmoid = [i for i, layer in spec.hidden() if layer.activation == "sigmoid"]
    relu_maps = {i: out for i, conv, _, out in spec.activated_maps() if conv.activation == "relu"}
    x = reference.x
    t, _ = targets(spec, data.y, config.dtype)
    n, fitted = config.train, reference.fitted
    blame = Blame.of(list(layer_findings), spec.classes())
    wrappers = wrappers_for(layer_findings)  # a convention the layer probe proved is seen in Keras's by the stack
    classifies = spec.loss != "mean_squared_error"
    # Dropout and BatchNormalization have two modes: the closed form has neither; stepping goes batch-wise in training
    # mode (BatchNormalization couples a batch) with the Dropout masks Keras drew (parity.keras_side.train_mode).
    closed = kit is None and not spec.regularized
    step_batch = config.batch_size if spec.regularized else 1
    routes: dict[int, set[str]] = {}

    def fresh():
        return build_network(spec, {k: v.copy() for k, v in fitted.items()}, kit, wrappers)

    def routed(net):
        for k, seen in net.routes.items():
            routes.setdefault(k, set()).update(seen)
        return net

    def compare(phase, rows, ours, theirs):
        result = compare_traces(phase, rows, ours, theirs, tol, relu, sigmoid, relu_maps, spec.pooled_maps())
        if blame.book_log:
            excuse_book_log(result)
        return result

    # The probe, chunk by chunk.
    chunk = chunk or chunk_rows(spec)
    summaries, raw, kinks, whole = {}, [], [], None
    bounds = [(start, min(start + chunk, len(data))) for start in range(0, len(data), chunk)]
    chunks = reference.probe_chunks(bounds)
    for start, stop, theirs in (progress(chunks, "probe", len(bounds)) if progress else chunks):
        if stop == len(data):  # Keras's probe is done: its batch and stepping phases run beside the NumPy side's work
            reference.train_meanwhile()
        ours = per_sample_closed_form(spec, fitted, x[start:stop], t[start:stop]) if closed \
            else fresh().per_sample(x[start:stop], t[start:stop], hidden)
        part = compare("probe", np.arange(start, stop), ours, theirs)
        raw += findings_for(part)
        summary = PhaseSummary.of(part, classifies, relu_maps)
        summaries["probe"] = summary if "probe" not in summaries else summaries["probe"].merge(summary)
        kinks += kink_rows(part, data, spec, lambda row: fitted, KINK_LEDGER_LIMIT - len(kinks))
        if on_chunk:
            on_chunk(part)
        whole = part if stop - start == len(data) else None
    findings = [*layer_findings, *_diverged(fitted, config)]
    # One root cause, one error: what follows from a class the layer probe blamed is marked as its consequence
    # (parity.compare.consequences). Only classes this architecture uses: a wrong Sigmoid cannot explain a
    # ReLU run's mismatches.
    probe_findings = settle(raw, "probe", blame, tol, config.batch_size, set())
    findings += probe_findings
    flagged = {f.param for f in probe_findings if f.severity == ERROR}  # not warnings: kinks fail nothing
    routing = pool_routing(spec, reference, fresh, whole) if config.plots and spec.features else None
    environment = {**reference.environment, "vectorized_map_fallback": reference.vectorized_map_fallback or "none"}
    def so_far(**phases) -> ParityResult:
        return ParityResult.so_far(config, spec, data, tol, fitted, whole, summaries, kinks, environment, layers or {},
                                   keras_side=reference.source, modes=phase_modes(spec, config.batch_size, routes),
                                   pool_routing=routing, **phases)

    if on_phase:
        on_phase("probe", so_far())
    reference.train()  # Keras's batch and stepping phases (train_meanwhile's thread may have computed them already)
    step_rows = np.arange(len(reference.stepping.loss)) * step_batch

    batch = None
    if reference.batch is not None:
        size = config.batch_size
        net = fresh()
        kinks_by = [] if spec.regularized else hidden  # each batch's pre-activations, to judge a ReLU kink by
        ours_batch = net.per_sample(x[:n], t[:n], kinks_by, batch=size, train=True, masks=reference.batch.masks)
        batch = compare("batch", np.arange(len(reference.batch.loss)) * size, ours_batch, reference.batch)
        routed(net)
    run_optimizer = optimizer or RunOptimizer(config.optimizer)

    def step(with_optimizer, start: int = 0, weights: dict | None = None) -> tuple[Trace, object]:
        """The training split from sample `start` stepped one sample at a time, from `weights` (the fitted ones by
        default): (the trace, what it stepped with)."""
        weights = fitted if weights is None else weights
        if closed:
            stepper = with_optimizer({k: v.copy() for k, v in weights.items()})
            return steps_closed_form(spec, weights, x[start:n], t[start:n], stepper), stepper
        net = build_network(spec, {k: v.copy() for k, v in weights.items()}, kit, wrappers)
        stepper = with_optimizer(net.params())
        masks = {k: v[start:] for k, v in reference.stepping.masks.items()}
        trace = net.step_through(x[start:n], t[start:n], stepper, hidden, batch=step_batch, masks=masks)
        routed(net)
        return trace, stepper

    def step_from(with_optimizer, weights: dict, start: int) -> Trace:
        return step(with_optimizer, start, weights)[0]

    def realigned_run(resynced: list[int], state: tuple[str, ...]):
        """settle_drift's `restart` for a user's layers: the whole run again, the same layer objects throughout, with
        Keras's parameters and optimizer state after each excused step and each step in `at` (Realigned)."""
        def restart(at: list[int]) -> Trace | None:
            trace, realigned = step(lambda params: Realigned(run_optimizer.driver(params), reference.stepping,
                                                             [*resynced, *at], state))
            return None if realigned.unwritten else trace
        return restart

    def matches_keras(with_optimizer) -> np.ndarray:
        """(n,) rows on which the same layers, stepped with another optimizer (restarted where the run was), match
        Keras's stepping."""
        again, _ = step(lambda params: with_optimizer)
        again = resynced_again(again, resynced, run_optimizer.convention_stepper, step_from, reference.stepping,
                               tuple(config.optimizer.info.state))
        return np.isin(compare("stepping", step_rows, again, reference.stepping).verdicts, ("pass", "kink"))

    ours, stepper = step(run_optimizer.stepper)
    stepping = compare("stepping", step_rows, ours, reference.stepping)
    pinned = cancelled_biases(spec) if not isinstance(stepper, (int, float)) and np.any(stepping.verdicts == "fail") \
        else []
    if pinned:  # rounding only if the same layers, with Keras's cancelled biases after every step, match every step
        again, wrapped = step(lambda p: Pinned(run_optimizer.stepper(p), reference.stepping.params_after, pinned))
        rechecked = compare("stepping", step_rows, again, reference.stepping)
        matched = bool(np.all(np.isin(rechecked.verdicts, ("pass", "kink"))))
        pinned = [pinned_finding(pinned, config.optimizer.name, stepping)] if matched else []
        if matched:
            ours, stepper, stepping = again, wrapped._driver, rechecked
    resynced, resync_findings = [], []
    # From Keras's parameters and optimizer state after an excused step (batch-wise steps record no kinks to excuse).
    # The optimizer is judged on `ours` as it stepped: its replays follow one unbroken trajectory.
    if not spec.regularized:
        judge_trace = lambda trace: compare("stepping", step_rows, trace, reference.stepping)  # noqa: E731
        state = tuple(config.optimizer.info.state)
        stepping, resynced, resync_findings = resync(ours, stepping, run_optimizer.stepper, step_from, judge_trace,
                                                     reference.stepping, state)
        # The book's layers hold nothing but their parameters: fresh ones from Keras's state are a fair test. A user's
        # layer may keep more (a stale copy of W), which fresh objects would hide: its own objects go on, realigned.
        restart = fresh_restarts(stepping.numpy, run_optimizer.stepper, step_from, reference.stepping, state) if closed \
            else realigned_run(resynced, state)
        stepping, drifted, drift_findings = settle_drift(stepping, restart, judge_trace)
        resynced, resync_findings = resynced + drifted, resync_findings + drift_findings
    judged = judge(run_optimizer, stepper, fitted, ours, reference.stepping, tol, matches_keras, reference.optimizer)
    if judged.excused is not None:
        _excuse_convention(stepping, judged)
    if on_phase:  # the phases are final: what reads them is drawn while the findings are settled and written
        on_phase("stepping", so_far(batch=batch, stepping=stepping))
    judged.record["state_max_abs_diff"] = {name: float(np.max(d.max_abs, initial=0.0))
                                           for name, d in stepping.state_diffs.items()}
    for phase in (batch, stepping):
        if phase is None:
            continue
        summaries[phase.phase] = PhaseSummary.of(phase, classifies)
        with_optimizer = replace(blame, optimizer=run_optimizer.book_class if judged.root_cause else None)
        found = settle(findings_for(phase), phase.phase, with_optimizer, tol, config.batch_size, flagged)
        if phase is stepping and judged.excused is not None:  # the optimizer's convention finding speaks for its rows
            found = [f for f in found if f.code != "convention"]
        findings += found
    findings += judged.findings + pinned
    findings += resync_findings
    def keras_weights_before(step: int) -> dict[str, np.ndarray]:
        return fitted if step == 0 else {k: v[step - 1] for k, v in reference.stepping.params_after.items()}

    kinks += kink_rows(stepping, data, spec, keras_weights_before, KINK_LEDGER_LIMIT - len(kinks))
    observation = [] if stepping.shape_errors else stepping_observation(stepping, fitted)
    findings += _dead_findings(summaries["probe"].dead_units(), observation)
    return ParityResult(config, spec, data, tol, fitted, whole, batch, stepping, summaries, observation, kinks,
                        with_consequence_fixes(findings), environment, layers or {}, judged.record,
                        keras_side=reference.source,
                        modes=phase_modes(spec, config.batch_size, routes), pool_routing=routing)


def _excuse_convention(stepping: PhaseResult, judged: OptimizerVerdict) -> None:
    """Failing stepping rows the optimizer's convention explains (the same layers stepped with the Keras-convention
    reference match Keras there) become `convention` rows: a warning, as the book's log(y + 1e-7) is. The
    convention finding and the report record count them."""
    finite = np.all([d.finite for d in stepping.diffs.values()], axis=0) if stepping.diffs else judged.excused
    stepping.verdicts = np.where((stepping.verdicts == "fail") & judged.excused & finite, "convention",
                                 stepping.verdicts)
    rows = int((stepping.verdicts == "convention").sum())
    judged.findings = [replace(f, count=rows) if f.code == "convention" else f for f in judged.findings]
    for convention in judged.record.get("conventions", []):
        convention["rows_excused"] = rows


def _diverged(fitted: dict[str, np.ndarray], config: RunConfig) -> list[Finding]:
    bad = [k for k, v in fitted.items() if not np.isfinite(v).all()]
    if not bad:
        return []
    return [Finding("nan", ERROR, "fit", f"the Keras fit diverged: {', '.join(bad)} are not finite after "
                    f"{config.epochs} epochs at lr {config.lr}; nothing after it can pass (lower --lr)",
                    fix=fix_for("nan", "fit"), param=bad[0])]


def _dead_findings(dead: dict, observation: list[dict]) -> list[Finding]:
    out = [Finding("dead_unit", INFO, "probe", f"{unit_name(label)} is dead on every probed sample: it passes no "
                   "gradient and never learns", layer_number=int(label.split(".")[0]), details={"unit_label": label})
           for label in dead["dead_on_every_sample"]]
    for row in observation:
        if row["side"] != "keras" or not row["dead_steps"]:
            continue
        out.append(Finding("dead_relu", INFO, "stepping", (
            f"{unit_name(row['unit'])} was dead on {row['dead_steps']} of {row['steps']} steps; on "
            f"{row['dW_zero_when_dead']} of them Keras's dW for the unit was exactly 0 and on "
            f"{row['W_unchanged_when_dead']} its W did not move, while W itself was nonzero on "
            f"{row['W_nonzero_when_dead']}: a dead ReLU zeroes dW for that sample, not W"),
            layer_number=int(row["unit"].split(".")[0]), details={"unit_label": row["unit"]}))
    return out
