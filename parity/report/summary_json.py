"""summary.json: a run's result as one JSON document (its schema: reports/README.md)."""

from __future__ import annotations

import math

import numpy as np

from parity.compare.outcome import ParityResult
from parity.settings.config import feature_records
from parity.user_code.loader import LAYER_NAMES
from parity.settings.spec import MODE_LAYERS
from parity.user_code.protocol import IMAGE_LAYERS
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


def _version(package: str) -> str:
    """A library's version, without importing it for that alone (matplotlib costs a run without plots 0.2-0.5 s)."""
    import sys
    from importlib.metadata import version

    module = sys.modules.get(package)
    return getattr(module, "__version__", None) or version(package)


def summary(result: ParityResult, files: list[str]) -> dict:
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
        "rows": {phase: {"rows": s.rows, **_verdicts(s.verdicts, result.spec)} for phase, s in result.summaries.items()},
        "dead_units": result.dead_units,
        **({"dead_filters": result.dead_filters} if result.dead_filters else {}),  # convolutions followed by a ReLU
        "saturated_units": result.saturated_units,
        **({"classes": probe.classes} if result.classifies else {}),
        "dead_relu_steps": result.dead_relu_steps,
        "zero_patterns": {phase: s.zero_patterns for phase, s in result.summaries.items()},
        "kinks": result.kinks,
        "layers": result.layers or {name: "reference" for name in LAYER_NAMES
                                    if (name not in IMAGE_LAYERS or result.spec.features)
                                    and (name not in MODE_LAYERS or result.spec.regularized)},
        # each phase's Dropout/BatchNormalization mode and why, and each Dropout's mask route (regularized models)
        **({"modes": result.modes} if result.modes else {}),
        "optimizer": result.optimizer,
        "findings": [f.as_dict() for f in result.findings],
        "config": result.config.as_dict(),
        "model": {"input_dim": result.spec.input_dim, "loss": result.spec.loss, "source": (
                      str(result.config.model_path) if result.config.model_path else f"scenario {result.config.scenario}"),
                  "layers": [_layer(s) for s in result.spec.layers],
                  **_features(result.spec)},
        "fitted_weights": {k: v.tolist() for k, v in result.fitted.items()},
        "environment": {**result.environment, "pandas": _version("pandas"), "matplotlib": _version("matplotlib")},
        "keras_side": result.keras_side,  # computed in this process, or recorded: by which Keras, where and when
        "files": files,
    })


def _layer(s) -> dict:
    """A Dense layer's record: units and activation, and its BatchNormalization and Dropout where it has them."""
    out = {"units": s.units, "activation": s.activation}
    if s.batch_norm is not None:
        out["batch_norm"] = {"momentum": s.batch_norm.momentum, "epsilon": s.batch_norm.epsilon}
    return out | ({"dropout": s.dropout} if s.dropout is not None else {})


def _features(spec) -> dict:
    """An image model's input shape and convolutions and poolings (nothing for a chain of Dense layers)."""
    if not spec.features:
        return {}
    return {"input_shape": list(spec.input_shape), "features": feature_records(spec.features),
            "parameters": {name: list(shape) for name, shape in spec.shapes().items()}}


def _verdicts(counts: dict, spec) -> dict:
    """Rows per verdict; `tie` (a max-pooling tie) only for a model that pools and `unjudged` (steps after an excused
    one the NumPy side could not restart from) only where there are some, so a run's layout is otherwise unchanged."""
    return {k: v for k, v in counts.items() if (k != "tie" or spec.pooled_maps()) and (k != "unjudged" or v)}
