"""ParityResult: what comparing one NumPy kit with the Keras side comes to, as arrays and typed findings.

The Report (parity.result) wraps it for the doors; the report package renders it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parity.compare.diff import ERROR, PhaseResult
from parity.compare.findings import Finding
from parity.compare.pool_routing import PoolRouting
from parity.compare.stats import PhaseSummary
from parity.settings.config import RunConfig
from parity.settings.data import Dataset
from parity.settings.spec import ModelSpec
from parity.settings.tolerances import Tolerance

__all__ = ["ParityResult"]


@dataclass
class ParityResult:
    config: RunConfig
    spec: ModelSpec
    data: Dataset
    tolerance: Tolerance
    fitted: dict[str, np.ndarray]
    probe: PhaseResult | None  # the whole probe when it fit in one chunk; else None (see summaries)
    batch: PhaseResult | None
    stepping: PhaseResult  # None only in a result of the probe alone (so_far)
    summaries: dict[str, PhaseSummary]  # per phase: counts, maxima, dead units, zero patterns
    dead_relu_steps: list[dict]
    kinks: list[dict]
    findings: list[Finding]
    environment: dict
    layers: dict[str, str] = field(default_factory=dict)  # class name -> "reference" or "yours (...)"
    optimizer: dict = field(default_factory=dict)  # summary.json's "optimizer" (optimizer_stepping.judge)
    keras_side: dict = field(default_factory=dict)  # where the Keras side came from: computed here, or recorded
    modes: dict = field(default_factory=dict)  # each phase's Dropout/BatchNormalization mode and why (compare.modes)
    pool_routing: PoolRouting | None = None  # pool_routing.png's data: a run with plots and a pooling only

    @classmethod
    def so_far(cls, config: RunConfig, spec: ModelSpec, data: Dataset, tolerance: Tolerance,
               fitted: dict[str, np.ndarray], probe: PhaseResult | None, summaries: dict[str, PhaseSummary],
               kinks: list[dict], environment: dict, layers: dict[str, str], batch: PhaseResult | None = None,
               stepping: PhaseResult | None = None, **known) -> "ParityResult":
        """What the run has come to so far, without findings: the probe alone (before Keras steps), then its phases
        too. Enough for the pictures that read them (parity.report.plots), drawn while the run goes on."""
        return cls(config, spec, data, tolerance, fitted, probe, batch, stepping, summaries, [], kinks, [], environment,
                   layers, **known)

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
    def dead_filters(self) -> dict:
        """Per convolution followed by a ReLU, its filters' dead positions (PhaseSummary.dead_filters); empty without."""
        return self.summaries["probe"].dead_filters()

    @property
    def saturated_units(self) -> dict:
        return self.summaries["probe"].saturated_units()

    def tolerance_used(self) -> dict[str, float]:
        """Per compared quantity, the largest share of its tolerance a difference used (1 = the limit)."""
        return {f"{phase}.{name}": v for phase, s in self.summaries.items() for name, v in s.used.items()}

    def max_abs_diff(self) -> dict[str, float]:
        """One number per compared quantity and phase; inf where something was not finite."""
        return {f"{phase}.{name}": v for phase, s in self.summaries.items() for name, v in s.max_abs.items()}
