"""The points of the grader results (Gradescope's and PrairieLearn's results.json): per test, from the run's TOML
file's `[grading]` table, else the defaults below.

    [grading]
    class_points = 2            # each of the learner's classes, checked alone against Keras (default 1)
    phase_points = 1            # each phase of the whole network: probe, batch, stepping (default 1)
    points = {Relu = 3, stepping = 2}   # one test's points, by its class or phase name
    classes = ["Affine", "Relu"]        # the classes every submission must define (default: the run's hidden
                                        # layers); a missing one fails its test

A test passes whole or not at all: its points, or 0.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from parity.errors import ParityInputError

__all__ = ["GradingPoints", "grading_points", "PHASE_TESTS"]

# The phases of the whole network, each one test, in the order a run compares them.
PHASE_TESTS = {"probe": "every sample alone at the fitted weights", "batch": "mini-batch gradients",
               "stepping": "one optimizer step per training sample"}


@dataclass(frozen=True)
class GradingPoints:
    class_points: float = 1.0
    phase_points: float = 1.0
    points: dict[str, float] = field(default_factory=dict)  # by test key: a class name (Relu) or a phase (probe)
    classes: tuple[str, ...] | None = None  # the classes graded whether or not a submission defines them

    def of(self, key: str, kind: str) -> float:
        """The points of the test on `key` (a class or a phase), `kind` "class" or "phase"."""
        lowered = {k.lower(): v for k, v in self.points.items()}
        return lowered.get(key.lower(), self.class_points if kind == "class" else self.phase_points)


def _points(value, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ParityInputError(f"{where} must be a number of points, 0 or more (received: {value!r})")
    return float(value)


def grading_points(config_path: Path | None) -> GradingPoints:
    """The `[grading]` table of the run's TOML file (the defaults without one); bad values are ParityInputError."""
    if config_path is None or not Path(config_path).is_file():
        return GradingPoints()  # a missing file is refused by the run's own configuration, with its message
    try:
        table = tomllib.loads(Path(config_path).read_text(encoding="utf-8")).get("grading", {})
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return GradingPoints()  # refused by the run's own configuration
    name = Path(config_path).name
    if not isinstance(table, dict):
        raise ParityInputError(f"{name}: [grading] must be a table (received: grading = {table!r})")
    known = ("class_points", "phase_points", "points", "classes")
    for key in table:
        if key not in known:
            raise ParityInputError(f"{name}: [grading] {key} is not a known key; allowed in [grading]: {', '.join(known)}")
    per_test = table.get("points", {})
    if not isinstance(per_test, dict):
        raise ParityInputError(f"{name}: [grading] points must be a table like {{Relu = 3, stepping = 2}} "
                               f"(received: {per_test!r})")
    classes = table.get("classes")
    if classes is not None and (not isinstance(classes, list) or not all(isinstance(c, str) for c in classes)):
        raise ParityInputError(f"{name}: [grading] classes must be a list of class names like [\"Affine\", \"Relu\"] "
                               f"(received: {classes!r})")
    return GradingPoints(_points(table.get("class_points", 1.0), f"{name}: [grading] class_points"),
                         _points(table.get("phase_points", 1.0), f"{name}: [grading] phase_points"),
                         {k: _points(v, f"{name}: [grading] points.{k}") for k, v in per_test.items()},
                         None if classes is None else tuple(classes))
