"""What user code a thread is running now: said when a time limit runs out ("Relu.backward, layers.ipynb, cell 4,
line 9"), so a timeout names the class and method that kept the check from finishing."""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from parity.user_code.guard import place

__all__ = ["running_user_code"]

_PARITY = str(Path(__file__).resolve().parents[1]) + os.sep
_INSTALLED = tuple({str(Path(p).resolve()) + os.sep for p in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                                  *sysconfig.get_paths().values()) if p})


def _theirs(filename: str) -> bool:
    """Code of the user's (a file of theirs, a notebook's cell), not Python's, a package's or ours."""
    if filename.startswith("<") and ", cell " not in filename:
        return False
    if ", cell " in filename:
        return True
    where = str(Path(filename).resolve()) if os.path.isabs(filename) else str(Path.cwd() / filename)
    return not where.startswith(_PARITY) and not where.startswith(_INSTALLED)


def running_user_code(thread_id: int) -> str:
    """'Relu.backward (layers.ipynb, cell 4, line 9)': the innermost frame of the user's code on that thread's
    stack, named by its class and method; '' when the thread runs none of it (TensorFlow, say) or is gone."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None and not _theirs(frame.f_code.co_filename):
        frame = frame.f_back
    if frame is None:
        return ""
    owner = frame.f_locals.get("self", frame.f_locals.get("cls"))
    cls = owner if isinstance(owner, type) else type(owner) if owner is not None else None
    name = f"{cls.__name__}.{frame.f_code.co_name}" if cls is not None else frame.f_code.co_name
    return f"{name} ({place(frame.f_code.co_filename, frame.f_lineno)})"
