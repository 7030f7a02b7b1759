"""The run's results as pandas tables: samples (probe), steps (stepping), gradients (long form)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from parity.compare.diff import VERDICTS, PhaseResult
from parity.compare.dead_units import params_before, unit_moved

__all__ = ["samples_table", "steps_table", "gradients_table", "gradient_entries", "WorstGradients"]


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


def _entry_labels(gradients: list) -> dict[str, int]:
    """Every entry label of every gradient ("0,1" in a kernel, "1" in a bias): one category set, so the
    frames of all phases and chunks concatenate as categories."""
    labels = {}
    for d in gradients:
        for k in range(int(np.prod(d.numpy.shape[1:]))):
            labels.setdefault(",".join(map(str, np.unravel_index(k, d.numpy.shape[1:]))), len(labels))
    return labels


def gradients_table(*results: PhaseResult, keep: dict | None = None) -> pd.DataFrame:
    """Long form: one row per gradient entry per sample (probe), batch or step (stepping).

    `keep` maps (phase, gradient name) to the flat entry positions to write (row-major over rows and
    entries, as `gradient_entries` returns them); without it every entry is written.
    """
    frames = []
    phases = ["probe", "batch", "stepping"]
    gradients = [(result, d) for result in results for d in result.diffs.values() if d.kind == "gradient"]
    labels = _entry_labels([d for _, d in gradients])
    for result, d in gradients:
        name = d.name
        n, shape = len(d.numpy), d.numpy.shape[1:]
        entries = int(np.prod(shape))
        codes = np.array([labels[",".join(map(str, np.unravel_index(k, shape)))] for k in range(entries)])
        layer, param = (0, "x") if name == "dx" else (int(name[2:]), name[1])
        at = None if keep is None else np.asarray(keep.get((result.phase, name), ()), dtype=np.int64)
        total = n * entries if at is None else len(at)
        row = np.repeat(np.arange(n), entries) if at is None else at // max(entries, 1)

        def flat(a):
            a = a.reshape(-1)
            return a if at is None else a[at]

        numpy, keras = flat(d.numpy), flat(d.keras)
        frames.append(pd.DataFrame({
            "phase": _category(phases, np.full(total, phases.index(result.phase))),
            "sample": result.rows[row],
            # the step number, empty outside stepping: a masked integer column, built without coercion
            "step": pd.arrays.IntegerArray(row, np.full(total, result.phase != "stepping")),
            "layer": np.full(total, layer), "param": _category(["W", "b", "x"], np.full(total, "Wbx".index(param))),
            "index": _category(list(labels), np.tile(codes, n) if at is None else codes[at % max(entries, 1)]),
            "numpy": numpy, "keras": keras,
            "abs_diff": flat(d.abs_diff), "rel_diff": flat(d.rel_diff),
            "zero_numpy": numpy == 0, "zero_keras": keras == 0,
        }))
    return pd.concat(frames, ignore_index=True)


def gradient_entries(result: PhaseResult, worst: int) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """Per (phase, gradient): (every entry of the rows that do not pass, the `worst` entries with the largest
    abs diff among the rows that pass), as flat positions in row order. Ties go to the earlier entry."""
    out = {}
    passing = result.verdicts == "pass"
    for d in result.diffs.values():
        if d.kind != "gradient":
            continue
        entries = int(np.prod(d.numpy.shape[1:]))
        rows_out = np.repeat(~passing, entries)
        failing = np.flatnonzero(rows_out)
        candidates = np.flatnonzero(~rows_out)
        diff = d.abs_diff.reshape(-1)[candidates]
        order = np.lexsort((candidates, -diff))[:worst]  # largest first; the earlier entry wins a tie
        out[(result.phase, d.name)] = (failing, np.sort(candidates[order]))
    return out


class WorstGradients:
    """The `worst` largest passing gradient differences per (phase, gradient), over chunks of a phase."""

    def __init__(self, worst: int):
        self.worst = worst
        self.kept: dict[tuple[str, str], pd.DataFrame] = {}

    def add(self, frame: pd.DataFrame, key: tuple[str, str]) -> None:
        if key in self.kept:
            frame = pd.concat([self.kept[key], frame], ignore_index=True)  # earlier rows first: they win ties
        order = np.lexsort((np.arange(len(frame)), -frame["abs_diff"].to_numpy(dtype=np.float64)))[:self.worst]
        self.kept[key] = frame.iloc[np.sort(order)].reset_index(drop=True)

    def table(self, phase: str) -> list[pd.DataFrame]:
        return [frame for (p, _), frame in self.kept.items() if p == phase]
