"""Render a ParityResult: CSV tables, summary.json, plots, report.html, all moved into place at once; and the terminal text."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.compare.outcome import ParityResult
from parity.report.folder import atomic_folder
from parity.report.summary_json import summary

__all__ = ["ReportFolder", "ReportWriter", "summary", "terminal_summary", "atomic_folder"]


class _Table:
    """One table written chunk by chunk from its columns (parity.report.tables): CSV appended, or Parquet row
    groups (pyarrow). CSV goes straight from the columns to Arrow; Parquet through pandas, whose metadata
    the file keeps (pandas reads its categorical and nullable columns back as they were)."""

    def __init__(self, folder: Path, stem: str, fmt: str):
        self.name = f"{stem}.{fmt}"
        self.path, self.fmt = folder / self.name, fmt
        self._writer = self._schema = None
        self._started = False

    def write(self, cols: dict) -> None:
        try:
            self._write(cols)
        except OSError as exc:  # a full disk says nothing of the file it filled: name it
            exc.filename = exc.filename or str(self.path)
            raise

    def _write(self, cols: dict) -> None:
        import pyarrow as pa

        from parity.report.tables import arrow, frame

        if self.fmt == "csv":
            table = arrow(cols)
            if self._schema is not None and not table.schema.equals(self._schema):
                table = table.cast(self._schema)  # (pyarrow.compute: 0.2 s to import, so only when it is needed)
        else:
            table = pa.Table.from_pandas(frame(cols), schema=self._schema, preserve_index=False)
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


@dataclass(frozen=True)
class ReportFolder:
    """The report folder a door asks the pipeline for: the tables' format, a plot worker that draws some of
    the pictures (parity.report.plot_worker.PlotWorker, started by the CLI), and where: `config.out`, or
    `into` (grade writes each submission's report in a worker's scratch folder, recording `config.out`)."""

    fmt: str = "csv"
    plot_worker: object = None
    into: Path | None = None

    def place(self, config) -> Path:
        return Path(self.into or config.out)


class ReportWriter:
    """Writes a run's report into a folder as the run goes: probe chunks as they come, the rest at the end."""

    def __init__(self, folder: Path, data, config, spec, fmt: str = "csv", plots: bool = True, plot_worker=None):
        from parity.settings.config import WORST_GRADIENTS
        from parity.report.tables import WorstGradients, gradient_columns, samples_columns

        self.folder, self.data, self.config, self.fmt, self.plots = folder, data, config, fmt, plots
        self.plot_worker = plot_worker  # a parity.report.plot_worker.PlotWorker that draws pictures, or None
        self.classifies = spec.loss != "mean_squared_error"
        self.samples = _Table(folder, "samples", fmt)
        self.gradients = _Table(folder, "gradients", fmt)
        self._samples_table, self._gradients_table = samples_columns, gradient_columns
        self.worst = None if getattr(config, "all_gradients", False) else WorstGradients(WORST_GRADIENTS)
        self.curves = None
        if plots:
            from parity.report.probe_curves import ProbeCurves

            self.curves = ProbeCurves(data, spec)

    def add_probe_chunk(self, part) -> None:
        rows, data = part.rows, self.data
        self.samples.write(self._samples_table(part, data.x[rows], data.y[rows], data.split(rows),
                                               classes=self.classifies))
        if not any(d.kind == "gradient" for d in part.diffs.values()):  # a test-mode probe: forward only
            pass
        elif self.worst is None:
            self.gradients.write(self._gradients_table(part))
        elif len(part.rows) == len(data):  # the whole probe at once: its rows in order
            self._write_gradients(part)
        else:  # in chunks: the rows that do not pass now, the largest differences once all are seen
            from parity.report.tables import gradient_entries

            chosen = gradient_entries(part, self.worst.worst)
            self.gradients.write(self._gradients_table(part, keep={k: failing for k, (failing, _) in chosen.items()}))
            for key, (_, worst) in chosen.items():
                self.worst.add(self._gradients_table(part, keep={key: worst}), key)
        if self.curves is not None:
            self.curves.add(part)

    def _write_gradients(self, phase) -> None:
        """A whole phase's gradient rows that matter (all of them with all_gradients), in row order."""
        if not any(d.kind == "gradient" for d in phase.diffs.values()):  # a test-mode probe: forward only
            return
        if self.worst is None:
            self.gradients.write(self._gradients_table(phase))
            return
        from parity.report.tables import gradient_entries

        chosen = gradient_entries(phase, self.worst.worst)
        self.gradients.write(self._gradients_table(phase, keep={k: np.union1d(failing, worst)
                                                                for k, (failing, worst) in chosen.items()}))

    def _finish_gradients(self, result: ParityResult) -> None:
        """The probe's largest differences when it came in chunks, then the batch and stepping phases."""
        if self.worst is not None and self.worst.kept:
            from parity.report.tables import concat

            self.gradients.write(concat(self.worst.table("probe")))
        for phase in (result.batch, result.stepping):
            if phase is not None:
                self._write_gradients(phase)

    def phase_done(self, phase: str, so_far: ParityResult) -> None:
        """A phase is final (compare_numpy's on_phase): the worker draws the pictures that read it while the run goes
        on: the probe's while the run steps, the rest while the findings are settled and the tables written."""
        if self.curves is not None and self.plot_worker is not None:
            from parity.report.plots import hand_over, hand_over_probe

            (hand_over_probe if phase == "probe" else hand_over)(self.plot_worker, so_far, self.curves)

    def finish(self, result: ParityResult) -> list[str]:
        from parity.report.tables import steps_columns

        if self.curves is not None:  # whatever the worker was not given yet (phase_done), then the tables
            from parity.report.plots import hand_over

            hand_over(self.plot_worker, result, self.curves)
        train = self.config.train
        self._finish_gradients(result)
        steps = _Table(self.folder, "steps", self.fmt)
        steps.write(steps_columns(result.stepping, self.data.x[:train], self.data.y[:train], result.fitted))
        for table in (self.samples, steps, self.gradients):
            table.close()
        files = [self.samples.name, steps.name, self.gradients.name]
        images = {}
        if self.curves is not None:
            from parity.report.plots import draw_all

            images = draw_all(result, self.curves, self.folder, self.plot_worker)  # file name -> the PNG bytes written
            files += list(images)
        from parity.report.html import render_html

        files += ["report.html", "summary.json"]
        record = summary(result, files)  # one dict for both: the page and the JSON cannot disagree
        (self.folder / "report.html").write_text(render_html(record, images), encoding="utf-8")
        text = json.dumps(record, indent=2, allow_nan=False)
        (self.folder / "summary.json").write_text(text + "\n")
        return files


def terminal_summary(result: ParityResult, out: Path | None, files: list[str], verbose: bool = False) -> str:
    """The terminal text (parity.report.terminal): the verdict, one line per root cause, the dead-ReLU lesson."""
    from parity.report.terminal import terminal_text

    return terminal_text(result, out, files, verbose)
