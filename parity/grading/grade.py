"""`parity grade`: many submissions, each checked by the one pipeline in a Dask worker, into a gradebook.

The process that writes the gradebook never imports a submission: it finds the files, starts or
joins the cluster, and writes what the workers send back. Each worker computes the Keras side once
per configuration (a warm-up with the reference layers, outside any submission's time limit: the
fit, and the Keras side of the layer probes) and reuses it for every submission it checks. A
submission's report folder is written by `pipeline.check(write=True)` in the worker's scratch folder,
so it is the folder `parity check --layers FILE --out DIR/NAME` writes; its bytes come back to be put
in the gradebook, which appears whole or not at all.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from parity.grading.submissions import Submission, find_submissions
from parity.settings.config import RunConfig
from parity.errors import ToolError

__all__ = ["STATUSES", "NOT_GRADED", "PLOTS", "Submission", "Row", "Gradebook", "find_submissions", "grade", "grade_one"]

STATUSES = ("pass", "fail", "bad_input", "timeout", "crashed")
NOT_GRADED = "not_graded"  # only in a gradebook the cluster could not finish (exit 3): grade these again
PLOTS = ("failing", "all", "none")  # which submissions' reports get the four plots (about 1 s each)
COLUMNS = ("file", "status", "error_codes", "first_error", "fix", "warnings", "seconds", "report")


@dataclass(frozen=True)
class Row:
    """One submission's line in the gradebook."""

    file: str
    status: str  # one of STATUSES, or NOT_GRADED
    error_codes: tuple[str, ...] = ()  # the codes of its error findings, in order, each once
    first_error: str = ""  # the first error's message (the error line for bad_input; why, for timeout and crashed)
    fix: str = ""  # the first error's fix
    warnings: tuple[str, ...] = ()  # the codes of its warnings, in order, each once
    seconds: float | None = None  # its own time (import, check, report), without the shared Keras warm-up
    report: str = ""  # its report folder in the gradebook; "" when there is none

    def cells(self) -> dict:
        return {**asdict(self), "error_codes": ";".join(self.error_codes), "warnings": ";".join(self.warnings),
                "seconds": "" if self.seconds is None else f"{self.seconds:.2f}"}


@dataclass
class Gradebook:
    out: Path
    rows: list[Row]
    settings: dict = field(default_factory=dict)
    files: dict[str, list[str]] = field(default_factory=dict)  # report folder -> the files in it
    error: str = ""  # why grading stopped before every submission was graded; "" when it finished

    @property
    def counts(self) -> dict[str, int]:
        ungraded = sum(r.status == NOT_GRADED for r in self.rows)
        return {s: sum(r.status == s for r in self.rows) for s in STATUSES} | ({NOT_GRADED: ungraded} if ungraded else {})


# -- the worker side ----------------------------------------------------------------------------------

_WARM: set = set()


def _warm(config: RunConfig) -> None:
    """The Keras side of `config` in this worker process: fitted, compiled and probed once, with the
    reference layers, before any submission's clock runs. The reference layers are given as a user's
    classes, all of them, so the layer probes' Keras side is kept too (`keras_probes`): a submission's
    time is then its own code's."""
    from parity.book import layers as reference_layers
    from parity.pipeline import check
    from parity.user_code.loader import LAYER_NAMES, load

    key = replace(config, out=None, plots=False)
    if key not in _WARM:
        check(load(named={n: getattr(reference_layers, n) for n in LAYER_NAMES}), key)
        _WARM.add(key)


def _codes(findings) -> tuple[str, ...]:
    return tuple(dict.fromkeys(f.code for f in findings))


def grade_one(item: tuple, limit) -> dict:
    """Worker side: import one submission and check it, under `limit`; returns its row's cells and its
    report folder's files. What the submission prints goes nowhere: the teacher's terminal shows progress.
    `item`: (submission, config, plots, fmt[, extra]); extra: {"graders": (formats), "points", "run_all"}."""
    import contextlib
    import os

    submission, config, plots, fmt, *more = item
    extra = more[0] if more else {}
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        row = _grade_one(submission, config, plots, fmt, limit, extra)
    if extra.get("graders") and "grader" not in row:  # checked no further than bad input, or crashed
        row["grader"] = grader_bytes(extra["graders"], failure=(row["status"], row.get("first_error", ""), config),
                                     points=extra["points"])
    return row


def grader_bytes(formats, *, points, report=None, failure: tuple | None = None) -> dict[str, bytes]:
    """The grader results files (Gradescope's, PrairieLearn's) of one submission: of its Report, or of why it
    could not be checked (`failure`: status, why, config)."""
    from parity.grading.grader_files import encoded, failure_results, results_of

    results = results_of(report, points) if report is not None else failure_results(*failure, points)
    return {name: encoded(results[name]) for name in formats}


def _grade_one(submission: Submission, config: RunConfig, plots: str, fmt: str, limit, extra: dict) -> dict:
    import shutil
    import tempfile

    from parity.errors import CheckTimedOut, ParityInputError
    from parity.pipeline import ReportFolder, check
    from parity.user_code.loader import load

    # The path as given when it names the same file from here, so messages read as `parity check`'s do.
    source = submission.given if Path(submission.given).resolve() == Path(submission.path) else submission.path
    with _module_state(Path(submission.path).parent):
        try:
            with limit:
                # the layers and every class beside them (the run's optimizer is picked there), mapped as configured
                user = load(source, named=dict(config.classes), run_all=extra.get("run_all", False))
        except ParityInputError as exc:
            return {"status": "bad_input", "first_error": str(exc), "seconds": limit.used}
        except CheckTimedOut as exc:  # --run-all's kernel ran out of its time
            return {"status": "timeout", "first_error": str(exc), "seconds": limit.used}
        _warm(config)
        scratch = Path(tempfile.mkdtemp(prefix="parity-grade-"))
        try:
            into = scratch / submission.folder
            try:
                with limit:
                    folder = ReportFolder(fmt, into=into)
                    report = check(user, replace(config, plots=plots == "all"), folder=folder)
                    if plots == "failing" and not report.passed:  # drawn where a student needs to look
                        report = check(user, replace(config, plots=True), folder=folder)
            except ParityInputError as exc:
                return {"status": "bad_input", "first_error": str(exc), "seconds": limit.used}
            except BaseException as exc:  # a sys.exit in a layer ends `parity check` too; here it ends this row
                return {"status": "crashed", "seconds": limit.used,
                        "first_error": f"the check stopped with {type(exc).__name__}: {exc}"}
            errors = report.errors
            first = next(iter(errors), None)
            at = f" ({first.where})" if first and first.where and first.where not in first.message else ""
            return {"status": report.verdict, "error_codes": _codes(errors), "warnings": _codes(report.warnings),
                    "first_error": first.message + at if first else "", "fix": first.fix if first else "",
                    "seconds": limit.used, "files": {p.name: p.read_bytes() for p in sorted(into.iterdir())},
                    **({"grader": grader_bytes(extra["graders"], report=report, points=extra["points"])}
                       if extra.get("graders") else {})}
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


class _module_state:
    """Undo what importing a submission added to this worker's sys.path and sys.modules (its module,
    and helpers from its folder), so the next submission imports its own."""

    def __init__(self, folder: Path):
        self.folder = str(folder.resolve()) + os.sep
        # Never what Python or its packages hold, even in a virtual environment inside that folder.
        self.installed = tuple({str(Path(p).resolve()) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)})

    def __enter__(self):
        self.path, self.modules = list(sys.path), set(sys.modules)

    def __exit__(self, *exc):
        sys.path[:] = self.path
        for name in set(sys.modules) - self.modules:
            where = str(getattr(sys.modules[name], "__file__", None) or "")
            theirs = where.startswith(self.folder) and not where.startswith(self.installed)
            if name.startswith("parity_user_layers_") or (theirs and name.split(".")[0] != "parity"):
                del sys.modules[name]


# -- the gradebook ------------------------------------------------------------------------------------

def _row(submission: Submission, outcome) -> tuple[Row, dict, dict]:
    """(its row, its report folder's files, its grader results files' bytes by format)."""
    if outcome.status != "done":
        return Row(submission.given, outcome.status, first_error=outcome.message, seconds=outcome.seconds), {}, {}
    cells = dict(outcome.value)
    files, grader = cells.pop("files", {}), cells.pop("grader", {})
    return Row(submission.given, report=submission.folder if files else "", **cells), files, grader


def grade(submissions: list[Submission], config: RunConfig, out: Path, *, timeout: float, plots: str = "failing",
          fmt: str = "csv", scheduler: str | None = None, workers: int | None = None,
          memory_limit: str | int | None = "auto", progress: Callable | None = None, graders: tuple[str, ...] = (),
          points=None, run_all: bool = False) -> Gradebook:
    """Check every submission in a worker; write out/ (gradebook.csv, .html, .json, one report folder
    per submission that has one, and with `graders` out/gradescope/NAME.json, out/prairielearn/NAME.json for
    every submission) whole, or nothing. `run_all`: each notebook's cells run on a kernel first. When the cluster
    cannot finish (ToolError), the gradebook holds what was graded, the rest marked NOT_GRADED, and the ToolError
    is raised after it."""
    from parity.grading.gradebook_html import render_gradebook
    from parity.report.folder import atomic_folder
    from parity.grading.workers import cluster_client
    from parity.grading.workers import run_all as run_items

    extra = {"graders": tuple(graders), "points": points, "run_all": run_all}
    items = [(s, replace(config, out=Path(out) / s.folder), plots, fmt, extra) for s in submissions]
    rows: list[Row | None] = [None] * len(submissions)
    written: dict[str, list[str]] = {}
    settings = {"scenario": config.scenario, "dtype": config.dtype, "seed": config.seed, "timeout_s": timeout,
                "plots": plots, "format": fmt, **({"scheduler": scheduler} if scheduler else
                                                  {"workers": workers, "memory_limit": memory_limit}),
                "config": config.as_dict() | {"out": None}}
    lost = None
    with cluster_client(scheduler, workers, memory_limit) as client, atomic_folder(out) as folder:
        done = run_items(client, grade_one, items, timeout)
        try:
            for index, outcome in (progress(done, "grading", len(items)) if progress else done):
                rows[index], files, grader = _row(submissions[index], outcome)
                if graders and not grader:  # a timeout, or a worker that died: its row says why
                    grader = grader_bytes(graders, points=points, failure=(outcome.status, outcome.message, config))
                for name, data in grader.items():
                    (folder / name).mkdir(exist_ok=True)
                    (folder / name / f"{submissions[index].folder}.json").write_bytes(data)
                if files:
                    (folder / submissions[index].folder).mkdir()
                    for name, data in files.items():
                        (folder / submissions[index].folder / name).write_bytes(data)
                    written[submissions[index].folder] = sorted(files)
        except ToolError as exc:
            lost = exc
        rows = [row or Row(s.given, NOT_GRADED, first_error=f"not graded: {lost}") for row, s in zip(rows, submissions)]
        book = Gradebook(Path(out), rows, settings, written, error=str(lost or ""))
        (folder / "gradebook.csv").write_text(gradebook_csv(book.rows), encoding="utf-8")
        (folder / "gradebook.json").write_text(json.dumps(gradebook_json(book), indent=2) + "\n", encoding="utf-8")
        (folder / "gradebook.html").write_text(render_gradebook(book), encoding="utf-8")
    if lost is not None:
        left = book.counts.get(NOT_GRADED, 0)
        raise ToolError(f"{lost}; {len(rows) - left} of {len(rows)} submissions were graded and written to {out} "
                        f"(the other {left} {'is' if left == 1 else 'are'} marked {NOT_GRADED} there: grade "
                        f"{'it' if left == 1 else 'them'} again)") from None
    return book


def gradebook_csv(rows: list[Row]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(r.cells() for r in rows)
    return buffer.getvalue()


def gradebook_json(book: Gradebook) -> dict:
    from parity.version import __version__
    from parity.version import SCHEMA_VERSION, TOOL

    return {"tool": TOOL, "version": __version__, "schema_version": SCHEMA_VERSION, "kind": "gradebook",
            "settings": book.settings, "counts": book.counts, **({"error": book.error} if book.error else {}),
            "rows": [{**asdict(r), "error_codes": list(r.error_codes), "warnings": list(r.warnings)} for r in book.rows]}
