"""One parity run: data, Keras fit, weight copy, probe and stepping on both sides, verdict. Returns data."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np


from parity.compare import ERROR, INFO, PhaseResult, compare_traces, findings_for
from parity.config import RunConfig
from parity.data import Dataset
from parity.dead_units import dead_unit_stats, saturation_stats, stepping_observation
from parity.inputs import Prepared
from parity.network import ModelSpec, build_network
from parity.tolerances import Tolerance, tolerance_for

__all__ = ["ParityResult", "run_parity"]


@dataclass
class ParityResult:
    config: RunConfig
    spec: ModelSpec
    data: Dataset
    tolerance: Tolerance
    fitted: dict[str, np.ndarray]  # the weights both sides start from (after the Keras fit)
    probe: PhaseResult
    stepping: PhaseResult
    dead_units: dict
    saturated_units: dict
    dead_relu_steps: list[dict]
    findings: list[dict]
    environment: dict

    @property
    def classifies(self) -> bool:
        return self.spec.loss != "mean_squared_error"

    @property
    def verdict(self) -> str:
        return "fail" if any(f["severity"] == ERROR for f in self.findings) else "pass"

    def tolerance_used(self) -> dict[str, float]:
        """Per compared quantity, the largest share of its tolerance a difference used (1 = the limit)."""
        return {f"{phase.phase}.{name}": float(d.used.max(initial=0.0))
                for phase in (self.probe, self.stepping) for name, d in phase.diffs.items()}

    def max_abs_diff(self) -> dict[str, float]:
        """One number per compared quantity, probe and stepping; inf where something was not finite."""
        out = {}
        for phase in (self.probe, self.stepping):
            for name, d in phase.diffs.items():
                out[f"{phase.phase}.{name}"] = float(d.row_max().max(initial=0.0))
        return out


def _targets(spec: ModelSpec, y: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(NumPy side's t, Keras side's t): integer labels (n,) for the book's SoftmaxWithLoss where
    the loss is sparse, else the targets in the run's dtype; Keras always gets (n, target_dim)."""
    if spec.loss == "sparse_categorical_crossentropy":
        return y.reshape(-1).astype(np.int64), y.astype(dtype)
    return y.astype(dtype), y.astype(dtype)


def run_parity(prepared: Prepared, kit: dict | None = None) -> ParityResult:
    """Run a prepared comparison; `kit` swaps in other layer classes for the NumPy side."""
    from parity import keras_side  # TensorFlow loads here, not when the CLI parses its flags
    from parity.transfer import keras_to_numpy

    config, spec, data = prepared.config, prepared.spec, prepared.data
    tol = tolerance_for(config.dtype)
    if config.rtol is not None or config.atol is not None:
        tol = replace(tol, rtol=tol.rtol if config.rtol is None else config.rtol,
                      atol=tol.atol if config.atol is None else config.atol,
                      reason="set in the configuration's [compare] section; the default was: " + tol.reason)
    hidden = [i for i, _ in spec.hidden()]
    relu_layers = [i for i, layer in spec.hidden() if layer.activation == "relu"]
    sigmoid_layers = [i for i, layer in spec.hidden() if layer.activation == "sigmoid"]
    x = data.x.astype(config.dtype)
    t_numpy, t_keras = _targets(spec, data.y, config.dtype)
    n = config.train

    keras_side.configure(config.dtype, config.seed)
    model = keras_side.build_model(spec)
    if prepared.weights is not None:
        model.set_weights([w.astype(config.dtype) for w in prepared.weights])
    keras_side.fit(model, spec, x[:n], t_keras[:n], config.epochs, config.batch_size, config.lr)
    fitted = keras_to_numpy(spec, keras_side.weights_of(model), config.dtype)

    def compare(phase, rows, ours, theirs):
        return compare_traces(phase, rows, ours, theirs, tol, relu_layers, sigmoid_layers)

    network = build_network(spec, {k: v.copy() for k, v in fitted.items()}, kit)
    probe = compare("probe", np.arange(len(data)), network.per_sample(x, t_numpy, hidden),
                    keras_side.per_sample(model, spec, x, t_keras))
    network = build_network(spec, {k: v.copy() for k, v in fitted.items()}, kit)
    stepping = compare("stepping", np.arange(n), network.step_through(x[:n], t_numpy[:n], config.lr, hidden),
                       keras_side.step_through(model, spec, x[:n], t_keras[:n], config.lr))

    dead = dead_unit_stats(probe)
    observation = stepping_observation(stepping, fitted)
    findings = findings_for(probe) + findings_for(stepping) + _dead_findings(dead, observation)
    return ParityResult(config, spec, data, tol, fitted, probe, stepping, dead, saturation_stats(probe),
                        observation, findings, keras_side.environment())


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
