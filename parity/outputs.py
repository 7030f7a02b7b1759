"""The report folder: checked before any work, and never one that holds anything but our own report.

A run replaces its folder whole, so the folder must be new, empty, or a folder this tool wrote: a
report whose summary.json, a gradebook whose gradebook.json or a sweep whose sweep.json says
`"tool": "keras-parity"` with a schema version. A file merely named summary.json (another tool's,
say) does not make a folder ours.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from parity.errors import ParityInputError, arg

__all__ = ["TOOL", "SCHEMA_VERSION", "OWN_FILES", "is_report", "check_out", "check_writable"]

TOOL = "keras-parity"
SCHEMA_VERSION = 2  # summary.json's layout; 2 added tool, version, schema_version and typed findings
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
