"""The run's results as pandas tables: samples (probe), steps (stepping), gradients (long form)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from parity.compare import PhaseResult
from parity.dead_units import params_before, unit_moved

__all__ = ["samples_table", "steps_table", "gradients_table"]


def _columns(prefix: str, values: np.ndarray) -> dict[str, np.ndarray]:
    """One column for a single-width quantity (`x`), else one per entry (`x0`, `x1`, ...)."""
    values = values.reshape(len(values), -1)
    if values.shape[1] == 1:
        return {prefix: values[:, 0]}
    return {f"{prefix}{k}": values[:, k] for k in range(values.shape[1])}


def _sides(prefix: str, result: PhaseResult, name: str) -> dict[str, np.ndarray]:
    d = result.diffs[name]
    out = {}
    for side, values in (("numpy", d.numpy), ("keras", d.keras)):
        out |= {f"{k}_{side}": v for k, v in _columns(prefix, values).items()}
    return out


def _units(result: PhaseResult) -> dict[str, np.ndarray]:
    """Per hidden unit: pre-activation on each side and, for ReLU layers, the dead flag on each side."""
    out = {}
    for layer in result.keras.z:
        for j in range(result.keras.z[layer].shape[1]):
            out[f"z{layer}_{j}_numpy"] = result.numpy.z[layer][:, j]
            out[f"z{layer}_{j}_keras"] = result.keras.z[layer][:, j]
            if layer in result.dead_keras:
                out[f"dead{layer}_{j}_numpy"] = result.dead_numpy[layer][:, j]
                out[f"dead{layer}_{j}_keras"] = result.dead_keras[layer][:, j]
            if layer in result.saturated_keras:
                out[f"sat{layer}_{j}_numpy"] = result.saturated_numpy[layer][:, j]
                out[f"sat{layer}_{j}_keras"] = result.saturated_keras[layer][:, j]
    return out


def _gradient_columns(result: PhaseResult) -> dict[str, np.ndarray]:
    out, agree = {}, np.ones(len(result.rows), dtype=bool)
    for name, d in result.diffs.items():
        if d.kind == "gradient":
            out[f"{name}_max_abs_diff"] = d.row_max()
    for name, d in result.diffs.items():
        if d.kind == "gradient":
            zeros_numpy = (d.numpy == 0).reshape(len(d.numpy), -1)
            zeros_keras = (d.keras == 0).reshape(len(d.keras), -1)
            out[f"{name}_zeros_numpy"] = zeros_numpy.sum(axis=1)
            out[f"{name}_zeros_keras"] = zeros_keras.sum(axis=1)
            agree &= (zeros_numpy == zeros_keras).all(axis=1)
    out["zero_patterns_agree"] = agree
    return out


def samples_table(result: PhaseResult, x: np.ndarray, y: np.ndarray, split: np.ndarray,
                  classes: bool = False) -> pd.DataFrame:
    """One row per probed sample, in data order; `classes` adds each side's predicted class."""
    cols = {"sample": result.rows, **_columns("x", x), **_columns("y", y), "split": split}
    cols |= _sides("pred", result, "pred")
    if classes:
        cols |= {"class_numpy": result.numpy.pred.argmax(axis=1), "class_keras": result.keras.pred.argmax(axis=1)}
    cols |= {"loss_numpy": result.numpy.loss, "loss_keras": result.keras.loss,
             "loss_abs_diff": result.diffs["loss"].row_max(), "pred_abs_diff": result.diffs["pred"].row_max()}
    cols |= _units(result) | _gradient_columns(result)
    cols |= {"kink": result.kink, "verdict": result.verdicts}
    return pd.DataFrame(cols)


def steps_table(result: PhaseResult, x: np.ndarray, y: np.ndarray, start: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per SGD step: gradients before the update, parameters after it, and who moved."""
    cols = {"step": np.arange(len(result.rows)), "sample": result.rows, **_columns("x", x), **_columns("y", y)}
    cols |= {"loss_numpy": result.numpy.loss, "loss_keras": result.keras.loss,
             "loss_abs_diff": result.diffs["loss"].row_max()}
    cols |= {k: v for k, v in _gradient_columns(result).items() if k.endswith("_max_abs_diff")}
    cols |= {f"{name}_max_abs_diff": d.row_max() for name, d in result.diffs.items() if d.kind == "update"}
    cols |= {k: v for k, v in _units(result).items() if k.startswith("dead")}
    for side, trace in (("numpy", result.numpy), ("keras", result.keras)):
        before = params_before(trace, start)
        for layer in result.dead_keras:
            for j in range(result.dead_keras[layer].shape[1]):
                cols[f"moved{layer}_{j}_{side}"] = unit_moved(trace, before, layer, j)
    cols |= {"kink": result.kink, "verdict": result.verdicts}
    return pd.DataFrame(cols)


def gradients_table(*results: PhaseResult) -> pd.DataFrame:
    """Long form: one row per gradient entry per sample (probe) or step (stepping)."""
    frames = []
    for result in results:
        for name, d in result.diffs.items():
            if d.kind != "gradient":
                continue
            n = len(d.numpy)
            entries = d.numpy[0].size
            shape = d.numpy.shape[1:]
            index = [",".join(map(str, np.unravel_index(k, shape))) for k in range(entries)]
            layer, param = (0, "x") if name == "dx" else (int(name[2:]), name[1])
            rows = np.repeat(result.rows, entries)
            frames.append(pd.DataFrame({
                "phase": result.phase,
                "sample": rows,
                "step": np.repeat(np.arange(n), entries) if result.phase == "stepping" else pd.NA,
                "layer": layer, "param": param, "index": np.tile(index, n),
                "numpy": d.numpy.reshape(-1), "keras": d.keras.reshape(-1),
                "abs_diff": d.abs_diff.reshape(-1), "rel_diff": d.rel_diff.reshape(-1),
                "zero_numpy": d.numpy.reshape(-1) == 0, "zero_keras": d.keras.reshape(-1) == 0,
            }))
    table = pd.concat(frames, ignore_index=True)
    table["step"] = table["step"].astype("Int64")
    return table
