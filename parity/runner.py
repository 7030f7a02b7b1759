"""One parity run: data, Keras fit, weight copy, probe and stepping on both sides, verdict. Returns data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.compare import ERROR, INFO, PhaseResult, compare_traces, findings_for
from parity.config import RunConfig
from parity.data import Dataset
from parity.dead_units import dead_unit_stats, stepping_observation
from parity.network import ModelSpec, build_network
from parity.scenarios import SCENARIOS
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
    dead_relu_steps: list[dict]
    findings: list[dict]
    environment: dict

    @property
    def verdict(self) -> str:
        return "fail" if any(f["severity"] == ERROR for f in self.findings) else "pass"

    def max_abs_diff(self) -> dict[str, float]:
        """One number per compared quantity, probe and stepping; inf where something was not finite."""
        out = {}
        for phase in (self.probe, self.stepping):
            for name, d in phase.diffs.items():
                out[f"{phase.phase}.{name}"] = float(d.row_max().max(initial=0.0))
        return out


def run_parity(config: RunConfig, kit: dict | None = None) -> ParityResult:
    """Run the configured scenario; `kit` swaps in other layer classes for the NumPy side."""
    from parity import keras_side  # TensorFlow loads here, not when the CLI parses its flags

    scenario = SCENARIOS[config.scenario]
    spec = scenario.spec
    data = scenario.make_data(config.samples, config.train, config.seed)
    tol = tolerance_for(config.dtype)
    relu_layers = [i for i, layer in spec.hidden() if layer.activation == "relu"]
    x, y = data.x.astype(config.dtype), data.y.astype(config.dtype)
    x_train, y_train = x[:config.train], y[:config.train]

    keras_side.configure(config.dtype, config.seed)
    model = keras_side.build_model(spec)
    keras_side.fit(model, spec, x_train, y_train, config.epochs, config.batch_size, config.lr)
    from parity.transfer import keras_to_numpy
    fitted = keras_to_numpy(spec, keras_side.weights_of(model), config.dtype)

    network = build_network(spec, {k: v.copy() for k, v in fitted.items()}, kit)
    probe = compare_traces("probe", np.arange(len(data)), network.per_sample(x, y, [i for i, _ in spec.hidden()]),
                           keras_side.per_sample(model, spec, x, y), tol, relu_layers)

    network = build_network(spec, {k: v.copy() for k, v in fitted.items()}, kit)
    stepping = compare_traces(
        "stepping", np.arange(config.train),
        network.step_through(x_train, y_train, config.lr, [i for i, _ in spec.hidden()]),
        keras_side.step_through(model, spec, x_train, y_train, config.lr), tol, relu_layers)

    dead = dead_unit_stats(probe)
    observation = stepping_observation(stepping, fitted)
    findings = findings_for(probe) + findings_for(stepping) + _dead_findings(dead, observation)
    return ParityResult(config, spec, data, tol, fitted, probe, stepping, dead, observation, findings,
                        keras_side.environment())


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
