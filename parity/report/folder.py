"""The report folder: checked before any work, and never one that holds anything but our own report.

A run replaces its folder whole, so the folder must be new, empty, or a folder this tool wrote: a
report whose summary.json, a gradebook whose gradebook.json or a sweep whose sweep.json says
`"tool": "keras-parity"` with a schema version. A file merely named summary.json (another tool's,
say) does not make a folder ours.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from parity.errors import ParityInputError, ReportWriteError, arg
from parity.version import TOOL

__all__ = ["OWN_FILES", "is_report", "check_out", "check_writable", "atomic_folder"]

OWN_FILES = ("summary.json", "gradebook.json", "sweep.json")  # a report, a gradebook (grade), a sweep


def is_report(folder: Path) -> bool:
    """A folder keras-parity wrote: its summary.json (or gradebook.json, sweep.json) names this tool and a schema version."""
    for name in OWN_FILES:
        try:
            head = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(head, dict) and head.get("tool") == TOOL and isinstance(head.get("schema_version"), int):
            return True
    return False


def check_out(out: Path) -> None:
    """The report folder must be creatable and writable, and replacing it must destroy nothing but an
    earlier report of ours."""
    out = Path(out)
    target = out.resolve()
    if target.exists() and not target.is_dir():
        raise ParityInputError(f"{arg('out')} must be a folder, and {out} is a file; choose another path")
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
        raise ParityInputError(f"{arg('out')} must be a folder of its own, not the current folder or one above it "
                               f"(received: {out})")
    if target.is_dir() and any(target.iterdir()) and not is_report(target):
        raise ParityInputError(f"{arg('out')} {out} holds files that are not a keras-parity report, and a run "
                               "replaces its folder whole; choose a new or empty folder")
    check_writable(out, "out")


def check_writable(out: Path, name: str = "out") -> None:
    """The folder, or the nearest existing folder above it, is a writable folder."""
    probe = Path(out).resolve()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ParityInputError(f"{arg(name)} must be a folder path, and {probe} is a file (received: {out})")
    if not os.access(probe, os.W_OK):
        raise ParityInputError(f"{arg(name)} must be writable, and {probe} is not (received: {out})")


@contextlib.contextmanager
def atomic_folder(target: Path):
    """Yield a temporary folder beside `target`; on success it replaces `target` whole.

    On any error or interrupt the temporary folder is removed and `target` is left as it was, so
    a reader finds the previous complete report or none, never a mix. An OSError while the folder
    is made, written or moved into place (a full disk, a permission taken away) is raised as a
    ReportWriteError that says what failed and where.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; a report folder is for reading
    except OSError as exc:
        raise _write_error("could not create the report folder", exc, target) from exc
    try:
        try:
            yield tmp
        except ReportWriteError:
            raise
        except OSError as exc:
            raise _write_error("could not write the report", exc, target, tmp) from exc
        _move_into_place(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _move_into_place(tmp: Path, target: Path) -> None:
    """Replace `target` by `tmp`; if that fails, the previous report goes back where it was."""
    old = None
    try:
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
    except OSError as exc:
        if old is not None and old.exists() and not target.exists():
            with contextlib.suppress(OSError):
                os.replace(old, target)
        raise _write_error("could not move the new report into place at", exc, target, tmp) from exc
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_error(what: str, exc: OSError, target: Path, tmp: Path | None = None) -> ReportWriteError:
    """One sentence: what failed, where, the system's reason, and what became of the previous report."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    code = re.search(r"\[errno (\d+)\]", reason, re.IGNORECASE)  # pyarrow: "Error writing bytes ... [errno 28] ..."
    if code:
        reason = os.strerror(int(code.group(1)))
    file = ""
    if exc.filename and tmp is not None:
        with contextlib.suppress(ValueError):
            file = f" (writing {Path(exc.filename).relative_to(tmp)})"
    elif exc.filename:
        file = f" ({exc.filename})"
    after = "the previous report there is left as it was" if (target / "summary.json").exists() else "nothing was written"
    return ReportWriteError(f"{what} {target}/: {reason}{file}; {after}")
