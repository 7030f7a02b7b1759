"""The results files a check writes for a grading system: Gradescope's and PrairieLearn's results.json.

`parity check --gradescope FILE --prairielearn FILE` writes them whatever happens: the check's graded tests when
it ran, and when it could not (bad input, its --timeout, a crash) a file that says why with score 0 (PrairieLearn:
bad input is `gradable: false`). `parity grade --gradescope --prairielearn` writes one of each per submission.
Each file appears whole (written beside, then renamed) or not at all.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from parity.errors import ParityInputError, arg
from parity.report.gradescope import gradescope_failure, gradescope_results
from parity.report.graded_tests import graded_tests, headline, notes, points_at_stake
from parity.report.prairielearn import prairielearn_bad_input, prairielearn_failure, prairielearn_results
from parity.settings.grading import GradingPoints, grading_points
from parity.settings.optimizer_registry import OPTIMIZERS
from parity.user_code.protocol import LAYER_NAMES

__all__ = ["GraderFiles", "results_of", "failure_results", "points_for"]

FORMATS = ("gradescope", "prairielearn")


def points_for(config_path: Path | None) -> GradingPoints:
    """The `[grading]` table of the run's TOML file, its class names checked."""
    points = grading_points(config_path)
    known = {n.lower(): n for n in (*LAYER_NAMES, *(info.book_class for info in OPTIMIZERS.values()))}
    for name in points.classes or ():
        if name.lower() not in known:
            raise ParityInputError(f"{Path(config_path).name}: [grading] classes: {name!r} is not one of the book's "
                                   f"classes ({', '.join(known.values())})")
    if points.classes is not None:
        points = type(points)(points.class_points, points.phase_points, points.points,
                              tuple(known[n.lower()] for n in points.classes))
    return points


def results_of(report, points: GradingPoints) -> dict[str, dict]:
    """Both formats' results of a check that ran (a Report): its graded tests, and its plots for PrairieLearn."""
    result = report.result
    tests = graded_tests(result, points)
    head, said = headline(result, tests), notes(result, tests)
    images = {}
    if report.folder is not None:
        images = {name: (Path(report.folder) / name).read_bytes() for name in report.files if name.endswith(".png")}
    return {"gradescope": gradescope_results(tests, head, said, result.verdict),
            "prairielearn": prairielearn_results(tests, head, said, images)}


def failure_results(status: str, why: str, config, points: GradingPoints) -> dict[str, dict]:
    """Both formats' results of a submission that could not be checked: `status` bad_input, timeout or crashed."""
    stake = points_at_stake(config, points)
    return {"gradescope": gradescope_failure(status, why, stake),
            "prairielearn": prairielearn_bad_input(why) if status == "bad_input" else prairielearn_failure(why, stake)}


def encoded(results: dict) -> bytes:
    return (json.dumps(results, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def _write(path: Path, data: bytes) -> None:
    """`data` at `path`, whole or not at all; the folder is made if needed (PrairieLearn's results/ is not)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(handle, 0o666 & ~umask)  # as a file made by open(): mkstemp's is readable by its owner only
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise


class GraderFiles:
    """The results files one `parity check` was asked for ({format: path}); `written` once they are."""

    def __init__(self, paths: dict[str, Path | None], points: GradingPoints):
        self.paths = {k: Path(v) for k, v in paths.items() if v is not None}
        self.points = points
        self.config = None  # the run's configuration once resolved: it says what a failed check had at stake
        self.written = False
        for name, path in self.paths.items():
            if path.is_dir():
                raise ParityInputError(f"{arg(name)} must be a file to write, not a folder (received: {path})")

    def __bool__(self) -> bool:
        return bool(self.paths)

    def _write_all(self, results: dict[str, dict]) -> None:
        if self.written:
            return
        for name, path in self.paths.items():
            _write(path, encoded(results[name]))
        self.written = True

    def checked(self, report) -> None:
        if self.paths:
            self._write_all(results_of(report, self.points))

    def failed(self, status: str, why: str) -> None:
        if self.paths:
            self._write_all(failure_results(status, why, self.config, self.points))
