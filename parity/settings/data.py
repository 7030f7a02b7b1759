"""Data sets, generated once (float64) and handed to both sides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.errors import ParityInputError, arg, first_line

__all__ = ["Dataset", "linear_data", "blobs_data", "bars_data", "load_csv"]


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # (n, in), float64
    y: np.ndarray  # (n, out) float64 targets, or (n, 1) integer class labels
    train: int  # the leading `train` rows are the training split, the rest the test split

    def __len__(self) -> int:
        return len(self.x)

    def split(self, rows: np.ndarray) -> np.ndarray:
        """'train' or 'test' for each of `rows` (indices into the data)."""
        return np.where(rows < self.train, "train", "test")


def linear_data(samples: int, train: int, seed: int, noise: float = 0.05) -> Dataset:
    """The seed notebook's data: x evenly spaced on [-1, 1] then shuffled, y = -(0.5x + 2 + noise).

    The shuffle and then the noise are drawn from one RandomState(seed), in that order, which
    reproduces the notebook exactly (with seed 1337 the first shuffled x is -0.70854271).
    """
    rng = np.random.RandomState(seed)
    x = np.linspace(-1, 1, samples)
    rng.shuffle(x)
    y = -(0.5 * x + 2 + rng.normal(0, noise, (samples,)))
    return Dataset(x=x.reshape(-1, 1), y=y.reshape(-1, 1), train=train)


def blobs_data(samples: int, train: int, seed: int, noise: float = 0.6, classes: int = 3) -> Dataset:
    """Gaussian blobs in 2-D, one per class, centres evenly on a circle of radius 2; integer labels.

    Labels cycle 0, 1, 2, ... and the rows are shuffled, so every split holds every class.
    """
    rng = np.random.RandomState(seed)
    labels = np.arange(samples) % classes
    angles = 2 * np.pi * labels / classes
    centres = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)  # (n, 2)
    x = centres + rng.normal(0, noise, (samples, 2))
    order = rng.permutation(samples)
    return Dataset(x=x[order], y=labels[order].reshape(-1, 1).astype(np.int64), train=train)


BARS = ("horizontal", "vertical", "diagonal", "antidiagonal")  # the bars' classes, in label order


def bars_data(samples: int, train: int, seed: int, noise: float = 0.1, size: int = 12) -> Dataset:
    """Images of oriented bars, one class per orientation (BARS), flattened channel-major: x is (n, 1 * size * size).

    Each bar is 5 to 9 cells long at a random offset, each cell 1 + N(0, 0.1) bright, on a background of
    N(0, noise): every value is continuous, so two cells of a pooling window are equal with probability 0.
    Labels cycle 0, 1, 2, 3 and the rows are shuffled, so every split holds every class. One RandomState(seed).
    """
    rng = np.random.RandomState(seed)
    labels = np.arange(samples) % len(BARS)
    x = rng.normal(0, noise, (samples, 1, size, size))
    for n, label in enumerate(labels):
        length = rng.randint(5, 10)
        k = np.arange(length)
        top, left = rng.randint(0, size - length + 1, size=2)
        across = rng.randint(0, size)  # a straight bar's row or column
        rows, cols = {0: (np.full(length, across), left + k), 1: (top + k, np.full(length, across)),
                      2: (top + k, left + k), 3: (top + k, left + length - 1 - k)}[int(label)]
        x[n, 0, rows, cols] += 1.0 + rng.normal(0, 0.1, length)
    order = rng.permutation(samples)
    return Dataset(x=x[order].reshape(samples, -1), y=labels[order].reshape(-1, 1).astype(np.int64), train=train)


def load_csv(path: Path, x_columns: list[str] | None, y_columns: list[str] | None,
             integer_labels: bool, dtype: str = "float64") -> tuple[np.ndarray, np.ndarray]:
    """Read (x, y) from a CSV file with a header; by default `x*` columns are inputs, `y*` targets.

    Every problem is a ParityInputError naming the file and the row (1-based, header = row 1) or column,
    including a value the run's `dtype` cannot hold (1e39 overflows float32).
    """
    import pandas as pd

    if not path.is_file():
        raise ParityInputError(f"{arg('data_path')} file not found (received: {path})")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise ParityInputError(f"{arg('data_path')} {path} is empty; expected a header row and data rows") from None
    except pd.errors.ParserError as exc:
        raise ParityInputError(f"{arg('data_path')} {path} has ragged rows: {first_line(exc, empty=type(exc).__name__)}") from None
    except UnicodeDecodeError:
        raise ParityInputError(f"{arg('data_path')} {path} is not a text CSV file (UTF-8)") from None
    if table.empty:
        raise ParityInputError(f"{arg('data_path')} {path} has a header but no data rows")
    x_columns = x_columns or [c for c in table.columns if c.startswith("x")]
    y_columns = y_columns or [c for c in table.columns if c.startswith("y")]
    for role, columns in (("input (x)", x_columns), ("target (y)", y_columns)):
        if not columns:
            raise ParityInputError(f"{arg('data_path')} {path} has no {role} columns; name them x..., y... or set "
                             f"[data] x_columns / y_columns (columns: {', '.join(table.columns)})")
        missing = [c for c in columns if c not in table.columns]
        if missing:
            raise ParityInputError(f"{arg('data_path')} {path} has no column {missing[0]!r} (columns: {', '.join(table.columns)})")
    return (_numbers(table, x_columns, path, dtype),
            _labels_or_numbers(table, y_columns, path, integer_labels, dtype))


def _numbers(table, columns: list[str], path: Path, dtype: str = "float64") -> np.ndarray:
    import pandas as pd

    largest = float(np.finfo(dtype).max)
    out = np.empty((len(table), len(columns)))
    for k, column in enumerate(columns):
        out[:, k] = pd.to_numeric(table[column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(out[:, k]))
        if bad.size:
            raise ParityInputError(f"{arg('data_path')} {path} row {bad[0] + 2}, column {column!r}: expected a finite number "
                             f"(received: {table[column].iloc[bad[0]]!r})")
        big = np.flatnonzero(np.abs(out[:, k]) > largest)
        if big.size:
            raise ParityInputError(f"{arg('data_path')} {path} row {big[0] + 2}, column {column!r}: "
                                   f"{table[column].iloc[big[0]]} does not fit in {dtype} (largest magnitude "
                                   f"{largest:.4g}); use {arg('dtype')} float64, or rescale the data")
    return out


def _labels_or_numbers(table, columns: list[str], path: Path, integer_labels: bool, dtype: str = "float64") -> np.ndarray:
    values = _numbers(table, columns, path, "float64" if integer_labels else dtype)
    if not integer_labels:
        return values
    if len(columns) != 1:
        raise ParityInputError(f"{arg('data_path')} {path}: integer class labels need one target column (received: {columns})")
    bad = np.flatnonzero((values[:, 0] != np.round(values[:, 0])) | (values[:, 0] < 0))
    if bad.size:
        raise ParityInputError(f"{arg('data_path')} {path} row {bad[0] + 2}, column {columns[0]!r}: expected a class label, "
                         f"an integer >= 0 (received: {table[columns[0]].iloc[bad[0]]!r})")
    return values.astype(np.int64)


