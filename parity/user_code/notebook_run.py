"""`--run-all`: a notebook's every cell executed first on a fresh Jupyter kernel (nbclient), in the notebook's
folder, as Restart & Run All would, before its definitions are loaded and checked.

What that proves: the notebook runs top to bottom, and what its cells make on disk (a `%%writefile helpers.py`
cell, a downloaded data set) is there when the definitions are loaded. The classes checked are still the
definitions, loaded in the check's own process (user_code.notebook): a kernel's objects cannot cross into it.
A cell that raises is bad input naming the cell, its line and the error; a run past the limit is a timeout.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from parity.errors import CheckTimedOut, ParityInputError, arg, first_line

__all__ = ["run_all_cells", "RUN_ALL_S"]

RUN_ALL_S = 600.0  # the limit on executing a notebook when the door sets none
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # IPython colours its tracebacks


def _error_of(cell) -> tuple[str, str, int | None]:
    """(exception name, value, line within the cell) of a cell's error output: IPython's traceback names the
    cell's own frame first, `Cell In[3], line 33`."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            plain = _ANSI.sub("", "\n".join(output.get("traceback", [])))
            found = re.search(r"Cell In\[\d*\], line (\d+)", plain)
            return output.get("ename", "Error"), output.get("evalue", ""), int(found.group(1)) if found else None
    return "Error", "", None


def run_all_cells(path: Path, source: str, seconds: float | None = None) -> None:
    """Execute every cell of the notebook at `path` on a new kernel, within `seconds` (RUN_ALL_S when None)."""
    try:
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
    except ImportError:
        raise ParityInputError(f"{arg('run_all')} needs nbclient and ipykernel: pip install "
                               "'keras-parity[notebooks]'") from None
    limit = RUN_ALL_S if seconds is None or seconds is True else float(seconds)
    nb = nbformat.read(path, as_version=4)
    deadline = time.monotonic() + limit
    current = [0]

    def started(cell=None, cell_index: int = 0, **_) -> None:
        current[0] = cell_index

    client = NotebookClient(nb, kernel_name="python3", allow_errors=False, on_cell_execute=started,
                            timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
                            resources={"metadata": {"path": str(Path(path).resolve().parent)}})
    try:
        # The kernel's own stderr (its TCP warning, TensorFlow's start-up lines) is not the notebook's: what a cell
        # prints or raises comes back as its outputs, and a check's stderr keeps its one `error:` line.
        client.execute(stderr=subprocess.DEVNULL)
    except CellTimeoutError:
        raise CheckTimedOut(f"{arg('run_all')}: {source} did not finish within {limit:g} s; it was running cell "
                            f"{current[0] + 1}") from None
    except CellExecutionError:
        number = current[0] + 1
        name, value, line = _error_of(nb.cells[current[0]])
        at = f", line {line}" if line else ""
        raise ParityInputError(f"{arg('run_all')}: {source}, cell {number}{at} raised {name}: "
                               f"{first_line(value, 200) if value else name}; the notebook must run top to "
                               "bottom (Restart & Run All) before it is checked") from None
    except DeadKernelError as exc:
        raise ParityInputError(f"{arg('run_all')}: {source}: the kernel died at cell {current[0] + 1} "
                               f"({first_line(exc, 200)})") from None
