"""The run's settings: one typed dataclass, defaults from the scenario, validated before any work."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

from parity.scenarios import SCENARIOS

__all__ = ["UsageError", "RunConfig", "DTYPES"]

DTYPES = ("float32", "float64")
MAX_SEED = 2**32 - 1  # numpy.random.RandomState accepts seeds in [0, 2**32)


class UsageError(ValueError):
    """Bad input from the user: the CLI prints it as one `error:` line and exits 2."""


@dataclass(frozen=True)
class RunConfig:
    scenario: str = "seed"
    dtype: str = "float32"
    seed: int | None = None
    samples: int | None = None
    train: int | None = None  # leading samples used for fitting and stepping; default 80%
    epochs: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    out: Path | None = None
    plots: bool = True
    quiet: bool = False

    def resolved(self) -> "RunConfig":
        """Fill unset fields from the scenario, then validate; raises UsageError."""
        if self.scenario not in SCENARIOS:
            raise UsageError(f"--scenario must be one of {', '.join(SCENARIOS)} (received: {self.scenario})")
        base = SCENARIOS[self.scenario]
        samples = base.samples if self.samples is None else self.samples
        filled = RunConfig(
            scenario=self.scenario, dtype=self.dtype,
            seed=base.seed if self.seed is None else self.seed,
            samples=samples,
            train=int(samples * 0.8) if self.train is None else self.train,
            epochs=base.epochs if self.epochs is None else self.epochs,
            lr=base.lr if self.lr is None else self.lr,
            batch_size=base.batch_size if self.batch_size is None else self.batch_size,
            out=Path("reports") / self.scenario if self.out is None else Path(self.out),
            plots=self.plots, quiet=self.quiet,
        )
        filled._validate()
        return filled

    def _validate(self) -> None:
        if self.dtype not in DTYPES:
            raise UsageError(f"--dtype must be float32 or float64 (received: {self.dtype})")
        if not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed must be an integer in [0, {MAX_SEED}] (received: {self.seed})")
        if self.samples < 2:
            raise UsageError(f"--samples must be at least 2 (received: {self.samples})")
        if not 1 <= self.train <= self.samples:
            raise UsageError(f"--train must be between 1 and --samples ({self.samples}) (received: {self.train})")
        if self.epochs < 0:
            raise UsageError(f"--epochs must be 0 (no fit) or more (received: {self.epochs})")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise UsageError(f"--lr must be a finite number above 0 (received: {self.lr})")
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1 (received: {self.batch_size})")
        if self.out.exists() and not self.out.is_dir():
            raise UsageError(f"--out must be a folder, and {self.out} is a file; choose another path")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out) if self.out is not None else None
        return d
