"""`parity bench`'s whole-command measures: `parity` run as a fresh process, timed with its peak memory; a bare
import of its libraries as the baseline; a class graded twice; a recorded check beside a live one."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["command_cost", "bare_import", "grade_class", "recorded_check", "BARE_IMPORT"]


def command_cost(args: list[str]) -> tuple[float, float | None]:
    """(wall seconds, peak RSS in MB) of one `parity` command in a fresh process; the RSS is None where the
    platform has no `resource` module (Windows): that floor is then not measured."""
    code = ("import subprocess, sys, time; t = time.perf_counter(); "
            "rc = subprocess.run(sys.argv[1:]).returncode; wall = time.perf_counter() - t\n"
            "try:\n    import resource\nexcept ImportError:\n    rss = float('nan')\n"
            "else:\n    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / "
            "(2**20 if sys.platform == 'darwin' else 1024)\n"
            "print(wall, rss, rc)")
    done = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "parity.cli", *args],
                          capture_output=True, text=True, check=True, env=_as_installed())
    wall, rss, rc = done.stdout.split()
    if rc not in ("0", "1"):
        raise RuntimeError(f"parity {' '.join(args)} exited {rc}")
    return float(wall), None if rss == "nan" else float(rss)


def _as_installed() -> dict:
    """The environment for a measured command: this one, but Python caching its bytecode as it does by default (with
    PYTHONDONTWRITEBYTECODE set and no cache yet, every `parity` command compiles its 100 or so modules again, about
    0.1 s that an installed tool does not pay: the first of the repeats writes the cache)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


# The libraries a default run loads, imported under the `parity` process's collection policy: the baseline
# gains what the run's own imports gain from it, so the difference stays the work beyond importing.
BARE_IMPORT = ("from parity.cli import few_full_collections; few_full_collections(); "
               "import parity.keras_side.side, matplotlib.pyplot, pandas, pyarrow.csv")


def bare_import(exit_now: bool = False) -> float:
    """Wall seconds of a fresh interpreter that only imports what the default run imports. It ends as any process
    does, tearing down what it imported; with `exit_now`, it ends at once as `parity run` does (cli._exit_now): the
    baseline of the run's work alone, with no teardown on either side."""
    imported = BARE_IMPORT + ("; import os; os._exit(0)" if exit_now else "")
    code = ("import subprocess, sys, time; t = time.perf_counter(); "
            f"subprocess.run([sys.argv[1], '-c', {imported!r}], check=True); print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code, sys.executable], capture_output=True, text=True, check=True,
                          env=_as_installed())
    return float(done.stdout)


_FAILING = '''
"""The reference layers with a Relu whose backward forgets its mask: a failing submission."""
from parity.book.layers import Affine, MeanSquaredError


class Relu:
    def forward(self, x):
        self.mask = x <= 0
        return (x > 0) * x

    def backward(self, dout):
        return dout
'''


def grade_class(reference: str | None = None) -> dict:
    """What one more submission costs `parity grade` (seed scenario, a local cluster of one worker per
    core, default plots: only failing submissions get them): whole commands, (24 - 4) / 20 for a class
    that passes, (12 - 4) / 8 for one that fails and so has its plots drawn. `reference`: graded against
    that recording (`--reference`), its workers never importing TensorFlow."""
    import inspect

    from parity.book import layers

    passing = inspect.getsource(layers)
    record = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, source, sizes in (("passing", passing, (4, 24)), ("failing", _FAILING, (4, 12))):
            times = {}
            for n in sizes:
                folder = Path(tmp) / f"{kind}{n}"
                folder.mkdir()
                for i in range(n):
                    (folder / f"student_{i:02d}.py").write_text(source)
                given = [] if reference is None else ["--reference", reference]
                times[n], _ = command_cost(["grade", str(folder), "--out", f"{tmp}/{kind}{n}-book", "--quiet", *given])
            small, big = sizes
            record[kind] = {f"grade_{small}_s": times[small], f"grade_{big}_s": times[big],
                            "extra_submission_s": (times[big] - times[small]) / (big - small)}
    return record


def recorded_check() -> dict:
    """A whole `parity check` of the reference layers (seed scenario, no plots) against the shipped recording, in a
    fresh process, beside the same check computing its Keras side; best of three each, alternated."""
    import inspect

    from parity.book import layers

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "my_layers.py").write_text(inspect.getsource(layers))
        common = ["check", "--layers", f"{tmp}/my_layers.py", "--quiet", "--out", f"{tmp}/report", "--no-plots"]
        times = [(command_cost([*common, "--reference", "seed-float32"])[0], command_cost(common)[0]) for _ in range(3)]
        plotted, _ = command_cost([*common[:-1], "--reference", "seed-float32"])
    recorded, live = min(r for r, _ in times), min(live for _, live in times)
    return {"recorded_check_s": recorded, "live_check_s": live, "recorded_speedup": live / recorded,
            "recorded_check_with_plots_s": plotted}
