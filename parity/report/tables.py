"""The run's results as tables: samples (probe), steps (stepping), gradients (long form).

Each table is first a dict of columns (NumPy arrays, `Codes` for a string column of a few values, `Masked` for
integers with gaps); `frame` makes a pandas DataFrame of it (the Report's tables, Parquet files) and `arrow` a
pyarrow Table (the CSV files, the same bytes as through pandas, without importing pandas: a third of a recorded
check's time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from parity.compare.diff import VERDICTS, PhaseResult
from parity.compare.dead_units import params_before, unit_moved

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["samples_table", "steps_table", "gradients_table", "samples_columns", "steps_columns", "gradient_columns",
           "gradient_entries", "WorstGradients", "Codes", "Masked", "frame", "arrow", "concat"]


class Codes(NamedTuple):
    """A string column from a few distinct values, as int codes into them: cheap to build, to write and to read."""

    values: list[str]
    codes: np.ndarray


class Masked(NamedTuple):
    """An integer column with missing entries (`mask` True where missing)."""

    values: np.ndarray
    mask: np.ndarray


def frame(cols: dict) -> pd.DataFrame:
    import pandas as pd

    def column(v):
        if isinstance(v, Codes):
            return pd.Categorical.from_codes(v.codes, categories=v.values)
        return pd.arrays.IntegerArray(v.values, v.mask) if isinstance(v, Masked) else v
    return pd.DataFrame({k: column(v) for k, v in cols.items()})


def arrow(cols: dict) -> pa.Table:
    """The pyarrow Table pa.Table.from_pandas(frame(cols)) gives (the same types: large strings, pandas's code
    widths, NaN as null), built from the arrays' buffers: pa.array would import pandas to ask whether it was given
    a pandas object."""
    import pyarrow as pa

    def bits(flags: np.ndarray) -> pa.Buffer:
        return pa.py_buffer(np.packbits(flags, bitorder="little"))

    def valid(missing: np.ndarray) -> tuple[pa.Buffer | None, int]:
        count = int(missing.sum())
        return (bits(~missing) if count else None), count

    def strings(values) -> pa.Array:
        encoded = [str(v).encode() for v in values]
        offsets = np.concatenate([[0], np.cumsum([len(e) for e in encoded], dtype=np.int64)]).astype(np.int64)
        return pa.Array.from_buffers(pa.large_string(), len(encoded),
                                     [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])

    def column(v) -> pa.Array:
        if isinstance(v, Codes):
            width = np.int8 if len(v.values) < 2**7 else np.int16 if len(v.values) < 2**15 else np.int32
            codes = np.ascontiguousarray(v.codes, dtype=width)
            indices = pa.Array.from_buffers(pa.from_numpy_dtype(codes.dtype), len(codes), [None, pa.py_buffer(codes)])
            return pa.DictionaryArray.from_arrays(indices, strings(v.values))
        if isinstance(v, Masked):
            values = np.ascontiguousarray(v.values, dtype=np.int64)
            validity, nulls = valid(np.asarray(v.mask, dtype=bool))
            return pa.Array.from_buffers(pa.int64(), len(values), [validity, pa.py_buffer(values)], null_count=nulls)
        if v.dtype.kind in "UO":
            return strings(v)
        if v.dtype.kind == "b":
            return pa.Array.from_buffers(pa.bool_(), len(v), [None, bits(np.asarray(v, dtype=bool))])
        v = np.ascontiguousarray(v)
        validity, nulls = valid(np.isnan(v)) if v.dtype.kind == "f" else (None, 0)
        return pa.Array.from_buffers(pa.from_numpy_dtype(v.dtype), len(v), [validity, pa.py_buffer(v)],
                                     null_count=nulls)
    return pa.Table.from_arrays([column(v) for v in cols.values()], names=list(cols))


def _take(v, rows: np.ndarray):
    if isinstance(v, Codes):
        return Codes(v.values, v.codes[rows])
    return Masked(v.values[rows], v.mask[rows]) if isinstance(v, Masked) else v[rows]


def concat(parts: list[dict]) -> dict:
    """The tables `parts` (same columns, same Codes values) one after another."""
    def joined(values):
        if isinstance(values[0], Codes):
            return Codes(values[0].values, np.concatenate([v.codes for v in values]))
        if isinstance(values[0], Masked):
            return Masked(np.concatenate([v.values for v in values]), np.concatenate([v.mask for v in values]))
        return np.concatenate(values)
    return {k: joined([p[k] for p in parts]) for k in parts[0]} if len(parts) > 1 else dict(parts[0])


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
    return frame(samples_columns(result, x, y, split, classes))


def samples_columns(result: PhaseResult, x: np.ndarray, y: np.ndarray, split: np.ndarray,
                    classes: bool = False) -> dict:
    cols = {"sample": result.rows, **_columns("x", x), **_columns("y", y),
            "split": _category(["train", "test"], (split == "test").astype(np.int8))}
    cols |= _sides("pred", result, "pred")
    if classes:
        cols |= {"class_numpy": result.numpy.pred.argmax(axis=1), "class_keras": result.keras.pred.argmax(axis=1)}
    cols |= {"loss_numpy": result.numpy.loss, "loss_keras": result.keras.loss,
             "loss_abs_diff": result.diffs["loss"].max_abs, "pred_abs_diff": result.diffs["pred"].max_abs}
    cols |= _units(result) | _gradient_columns(result)
    cols |= {"kink": result.kink, "verdict": _verdicts(result.verdicts)}
    return cols


def _verdicts(verdicts: np.ndarray) -> Codes:
    codes = np.zeros(len(verdicts), dtype=np.int8)
    for k, name in enumerate(VERDICTS):
        codes[verdicts == name] = k
    return _category(list(VERDICTS), codes)


def steps_table(result: PhaseResult, x: np.ndarray, y: np.ndarray, start: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per optimizer step: gradients before the update, parameters and optimizer state after it, and
    who moved."""
    return frame(steps_columns(result, x, y, start))


def steps_columns(result: PhaseResult, x: np.ndarray, y: np.ndarray, start: dict[str, np.ndarray]) -> dict:
    # a batch-wise step (BatchNormalization) is shown by its first sample
    cols = {"step": np.arange(len(result.rows)), "sample": result.rows, **_columns("x", x[result.rows]),
            **_columns("y", y[result.rows])}
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
    return cols


def _category(values: list[str], codes: np.ndarray) -> Codes:
    return Codes(list(values), np.asarray(codes))


def _entry_labels(gradients: list) -> dict[str, int]:
    """Every entry label of every gradient ("0,1" in a kernel, "1" in a bias): one category set, so the
    frames of all phases and chunks concatenate as categories."""
    labels = {}
    for d in gradients:
        for k in range(int(np.prod(d.numpy.shape[1:]))):
            labels.setdefault(",".join(map(str, np.unravel_index(k, d.numpy.shape[1:]))), len(labels))
    return labels


def gradients_table(*results: PhaseResult, keep: dict | None = None) -> pd.DataFrame:
    """Long form: one row per gradient entry per sample (probe), batch or step (stepping)."""
    return frame(gradient_columns(*results, keep=keep))


def gradient_columns(*results: PhaseResult, keep: dict | None = None) -> dict:
    """The gradients table's columns. `keep` maps (phase, gradient name) to the flat entry positions to write
    (row-major over rows and entries, as `gradient_entries` returns them); without it every entry is written.
    """
    parts = []
    phases = ["probe", "batch", "stepping"]
    gradients = [(result, d) for result in results for d in result.diffs.values() if d.kind == "gradient"]
    labels = _entry_labels([d for _, d in gradients])
    # a BatchNormalization's gamma and beta (dgamma1) after the book's W, b and x, only where a run has them
    params = ["W", "b", "x"] + (["gamma", "beta"] if any(d.name.startswith("dgamma") for _, d in gradients) else [])
    for result, d in gradients:
        name = d.name
        n, shape = len(d.numpy), d.numpy.shape[1:]
        entries = int(np.prod(shape))
        codes = np.array([labels[",".join(map(str, np.unravel_index(k, shape)))] for k in range(entries)])
        layer, param = (0, "x") if name == "dx" else (int(name.lstrip("dgammbetaWb")), name[1:].rstrip("0123456789"))
        at = None if keep is None else np.asarray(keep.get((result.phase, name), ()), dtype=np.int64)
        total = n * entries if at is None else len(at)
        row = np.repeat(np.arange(n), entries) if at is None else at // max(entries, 1)

        def flat(a):
            a = a.reshape(-1)
            return a if at is None else a[at]

        numpy, keras = flat(d.numpy), flat(d.keras)
        parts.append({
            "phase": _category(phases, np.full(total, phases.index(result.phase))),
            "sample": result.rows[row],
            # the step number, empty outside stepping: a masked integer column, built without coercion
            "step": Masked(row, np.full(total, result.phase != "stepping")),
            "layer": np.full(total, layer), "param": _category(params, np.full(total, params.index(param))),
            "index": _category(list(labels), np.tile(codes, n) if at is None else codes[at % max(entries, 1)]),
            "numpy": numpy, "keras": keras,
            "abs_diff": flat(d.abs_diff), "rel_diff": flat(d.rel_diff),
            "zero_numpy": numpy == 0, "zero_keras": keras == 0,
        })
    return concat(parts)


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
    """The `worst` largest passing gradient differences per (phase, gradient), over chunks of a phase (columns)."""

    def __init__(self, worst: int):
        self.worst = worst
        self.kept: dict[tuple[str, str], dict] = {}

    def add(self, cols: dict, key: tuple[str, str]) -> None:
        if key in self.kept:
            cols = concat([self.kept[key], cols])  # earlier rows first: they win ties
        diff = np.asarray(cols["abs_diff"], dtype=np.float64)
        order = np.lexsort((np.arange(len(diff)), -diff))[:self.worst]
        self.kept[key] = {k: _take(v, np.sort(order)) for k, v in cols.items()}

    def table(self, phase: str) -> list[dict]:
        return [cols for (p, _), cols in self.kept.items() if p == phase]
