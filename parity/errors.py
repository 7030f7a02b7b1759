"""The one error type for bad input, and how a door names its arguments in it.

The CLI prints a ParityInputError as one `error:` line and exits 2; the Python API raises it. Its
message names the argument as the caller gave it: a flag (`--batch-size`) on the command line, a
keyword (`batch_size=`) from Python. Messages ask `arg("batch_size")` for that name.
"""

from __future__ import annotations

import contextlib
import contextvars

__all__ = ["ParityInputError", "arg", "python_door"]

_PYTHON = contextvars.ContextVar("parity_python_door", default=False)

# Fields whose flag is not simply the field's name with dashes.
_FLAGS = {"data_path": "--data", "model_path": "--model", "config_path": "--config", "plots": "--no-plots"}
_KEYWORDS = {"data_path": "data", "model_path": "model", "config_path": "config"}


class ParityInputError(ValueError):
    """Bad input from the user: what was received, what is expected, and the fix when obvious."""


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
