"""The error types a door reports to a person: bad input, and a report that could not be written.

The CLI prints a ParityInputError as one `error:` line and exits 2; the Python API raises it. Its
message names the argument as the caller gave it: a flag (`--batch-size`) on the command line, a
keyword (`batch_size=`) from Python. Messages ask `arg("batch_size")` for that name.
A ReportWriteError (a full disk, a permission taken away, any OSError while the report folder is
written) is one `error:` line and exit 3 on the command line; the previous report is left as it was.
"""

from __future__ import annotations

import contextlib
import contextvars

__all__ = ["ParityInputError", "ReportWriteError", "arg", "python_door"]

_PYTHON = contextvars.ContextVar("parity_python_door", default=False)

# Fields whose flag is not simply the field's name with dashes.
_FLAGS = {"data_path": "--data", "model_path": "--model", "config_path": "--config", "plots": "--no-plots"}
_KEYWORDS = {"data_path": "data", "model_path": "model", "config_path": "config"}


class ParityInputError(ValueError):
    """Bad input from the user: what was received, what is expected, and the fix when obvious."""


class ReportWriteError(OSError):
    """The report folder could not be written: what failed and where; the previous report is intact."""


def arg(name: str) -> str:
    """The argument `name` (a RunConfig field) as the current door spells it: `--batch-size` or `batch_size=`."""
    if _PYTHON.get():
        return f"{_KEYWORDS.get(name, name)}="
    return _FLAGS.get(name, "--" + name.replace("_", "-"))


@contextlib.contextmanager
def python_door():
    """Within this block, error messages name keyword arguments instead of flags."""
    token = _PYTHON.set(True)
    try:
        yield
    finally:
        _PYTHON.reset(token)
