"""One parity run: Keras fits and computes its side once; any NumPy layer kit is compared against it. Returns data.

The probe runs in chunks of rows, so a run of any size stays in bounded memory: each chunk is
compared, summarized (PhaseSummary), searched for findings and handed to `on_chunk` (the report
writer), then dropped. Batch and stepping phases cover the training split and are kept whole.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np

from parity.compare import ERROR, INFO, PhaseResult, compare_traces, findings_for
from parity.config import RunConfig
from parity.data import Dataset
from parity.dead_units import kink_rows, stepping_observation, unit_name
from parity.findings import Finding
from parity.diagnose import FIXES, excuse_book_log, follow_mask, refine
from parity.inputs import Prepared
from parity.closed_form import per_sample_closed_form, steps_closed_form
from parity.network import ModelSpec, Trace, build_network
from parity.optimizer_stepping import OptimizerVerdict, RunOptimizer, judge
from parity.stats import PhaseSummary, merge_findings, render
from parity.tolerances import Tolerance, tolerance_for

__all__ = ["CHUNK", "chunk_rows", "KerasReference", "ParityResult", "keras_reference", "compare_numpy", "run_parity"]

CHUNK = 262_144  # the most probe rows per chunk: larger chunks amortize each compiled call
CHUNK_VALUES = 8_000_000  # per-sample values held per chunk (both sides, differences, table rows ~ 40 bytes each)


def chunk_rows(spec: ModelSpec) -> int:
    """Probe rows per chunk: as many as fit CHUNK_VALUES numbers per sample record, at most CHUNK."""
    per_sample = sum(int(np.prod(shape)) for shape in spec.shapes().values())  # one gradient entry per parameter
    per_sample += spec.input_dim + 2 * spec.output_dim + sum(s.units for _, s in spec.hidden()) + 1
    return int(min(CHUNK, max(1024, CHUNK_VALUES // per_sample)))
KINK_LEDGER_LIMIT = 200


@dataclass
class KerasReference:
    """Everything Keras computes for a prepared run; independent of the NumPy layers compared with it."""

    fitted: dict[str, np.ndarray]  # the weights both sides start from (after the Keras fit)
    side: object  # keras_side.KerasSide, at the fitted weights: computes probe chunks on demand
    x: np.ndarray  # the inputs and Keras's targets, in the run's dtype
    t: np.ndarray
    stepping: Trace
    batch: Trace | None  # mini-batch gradients at the fitted weights; None at batch size 1
    environment: dict
    optimizer: dict = field(default_factory=dict)  # the Keras optimizer built for the run (keras_optimizers.build_record)
    _cached: dict = field(default_factory=dict)

    def probe_chunks(self, bounds: list[tuple[int, int]]):
        """Yield (start, stop, Keras's trace) for each chunk, computing the next chunk in a background
        thread while the caller works on this one: TensorFlow and NumPy both release the GIL."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self.probe_chunk, *bounds[0]) if bounds else None
            for k, (start, stop) in enumerate(bounds):
                trace = pending.result()
                if k + 1 < len(bounds):
                    pending = pool.submit(self.probe_chunk, *bounds[k + 1])
                yield start, stop, trace

    def probe_chunk(self, start: int, stop: int) -> Trace:
        key = (start, stop)
        if key not in self._cached:
            # The model is shared by every run of its architecture: put this run's weights back first.
            self.side.model.set_weights(list(self.fitted.values()))
            trace = self.side.per_sample(self.x[start:stop], self.t[start:stop])
            if stop - start != len(self.x):
                return trace
            self._cached[key] = trace  # a one-chunk run is probed once, whatever kits are compared with it
        return self._cached[key]


@dataclass
class ParityResult:
    config: RunConfig
    spec: ModelSpec
    data: Dataset
    tolerance: Tolerance
    fitted: dict[str, np.ndarray]
    probe: PhaseResult | None  # the whole probe when it fit in one chunk; else None (see summaries)
    batch: PhaseResult | None
    stepping: PhaseResult
    summaries: dict[str, PhaseSummary]  # per phase: counts, maxima, dead units, zero patterns
    dead_relu_steps: list[dict]
    kinks: list[dict]
    findings: list[Finding]
    environment: dict
    layers: dict[str, str] = field(default_factory=dict)  # class name -> "reference" or "yours (...)"
    optimizer: dict = field(default_factory=dict)  # summary.json's "optimizer" (optimizer_stepping.judge)

    @property
    def classifies(self) -> bool:
        return self.spec.loss != "mean_squared_error"

    @property
    def verdict(self) -> str:
        return "fail" if any(f.severity == ERROR for f in self.findings) else "pass"

    @property
    def dead_units(self) -> dict:
        return self.summaries["probe"].dead_units()

    @property
    def saturated_units(self) -> dict:
        return self.summaries["probe"].saturated_units()

    def tolerance_used(self) -> dict[str, float]:
        """Per compared quantity, the largest share of its tolerance a difference used (1 = the limit)."""
        return {f"{phase}.{name}": v for phase, s in self.summaries.items() for name, v in s.used.items()}

    def max_abs_diff(self) -> dict[str, float]:
        """One number per compared quantity and phase; inf where something was not finite."""
        return {f"{phase}.{name}": v for phase, s in self.summaries.items() for name, v in s.max_abs.items()}


def _tolerance(config: RunConfig) -> Tolerance:
    tol = tolerance_for(config.dtype)
    if config.rtol is None and config.atol is None:
        return tol
    return replace(tol, rtol=tol.rtol if config.rtol is None else config.rtol,
                   atol=tol.atol if config.atol is None else config.atol,
                   reason="set in the configuration's [compare] section; the default was: " + tol.reason)


def _targets(spec: ModelSpec, y: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(NumPy side's t, Keras side's t): integer labels (n,) for the book's SoftmaxWithLoss where
    the loss is sparse, else the targets in the run's dtype; Keras always gets (n, target_dim)."""
    if spec.loss == "sparse_categorical_crossentropy":
        return y.reshape(-1).astype(np.int64), y.astype(dtype)
    return y.astype(dtype), y.astype(dtype)


def keras_reference(prepared: Prepared) -> KerasReference:
    """Fit (or load) the Keras model and compute Keras's stepping and batch phases; the probe comes per chunk.

    The fit and the stepping both use the run's Keras optimizer (keras_optimizers.build_keras_optimizer)."""
    from parity import keras_side  # TensorFlow loads here, not when the CLI parses its flags
    from parity.keras_optimizers import build_record
    from parity.transfer import keras_to_numpy

    config, spec = prepared.config, prepared.spec
    x = prepared.data.x.astype(config.dtype)
    _, t = _targets(spec, prepared.data.y, config.dtype)
    n = config.train
    keras_side.configure(config.dtype, config.seed)
    side = keras_side.side_for(spec)  # one model per architecture and dtype in this process
    model = side.model
    start = prepared.weights if prepared.weights is not None else keras_side.initial_weights(spec, config.seed, config.dtype)
    model.set_weights([w.astype(config.dtype) for w in start])
    side.fit(x[:n], t[:n], config.epochs, config.batch_size, config.optimizer, config.seed)
    fitted = keras_to_numpy(spec, keras_side.weights_of(model), config.dtype)
    batch = side.per_batch(x[:n], t[:n], config.batch_size) if 1 < config.batch_size <= n else None
    stepping = side.step_through(x[:n], t[:n], config.optimizer)
    model.set_weights(list(fitted.values()))  # back to the fitted weights, for the probe
    environment = keras_side.environment()
    return KerasReference(fitted, side, x, t, stepping, batch, environment, build_record(config.optimizer, config.dtype))


def compare_numpy(prepared: Prepared, reference: KerasReference, kit: dict | None = None,
                  layer_findings: list[dict] = (), layers: dict[str, str] | None = None,
                  on_chunk: Callable[[PhaseResult], None] | None = None, chunk: int | None = None,
                  progress: Callable | None = None, optimizer: RunOptimizer | None = None) -> ParityResult:
    """Run the NumPy stack built from `kit` (reference layers where absent) against Keras's side.

    Without a kit the reference layers' probe and stepping records are computed in closed form (equal
    to running the layer objects sample by sample, as tested); a user's classes always run as objects,
    sample by sample, and the batch probe always runs the layer objects. Stepping uses `optimizer` (the
    user's class, or the book's for the run's optimizer when None), judged by optimizer_stepping.judge.
    """
    config, spec, data = prepared.config, prepared.spec, prepared.data
    tol = _tolerance(config)
    hidden = [i for i, _ in spec.hidden()]
    relu = [i for i, layer in spec.hidden() if layer.activation == "relu"]
    sigmoid = [i for i, layer in spec.hidden() if layer.activation == "sigmoid"]
    x = reference.x
    t, _ = _targets(spec, data.y, config.dtype)
    n, fitted = config.train, reference.fitted
    book_log = any(f["code"] == "convention" for f in layer_findings)
    classifies = spec.loss != "mean_squared_error"

    def fresh():
        return build_network(spec, {k: v.copy() for k, v in fitted.items()}, kit)

    def compare(phase, rows, ours, theirs):
        result = compare_traces(phase, rows, ours, theirs, tol, relu, sigmoid)
        if book_log:
            excuse_book_log(result)
        return result

    # The probe, chunk by chunk.
    chunk = chunk or chunk_rows(spec)
    summaries, raw, kinks, whole = {}, [], [], None
    bounds = [(start, min(start + chunk, len(data))) for start in range(0, len(data), chunk)]
    chunks = reference.probe_chunks(bounds)
    for start, stop, theirs in (progress(chunks, "probe", len(bounds)) if progress else chunks):
        ours = per_sample_closed_form(spec, fitted, x[start:stop], t[start:stop]) if kit is None \
            else fresh().per_sample(x[start:stop], t[start:stop], hidden)
        part = compare("probe", np.arange(start, stop), ours, theirs)
        raw += findings_for(part)
        summary = PhaseSummary.of(part, classifies)
        summaries["probe"] = summary if "probe" not in summaries else summaries["probe"].merge(summary)
        kinks += kink_rows(part, data, spec, lambda row: fitted, KINK_LEDGER_LIMIT - len(kinks))
        if on_chunk:
            on_chunk(part)
        whole = part if stop - start == len(data) else None
    findings = [{**f, "fix": FIXES.get(f["code"], "") if f["severity"] != INFO else ""} for f in layer_findings]
    findings += _diverged(fitted, config)
    # One root cause, one error: what follows from a class the layer probe blamed is marked as its consequence.
    # Only classes this architecture uses: a wrong Sigmoid cannot explain a ReLU run's mismatches.
    at_fault = {f.get("layer") for f in layer_findings if f["severity"] == ERROR} & spec.classes()
    mask_bug = any(f["code"] == "mask_mismatch" and f["severity"] == ERROR for f in layer_findings)
    probe_findings = render(follow_mask([refine(f, "probe", tol, config.batch_size, set()) for f in merge_findings(raw)],
                                        "probe", mask_bug))
    _link(probe_findings, "probe", at_fault, set())
    for f in probe_findings:  # the book's log(y + 1e-7) rows belong to the layer probe's convention warning
        if f["code"] == "convention" and book_log:
            f["consequence_of"] = "layer probe"
    findings += probe_findings
    flagged = {f.get("param") for f in probe_findings if f["severity"] == ERROR}  # not warnings: kinks fail nothing

    batch = None
    if reference.batch is not None:
        size = config.batch_size
        batch = compare("batch", np.arange(len(reference.batch.loss)) * size,
                        fresh().per_sample(x[:n], t[:n], [], batch=size), reference.batch)
    run_optimizer = optimizer or RunOptimizer(config.optimizer)

    def step(with_optimizer) -> tuple[Trace, object]:
        """The training split stepped one sample at a time: (the trace, what it stepped with)."""
        if kit is None:
            stepper = with_optimizer({k: v.copy() for k, v in fitted.items()})
            return steps_closed_form(spec, fitted, x[:n], t[:n], stepper), stepper
        net = fresh()
        stepper = with_optimizer(net.params())
        return net.step_through(x[:n], t[:n], stepper, hidden), stepper

    def matches_keras(with_optimizer) -> np.ndarray:
        """(n,) rows on which the same layers, stepped with another optimizer, match Keras's stepping."""
        again, _ = step(lambda params: with_optimizer)
        return np.isin(compare("stepping", np.arange(n), again, reference.stepping).verdicts, ("pass", "kink"))

    ours, stepper = step(run_optimizer.stepper)
    stepping = compare("stepping", np.arange(n), ours, reference.stepping)
    judged = judge(run_optimizer, stepper, fitted, ours, reference.stepping, tol, matches_keras, reference.optimizer)
    if judged.excused is not None:
        _excuse_convention(stepping, judged)
    judged.record["state_max_abs_diff"] = {name: float(np.max(d.max_abs, initial=0.0))
                                           for name, d in stepping.state_diffs.items()}
    for phase in (batch, stepping):
        if phase is None:
            continue
        summaries[phase.phase] = PhaseSummary.of(phase, classifies)
        found = render(follow_mask([refine(f, phase.phase, tol, config.batch_size, flagged)
                                    for f in merge_findings(findings_for(phase))], phase.phase, mask_bug))
        _link(found, phase.phase, at_fault, flagged)
        if phase is stepping:
            found = _follow_optimizer(found, judged)
        findings += found
    findings += judged.findings
    def keras_weights_before(step: int) -> dict[str, np.ndarray]:
        return fitted if step == 0 else {k: v[step - 1] for k, v in reference.stepping.params_after.items()}

    kinks += kink_rows(stepping, data, spec, keras_weights_before, KINK_LEDGER_LIMIT - len(kinks))
    observation = [] if stepping.shape_errors else stepping_observation(stepping, fitted)
    findings += _dead_findings(summaries["probe"].dead_units(), observation)
    return ParityResult(config, spec, data, tol, fitted, whole, batch, stepping, summaries, observation, kinks,
                        [Finding.of(f) for f in findings], {**reference.environment,
                                   "vectorized_map_fallback": reference.side.vectorized_map_fallback or "none"},
                        layers or {}, judged.record)


def run_parity(prepared: Prepared, kit: dict | None = None) -> ParityResult:
    """Keras's side, then the NumPy stack (reference layers, or those in `kit`) against it."""
    return compare_numpy(prepared, keras_reference(prepared), kit)


def _excuse_convention(stepping: PhaseResult, judged: OptimizerVerdict) -> None:
    """Failing stepping rows the optimizer's convention explains (the same layers stepped with the Keras-convention
    reference match Keras there) become `convention` rows: a warning, as the book's log(y + 1e-7) is. The
    convention finding and the report record count them."""
    finite = np.all([d.finite for d in stepping.diffs.values()], axis=0) if stepping.diffs else judged.excused
    stepping.verdicts = np.where((stepping.verdicts == "fail") & judged.excused & finite, "convention",
                                 stepping.verdicts)
    rows = int((stepping.verdicts == "convention").sum())
    for f in judged.findings:
        if f["code"] == "convention":
            f["count"] = rows
    for convention in judged.record.get("conventions", []):
        convention["rows_excused"] = rows


def _follow_optimizer(found: list[dict], judged: OptimizerVerdict) -> list[dict]:
    """Stepping findings in the light of the optimizer's: its convention finding speaks for the convention rows
    (the comparison's own note is about the cross-entropy's log), and with an error on the optimizer class the
    comparison's mismatches follow from it."""
    if judged.excused is not None:
        found = [f for f in found if f["code"] != "convention"]
    if judged.root_cause:
        for f in found:
            if f["severity"] == ERROR and not f.get("consequence_of") and f.get("layer") is None:
                f["consequence_of"] = "optimizer"
    return found


def _link(found: list[dict], phase: str, at_fault: set, flagged: set) -> None:
    """Mark each error that follows from an earlier one: from the layer probe's when it blamed a class (a
    finding that names another class is its own), else, in the later phases, from the probe's (they
    repeat what it found). Kept, with `consequence_of` naming the phase whose finding explains it."""
    for f in found:
        if f["severity"] != ERROR or f.get("consequence_of"):
            continue
        if at_fault and (f.get("layer") is None or f["layer"] in at_fault):
            f["consequence_of"] = "layer probe"
        elif (phase == "stepping" and flagged) or (phase == "batch" and f.get("param") in flagged):
            f["consequence_of"] = "probe"


def _diverged(fitted: dict[str, np.ndarray], config: RunConfig) -> list[dict]:
    bad = [k for k, v in fitted.items() if not np.isfinite(v).all()]
    if not bad:
        return []
    return [{"code": "nan", "severity": ERROR, "phase": "fit", "param": bad[0],
             "fix": "lower --lr, or fit fewer --epochs: the Keras model diverged before any comparison",
             "message": f"the Keras fit diverged: {', '.join(bad)} are not finite after {config.epochs} epochs "
                        f"at lr {config.lr}; nothing after it can pass (lower --lr)"}]


def _dead_findings(dead: dict, observation: list[dict]) -> list[dict]:
    out = [{"code": "dead_unit", "severity": INFO, "phase": "probe", "layer_number": int(label.split(".")[0]),
            "unit_label": label, "message": f"{unit_name(label)} is dead on every probed sample: it passes no gradient and never learns"}
           for label in dead["dead_on_every_sample"]]
    for row in observation:
        if row["side"] != "keras" or not row["dead_steps"]:
            continue
        out.append({"code": "dead_relu", "severity": INFO, "phase": "stepping",
                    "layer_number": int(row["unit"].split(".")[0]), "unit_label": row["unit"], "message": (
            f"{unit_name(row['unit'])} was dead on {row['dead_steps']} of {row['steps']} steps; on "
            f"{row['dW_zero_when_dead']} of them Keras's dW for the unit was exactly 0 and on "
            f"{row['W_unchanged_when_dead']} its W did not move, while W itself was nonzero on "
            f"{row['W_nonzero_when_dead']}: a dead ReLU zeroes dW for that sample, not W")})
    return out
