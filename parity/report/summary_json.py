"""summary.json: a run's result as one JSON document (its schema: reports/README.md)."""

from __future__ import annotations

import math

import numpy as np

from parity.compare.outcome import ParityResult
from parity.user_code.loader import LAYER_NAMES
from parity.version import SCHEMA_VERSION, TOOL, __version__

__all__ = ["summary"]


def _finite_or_str(value):
    """JSON has no inf/NaN: write them as strings so the file stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite_or_str(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_str(v) for v in value]
    if isinstance(value, np.generic):
        return _finite_or_str(value.item())
    return value


def summary(result: ParityResult, files: list[str]) -> dict:
    import matplotlib
    import pandas

    probe = result.summaries["probe"]

    return _finite_or_str({
        "tool": TOOL,
        "version": __version__,
        "schema_version": SCHEMA_VERSION,
        "kind": "report",  # what wrote the folder (parity.report.folder.KINDS): --out replaces only its own kind
        "verdict": result.verdict,
        "scenario": result.config.scenario,
        "dtype": result.config.dtype,
        "tolerances": {result.config.dtype: result.tolerance.as_dict(),
                       "rule": "pass when |numpy - keras| <= atol + rtol * |keras| and both are finite"},
        "max_abs_diff": result.max_abs_diff(),
        "tolerance_used": result.tolerance_used(),
        "rows": {phase: {"rows": s.rows, **s.verdicts} for phase, s in result.summaries.items()},
        "dead_units": result.dead_units,
        "saturated_units": result.saturated_units,
        **({"classes": probe.classes} if result.classifies else {}),
        "dead_relu_steps": result.dead_relu_steps,
        "zero_patterns": {phase: s.zero_patterns for phase, s in result.summaries.items()},
        "kinks": result.kinks,
        "layers": result.layers or {name: "reference" for name in LAYER_NAMES},
        "optimizer": result.optimizer,
        "findings": [f.as_dict() for f in result.findings],
        "config": result.config.as_dict(),
        "model": {"input_dim": result.spec.input_dim, "loss": result.spec.loss, "source": (
                      str(result.config.model_path) if result.config.model_path else f"scenario {result.config.scenario}"),
                  "layers": [{"units": s.units, "activation": s.activation} for s in result.spec.layers]},
        "fitted_weights": {k: v.tolist() for k, v in result.fitted.items()},
        "environment": {**result.environment, "pandas": pandas.__version__, "matplotlib": matplotlib.__version__},
        "files": files,
    })
