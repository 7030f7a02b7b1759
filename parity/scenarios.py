"""Built-in scenarios: a data set, an architecture and training defaults, by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from parity.data import Dataset, linear_data
from parity.network import DenseSpec, ModelSpec

__all__ = ["Scenario", "SCENARIOS"]


@dataclass(frozen=True)
class Scenario:
    description: str
    spec: ModelSpec
    make_data: Callable[[int, int, int], Dataset]  # (samples, train, seed) -> data
    samples: int = 200
    epochs: int = 20
    batch_size: int = 10
    lr: float = 0.01
    seed: int = 1337


SCENARIOS = {
    "seed": Scenario(
        description="the seed notebook: Dense(2, relu) -> Dense(1), MSE, on y = -(0.5x + 2 + noise)",
        spec=ModelSpec(input_dim=1, layers=(DenseSpec(2, "relu"), DenseSpec(1, "linear"))),
        make_data=linear_data,
    ),
}
