"""The report folder: checked before any work, and never one that holds anything but our own output of its kind.

Each command writes one kind of folder, and says so in the record it writes there (its "kind"):
`run` and `check` a report (summary.json), `grade` a gradebook (gradebook.json), `sweep` a sweep
(sweep.json), `bench` a bench record (bench.json). A folder is ours when that record says `"tool":
"keras-parity"` with a schema version (older folders, written before the kind was recorded, are
known by which record they hold). `--out` may name a new folder, an empty one, or one of ours of
the same kind; anything else, another kind of ours included, is refused before any work, and every
file in it is left alone. A file merely named summary.json (another tool's, say) does not make a
folder ours.
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

__all__ = ["KINDS", "OWN_FILES", "folder_kind", "is_report", "check_out", "check_writable", "atomic_folder"]

# kind -> (the record that marks it, what it is called, the command that writes it)
KINDS = {"report": ("summary.json", "report", "parity run or parity check"),
         "gradebook": ("gradebook.json", "gradebook", "parity grade"),
         "sweep": ("sweep.json", "sweep", "parity sweep"),
         "bench": ("bench.json", "bench record", "parity bench")}
OWN_FILES = tuple(record for record, _, _ in KINDS.values())


def _record(folder: Path, name: str) -> dict | None:
    try:
        head = json.loads((folder / name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return head if isinstance(head, dict) else None


def _kind_of(head: dict, kind: str) -> str | None:
    """`kind` when the record that marks it is ours; None when it is another tool's or disagrees with its name."""
    if head.get("tool") == TOOL and isinstance(head.get("schema_version"), int):
        return kind if head.get("kind", kind) == kind else None
    if kind == "bench" and isinstance(head.get("floors"), dict) and isinstance(head.get("probe"), dict):
        return kind  # bench.json before it named its tool: its floors and its probe rates
    return None


def folder_kind(folder: Path) -> str | None:
    """Which kind of keras-parity folder `folder` is (a key of KINDS); None when it is none of ours, or holds
    the records of two kinds."""
    found = {kind for kind, (name, _, _) in KINDS.items()
             if (head := _record(Path(folder), name)) is not None and _kind_of(head, kind) == kind}
    return found.pop() if len(found) == 1 else None


def is_report(folder: Path) -> bool:
    """A folder keras-parity wrote, of any kind."""
    return folder_kind(folder) is not None


def _kind_holding(target: Path) -> tuple[Path, str] | None:
    """The nearest folder above `target` that is one of ours, and its kind: a folder inside a gradebook is part of it."""
    for above in target.parents:
        kind = folder_kind(above) if above.is_dir() else None
        if kind is not None:
            return above, kind
    return None


def check_out(out: Path, kind: str = "report") -> None:
    """The folder for a `kind` (a key of KINDS) must be creatable and writable, and writing it must destroy nothing
    but an earlier folder of ours of the same kind."""
    given = out
    out = Path(out)
    if str(given) == "":
        raise ParityInputError(f"{arg('out')} must be a folder path (received: '')")
    target = out.resolve()
    if target.exists() and not target.is_dir():
        raise ParityInputError(f"{arg('out')} must be a folder, and {out} is a file; choose another path")
    if target == Path.cwd().resolve() or target in Path.cwd().resolve().parents:
        raise ParityInputError(f"{arg('out')} must be a folder of its own, not the current folder or one above it "
                               f"(received: {out})")
    record, noun, _ = KINDS[kind]
    allowed = f"{arg('out')} may name a new or empty folder, or an earlier {noun} ({record})"
    if target.is_dir() and any(target.iterdir()):
        found = folder_kind(target)
        if found is None:
            raise ParityInputError(f"{arg('out')} {out} holds files that are not a keras-parity {noun}; {allowed}; "
                                   "choose another folder (nothing was changed)")
        if found != kind:
            theirs, their_noun, by = KINDS[found]
            raise ParityInputError(f"{arg('out')} {out} holds a keras-parity {their_noun} ({theirs}, written by {by}), "
                                   f"not a {noun}; {allowed}; choose another folder (nothing was changed)")
    holder = _kind_holding(target)
    if holder is not None:
        _, theirs, by = KINDS[holder[1]]
        raise ParityInputError(f"{arg('out')} {out} is inside {holder[0]}/, a keras-parity {theirs} written by {by}; "
                               "choose a folder outside it (nothing was changed)")
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
