"""Render a ParityResult: CSV tables, summary.json, plots, report.html, all moved into place at once; and the terminal text."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np

from parity.errors import ReportWriteError
from parity.runner import ParityResult
from parity.user_layers import LAYER_NAMES

__all__ = ["ReportWriter", "summary", "terminal_summary", "atomic_folder"]


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


def _finite_or_str(value):
    """JSON has no inf/NaN: write them as strings so the file stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite_or_str(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_str(v) for v in value]
    if isinstance(value, np.generic):
        return _finite_or_str(value.item())
    return value


def summary(result: ParityResult, files: list[str]) -> dict:
    import matplotlib
    import pandas

    probe = result.summaries["probe"]
    from parity import __version__
    from parity.outputs import SCHEMA_VERSION, TOOL

    return _finite_or_str({
        "tool": TOOL,
        "version": __version__,
        "schema_version": SCHEMA_VERSION,
        "verdict": result.verdict,
        "scenario": result.config.scenario,
        "dtype": result.config.dtype,
        "tolerances": {result.config.dtype: result.tolerance.as_dict(),
                       "rule": "pass when |numpy - keras| <= atol + rtol * |keras| and both are finite"},
        "max_abs_diff": result.max_abs_diff(),
        "tolerance_used": result.tolerance_used(),
        "rows": {phase: {"rows": s.rows, **s.verdicts} for phase, s in result.summaries.items()},
        "dead_units": result.dead_units,
        "saturated_units": result.saturated_units,
        **({"classes": probe.classes} if result.classifies else {}),
        "dead_relu_steps": result.dead_relu_steps,
        "zero_patterns": {phase: s.zero_patterns for phase, s in result.summaries.items()},
        "kinks": result.kinks,
        "layers": result.layers or {name: "reference" for name in LAYER_NAMES},
        "optimizer": result.optimizer,
        "findings": [f.as_dict() for f in result.findings],
        "config": result.config.as_dict(),
        "model": {"input_dim": result.spec.input_dim, "loss": result.spec.loss, "source": (
                      str(result.config.model_path) if result.config.model_path else f"scenario {result.config.scenario}"),
                  "layers": [{"units": s.units, "activation": s.activation} for s in result.spec.layers]},
        "fitted_weights": {k: v.tolist() for k, v in result.fitted.items()},
        "environment": {**result.environment, "pandas": pandas.__version__, "matplotlib": matplotlib.__version__},
        "files": files,
    })


class _Table:
    """One table written chunk by chunk: CSV appended, or Parquet row groups (pyarrow)."""

    def __init__(self, folder: Path, stem: str, fmt: str):
        self.name = f"{stem}.{fmt}"
        self.path, self.fmt = folder / self.name, fmt
        self._writer = self._schema = None
        self._started = False

    def write(self, frame) -> None:
        try:
            self._write(frame)
        except OSError as exc:  # a full disk says nothing of the file it filled: name it
            exc.filename = exc.filename or str(self.path)
            raise

    def _write(self, frame) -> None:
        import pyarrow as pa

        table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
        if self._writer is None:
            self._schema = table.schema
            if self.fmt == "csv":
                import pyarrow.csv as pc

                # Arrow's writer: several times pandas's speed; floats in shortest round-trip form, as pandas.
                self._writer = pc.CSVWriter(self.path, self._schema)
            else:
                import pyarrow.parquet as pq

                # Dictionary-encode only the string columns: on random floats it costs time and saves nothing.
                strings = [f.name for f in self._schema if pa.types.is_dictionary(f.type)]
                self._writer = pq.ParquetWriter(self.path, self._schema, use_dictionary=strings, compression="lz4")
        self._writer.write_table(table)
        self._started = True

    def close(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
        except OSError as exc:
            exc.filename = exc.filename or str(self.path)
            raise


class ReportWriter:
    """Writes a run's report into a folder as the run goes: probe chunks as they come, the rest at the end."""

    def __init__(self, folder: Path, data, config, spec, fmt: str = "csv", plots: bool = True, plot_worker=None):
        from parity.config import WORST_GRADIENTS
        from parity.tables import WorstGradients, gradients_table, samples_table

        self.folder, self.data, self.config, self.fmt, self.plots = folder, data, config, fmt, plots
        self.plot_worker = plot_worker  # a parity.plot_worker.PlotWorker that draws some pictures, or None
        self.classifies = spec.loss != "mean_squared_error"
        self.samples = _Table(folder, "samples", fmt)
        self.gradients = _Table(folder, "gradients", fmt)
        self._samples_table, self._gradients_table = samples_table, gradients_table
        self.worst = None if getattr(config, "all_gradients", False) else WorstGradients(WORST_GRADIENTS)
        self.curves = None
        if plots:
            from parity.probe_curves import ProbeCurves

            self.curves = ProbeCurves(data, spec)

    def add_probe_chunk(self, part) -> None:
        rows, data = part.rows, self.data
        self.samples.write(self._samples_table(part, data.x[rows], data.y[rows], data.split(rows),
                                               classes=self.classifies))
        if self.worst is None:
            self.gradients.write(self._gradients_table(part))
        elif len(part.rows) == len(data):  # the whole probe at once: its rows in order
            self._write_gradients(part)
        else:  # in chunks: the rows that do not pass now, the largest differences once all are seen
            from parity.tables import gradient_entries

            chosen = gradient_entries(part, self.worst.worst)
            self.gradients.write(self._gradients_table(part, keep={k: failing for k, (failing, _) in chosen.items()}))
            for key, (_, worst) in chosen.items():
                self.worst.add(self._gradients_table(part, keep={key: worst}), key)
        if self.curves is not None:
            self.curves.add(part)

    def _write_gradients(self, phase) -> None:
        """A whole phase's gradient rows that matter (all of them with all_gradients), in row order."""
        if self.worst is None:
            self.gradients.write(self._gradients_table(phase))
            return
        from parity.tables import gradient_entries

        chosen = gradient_entries(phase, self.worst.worst)
        self.gradients.write(self._gradients_table(phase, keep={k: np.union1d(failing, worst)
                                                                for k, (failing, worst) in chosen.items()}))

    def _finish_gradients(self, result: ParityResult) -> None:
        """The probe's largest differences when it came in chunks, then the batch and stepping phases."""
        if self.worst is not None and self.worst.kept:
            import pandas as pd

            self.gradients.write(pd.concat(self.worst.table("probe"), ignore_index=True))
        for phase in (result.batch, result.stepping):
            if phase is not None:
                self._write_gradients(phase)

    def finish(self, result: ParityResult) -> list[str]:
        from parity.tables import steps_table

        handed = None
        if self.curves is not None:  # the worker's pictures first: it draws them while the tables are written
            from parity.plots import hand_over

            handed = hand_over(self.plot_worker, result, self.curves)
        train = self.config.train
        self._finish_gradients(result)
        steps = _Table(self.folder, "steps", self.fmt)
        steps.write(steps_table(result.stepping, self.data.x[:train], self.data.y[:train], result.fitted))
        for table in (self.samples, steps, self.gradients):
            table.close()
        files = [self.samples.name, steps.name, self.gradients.name]
        images = {}
        if self.curves is not None:
            from parity.plots import draw_all

            images = draw_all(result, self.curves, self.folder, handed)  # file name -> the PNG bytes written
            files += list(images)
        from parity.report_html import render_html

        files += ["report.html", "summary.json"]
        record = summary(result, files)  # one dict for both: the page and the JSON cannot disagree
        (self.folder / "report.html").write_text(render_html(record, images), encoding="utf-8")
        text = json.dumps(record, indent=2, allow_nan=False)
        (self.folder / "summary.json").write_text(text + "\n")
        return files


def terminal_summary(result: ParityResult, out: Path | None, files: list[str], verbose: bool = False) -> str:
    """The terminal text (parity.terminal): the verdict, one line per root cause, the dead-ReLU lesson."""
    from parity.terminal import terminal_text

    return terminal_text(result, out, files, verbose)
