"""The run's results as pandas tables: samples (probe), steps (stepping), gradients (long form)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from parity.compare import VERDICTS, PhaseResult
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
            out[f"{name}_max_abs_diff"] = d.max_abs
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
    cols = {"sample": result.rows, **_columns("x", x), **_columns("y", y),
            "split": _category(["train", "test"], (split == "test").astype(np.int8))}
    cols |= _sides("pred", result, "pred")
    if classes:
        cols |= {"class_numpy": result.numpy.pred.argmax(axis=1), "class_keras": result.keras.pred.argmax(axis=1)}
    cols |= {"loss_numpy": result.numpy.loss, "loss_keras": result.keras.loss,
             "loss_abs_diff": result.diffs["loss"].max_abs, "pred_abs_diff": result.diffs["pred"].max_abs}
    cols |= _units(result) | _gradient_columns(result)
    cols |= {"kink": result.kink, "verdict": _verdicts(result.verdicts)}
    return pd.DataFrame(cols)


def _verdicts(verdicts: np.ndarray) -> pd.Categorical:
    codes = np.zeros(len(verdicts), dtype=np.int8)
    for k, name in enumerate(VERDICTS):
        codes[verdicts == name] = k
    return _category(list(VERDICTS), codes)


def steps_table(result: PhaseResult, x: np.ndarray, y: np.ndarray, start: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per optimizer step: gradients before the update, parameters and optimizer state after it, and
    who moved."""
    cols = {"step": np.arange(len(result.rows)), "sample": result.rows, **_columns("x", x), **_columns("y", y)}
    cols |= {"loss_numpy": result.numpy.loss, "loss_keras": result.keras.loss,
             "loss_abs_diff": result.diffs["loss"].max_abs}
    cols |= {k: v for k, v in _gradient_columns(result).items() if k.endswith("_max_abs_diff")}
    cols |= {f"{name}_max_abs_diff": d.max_abs for name, d in result.diffs.items() if d.kind == "update"}
    cols |= {f"state_{name}_max_abs_diff": d.max_abs for name, d in result.state_diffs.items()}
    cols |= {k: v for k, v in _units(result).items() if k.startswith("dead")}
    for side, trace in (("numpy", result.numpy), ("keras", result.keras)):
        before = params_before(trace, start)
        for layer in result.dead_keras:
            for j in range(result.dead_keras[layer].shape[1]):
                cols[f"moved{layer}_{j}_{side}"] = unit_moved(trace, before, layer, j)
    cols |= {"kink": result.kink, "verdict": result.verdicts}
    return pd.DataFrame(cols)


def _category(values: list[str], codes: np.ndarray) -> pd.Categorical:
    """A string column from a few distinct values: cheap to build, to write and to read."""
    return pd.Categorical.from_codes(codes, categories=values)


def gradients_table(*results: PhaseResult) -> pd.DataFrame:
    """Long form: one row per gradient entry per sample (probe), batch or step (stepping)."""
    frames = []
    phases = ["probe", "batch", "stepping"]
    gradients = [(result, d) for result in results for d in result.diffs.values() if d.kind == "gradient"]
    labels = {}  # every entry label of every gradient: one category set, so the frames concatenate as categories
    for _, d in gradients:
        for k in range(int(np.prod(d.numpy.shape[1:]))):
            labels.setdefault(",".join(map(str, np.unravel_index(k, d.numpy.shape[1:]))), len(labels))
    for result, d in gradients:
        name = d.name
        n, shape = len(d.numpy), d.numpy.shape[1:]
        entries = int(np.prod(shape))
        codes = np.array([labels[",".join(map(str, np.unravel_index(k, shape)))] for k in range(entries)])
        layer, param = (0, "x") if name == "dx" else (int(name[2:]), name[1])
        total = n * entries
        steps = np.repeat(np.arange(n), entries)
        frames.append(pd.DataFrame({
            "phase": _category(phases, np.full(total, phases.index(result.phase))),
            "sample": np.repeat(result.rows, entries),
            # the step number, empty outside stepping: a masked integer column, built without coercion
            "step": pd.arrays.IntegerArray(steps, np.full(total, result.phase != "stepping")),
            "layer": np.full(total, layer), "param": _category(["W", "b", "x"], np.full(total, "Wbx".index(param))),
            "index": _category(list(labels), np.tile(codes, n)),
            "numpy": d.numpy.reshape(-1), "keras": d.keras.reshape(-1),
            "abs_diff": d.abs_diff.reshape(-1), "rel_diff": d.rel_diff.reshape(-1),
            "zero_numpy": d.numpy.reshape(-1) == 0, "zero_keras": d.keras.reshape(-1) == 0,
        }))
    return pd.concat(frames, ignore_index=True)
