"""One parity run: Keras fits and computes its side once; any NumPy layer kit is compared against it. Returns data."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from parity.compare import ERROR, INFO, PhaseResult, compare_traces, findings_for
from parity.config import RunConfig
from parity.data import Dataset
from parity.dead_units import dead_unit_stats, kink_ledger, saturation_stats, stepping_observation
from parity.diagnose import FIXES, refine
from parity.inputs import Prepared
from parity.network import ModelSpec, Trace, build_network
from parity.tolerances import Tolerance, tolerance_for

__all__ = ["KerasReference", "ParityResult", "keras_reference", "compare_numpy", "run_parity"]


@dataclass
class KerasReference:
    """Everything Keras computed for a prepared run; independent of the NumPy layers compared with it."""

    fitted: dict[str, np.ndarray]  # the weights both sides start from (after the Keras fit)
    probe: Trace
    stepping: Trace
    batch: Trace | None  # mini-batch gradients at the fitted weights; None at batch size 1
    environment: dict


@dataclass
class ParityResult:
    config: RunConfig
    spec: ModelSpec
    data: Dataset
    tolerance: Tolerance
    fitted: dict[str, np.ndarray]
    probe: PhaseResult
    stepping: PhaseResult
    batch: PhaseResult | None
    dead_units: dict
    saturated_units: dict
    dead_relu_steps: list[dict]
    kinks: list[dict]
    findings: list[dict]
    environment: dict
    layers: dict[str, str] = field(default_factory=dict)  # class name -> whose: "yours (...)" or "reference"

    @property
    def classifies(self) -> bool:
        return self.spec.loss != "mean_squared_error"

    @property
    def verdict(self) -> str:
        return "fail" if any(f["severity"] == ERROR for f in self.findings) else "pass"

    @property
    def phases(self) -> list[PhaseResult]:
        return [p for p in (self.probe, self.batch, self.stepping) if p is not None]

    def tolerance_used(self) -> dict[str, float]:
        """Per compared quantity, the largest share of its tolerance a difference used (1 = the limit)."""
        return {f"{p.phase}.{name}": float(d.used.max(initial=0.0)) for p in self.phases for name, d in p.diffs.items()}

    def max_abs_diff(self) -> dict[str, float]:
        """One number per compared quantity and phase; inf where something was not finite."""
        return {f"{p.phase}.{name}": float(d.row_max().max(initial=0.0)) for p in self.phases for name, d in p.diffs.items()}


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
    """Fit (or load) the Keras model and compute Keras's side of every phase."""
    from parity import keras_side  # TensorFlow loads here, not when the CLI parses its flags
    from parity.transfer import keras_to_numpy

    config, spec = prepared.config, prepared.spec
    x = prepared.data.x.astype(config.dtype)
    _, t = _targets(spec, prepared.data.y, config.dtype)
    n = config.train
    keras_side.configure(config.dtype, config.seed)
    model = keras_side.build_model(spec)
    if prepared.weights is not None:
        model.set_weights([w.astype(config.dtype) for w in prepared.weights])
    keras_side.fit(model, spec, x[:n], t[:n], config.epochs, config.batch_size, config.lr)
    fitted = keras_to_numpy(spec, keras_side.weights_of(model), config.dtype)
    probe = keras_side.per_sample(model, spec, x, t)
    batch = keras_side.per_sample(model, spec, x[:n], t[:n], batch=config.batch_size) \
        if 1 < config.batch_size <= n else None
    stepping = keras_side.step_through(model, spec, x[:n], t[:n], config.lr)  # moves the model: last
    return KerasReference(fitted, probe, stepping, batch, keras_side.environment())


def compare_numpy(prepared: Prepared, reference: KerasReference, kit: dict | None = None,
                  layer_findings: list[dict] = (), layers: dict[str, str] | None = None) -> ParityResult:
    """Run the NumPy stack built from `kit` (reference layers where absent) against Keras's side."""
    config, spec, data = prepared.config, prepared.spec, prepared.data
    tol = _tolerance(config)
    hidden = [i for i, _ in spec.hidden()]
    relu = [i for i, layer in spec.hidden() if layer.activation == "relu"]
    sigmoid = [i for i, layer in spec.hidden() if layer.activation == "sigmoid"]
    x = data.x.astype(config.dtype)
    t, _ = _targets(spec, data.y, config.dtype)
    n, fitted = config.train, reference.fitted

    def fresh():
        return build_network(spec, {k: v.copy() for k, v in fitted.items()}, kit)

    def compare(phase, rows, ours, theirs):
        return compare_traces(phase, rows, ours, theirs, tol, relu, sigmoid)

    probe = compare("probe", np.arange(len(data)), fresh().per_sample(x, t, hidden), reference.probe)
    batch = None
    if reference.batch is not None:
        size = config.batch_size
        batch = compare("batch", np.arange(len(reference.batch.loss)) * size,
                        fresh().per_sample(x[:n], t[:n], [], batch=size), reference.batch)
    stepping = compare("stepping", np.arange(n), fresh().step_through(x[:n], t[:n], config.lr, hidden),
                       reference.stepping)

    findings = [{**f, "fix": FIXES.get(f["code"], "")} for f in layer_findings]
    bad_weights = [k for k, v in fitted.items() if not np.isfinite(v).all()]
    if bad_weights:
        findings.append({"code": "nan", "severity": ERROR, "param": bad_weights[0],
                         "fix": "lower --lr, or fit fewer --epochs: the Keras model diverged before any comparison",
                         "message": f"the Keras fit diverged: {', '.join(bad_weights)} are not finite after "
                                    f"{config.epochs} epochs at lr {config.lr}; nothing after it can pass (lower --lr)"})
    probe_flagged = set()
    book_log = any(f["code"] == "convention" for f in layer_findings)
    for phase in (probe, batch, stepping):
        if phase is None:
            continue
        for f in findings_for(phase):
            f = refine(f, phase, tol, config.batch_size, probe_flagged, book_log)
            if f["code"] == "convention":
                phase.excuse(f["param"], "convention")
            # Later phases repeat what the probe found: kept, but marked as its consequence.
            if phase.phase == "stepping" and probe_flagged or (phase.phase == "batch" and f.get("param") in probe_flagged):
                f["consequence_of"] = "probe"
            findings.append(f)
        if phase.phase == "probe":
            probe_flagged = {f.get("param") for f in findings if f["severity"] != INFO and "phase" not in f}
    dead = dead_unit_stats(probe)
    observation = [] if stepping.shape_errors else stepping_observation(stepping, fitted)
    findings += _dead_findings(dead, observation)
    return ParityResult(config, spec, data, tol, fitted, probe, stepping, batch, dead, saturation_stats(probe),
                        observation, kink_ledger(probe, stepping, data, fitted, spec, reference),
                        findings, reference.environment, layers or {})


def run_parity(prepared: Prepared, kit: dict | None = None) -> ParityResult:
    """Keras's side, then the NumPy stack (reference layers, or those in `kit`) against it."""
    return compare_numpy(prepared, keras_reference(prepared), kit)


def _dead_findings(dead: dict, observation: list[dict]) -> list[dict]:
    out = [{"code": "dead_unit", "severity": INFO, "layer": int(label.split(".")[0]),
            "message": f"unit {label} is dead on every probed sample: it passes no gradient and never learns"}
           for label in dead["dead_on_every_sample"]]
    for row in observation:
        if row["side"] != "keras" or not row["dead_steps"]:
            continue
        out.append({"code": "dead_relu", "severity": INFO, "layer": int(row["unit"].split(".")[0]), "message": (
            f"unit {row['unit']} was dead on {row['dead_steps']} of {row['steps']} steps; on "
            f"{row['dW_zero_when_dead']} of them Keras's dW for the unit was exactly 0 and on "
            f"{row['W_unchanged_when_dead']} its W did not move, while W itself was nonzero on "
            f"{row['W_nonzero_when_dead']}: a dead ReLU zeroes dW for that sample, not W")})
    return out
