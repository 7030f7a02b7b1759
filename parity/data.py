"""Data sets, generated once (float64) and handed to both sides."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset", "linear_data"]


@dataclass(frozen=True)
class Dataset:
    x: np.ndarray  # (n, in), float64
    y: np.ndarray  # (n, out), float64
    train: int  # the leading `train` rows are the training split, the rest the test split

    def __len__(self) -> int:
        return len(self.x)

    def split(self) -> np.ndarray:
        """'train' or 'test' per row."""
        return np.where(np.arange(len(self)) < self.train, "train", "test")


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
