"""Render a ParityResult: CSV tables, summary.json, plots, report.html, all moved into place at once; and the terminal text."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from parity.runner import ParityResult
from parity.user_layers import LAYER_NAMES

__all__ = ["ReportWriter", "summary", "terminal_summary", "atomic_folder"]


@contextlib.contextmanager
def atomic_folder(target: Path):
    """Yield a temporary folder beside `target`; on success it replaces `target` whole.

    On any error or interrupt the temporary folder is removed and `target` is left as it was, so
    a reader finds the previous complete report or none, never a mix.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it private; a report folder is for reading
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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
        if self.fmt == "csv":
            frame.to_csv(self.path, mode="a" if self._started else "w", header=not self._started, index=False,
                         lineterminator="\n")
        else:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
            if self._writer is None:
                self._schema = table.schema
                # Dictionary-encode only the string columns: on random floats it costs time and saves nothing.
                strings = [f.name for f in self._schema if pa.types.is_dictionary(f.type)]
                self._writer = pq.ParquetWriter(self.path, self._schema, use_dictionary=strings, compression="lz4")
            self._writer.write_table(table)
        self._started = True

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class ReportWriter:
    """Writes a run's report into a folder as the run goes: probe chunks as they come, the rest at the end."""

    def __init__(self, folder: Path, data, config, spec, fmt: str = "csv", plots: bool = True):
        from parity.tables import gradients_table, samples_table

        self.folder, self.data, self.config, self.fmt, self.plots = folder, data, config, fmt, plots
        self.classifies = spec.loss != "mean_squared_error"
        self.samples = _Table(folder, "samples", fmt)
        self.gradients = _Table(folder, "gradients", fmt)
        self._samples_table, self._gradients_table = samples_table, gradients_table
        self.curves = None
        if plots:
            from parity.probe_curves import ProbeCurves

            self.curves = ProbeCurves(data, spec)

    def add_probe_chunk(self, part) -> None:
        rows, data = part.rows, self.data
        self.samples.write(self._samples_table(part, data.x[rows], data.y[rows], data.split(rows),
                                               classes=self.classifies))
        self.gradients.write(self._gradients_table(part))
        if self.curves is not None:
            self.curves.add(part)

    def finish(self, result: ParityResult) -> list[str]:
        from parity.tables import steps_table

        train = self.config.train
        self.gradients.write(self._gradients_table(*[p for p in (result.batch, result.stepping) if p is not None]))
        steps = _Table(self.folder, "steps", self.fmt)
        steps.write(steps_table(result.stepping, self.data.x[:train], self.data.y[:train], result.fitted))
        for table in (self.samples, steps, self.gradients):
            table.close()
        files = [self.samples.name, steps.name, self.gradients.name]
        if self.curves is not None:
            from parity.plots import draw_all

            files += draw_all(result, self.curves, self.folder)
        from parity.report_html import render_html

        files += ["report.html", "summary.json"]
        record = summary(result, files)  # one dict for both: the page and the JSON cannot disagree
        images = {name: (self.folder / name).read_bytes() for name in files if name.endswith(".png")}
        (self.folder / "report.html").write_text(render_html(record, images), encoding="utf-8")
        text = json.dumps(record, indent=2, allow_nan=False)
        (self.folder / "summary.json").write_text(text + "\n")
        return files


def terminal_summary(result: ParityResult, out: Path, files: list[str]) -> str:
    c, tol = result.config, result.tolerance
    lines = [f"keras-parity: scenario {c.scenario}, {c.dtype}, {c.samples} samples ({c.train} train), "
             f"{c.epochs} epochs, lr {c.lr}, batch {c.batch_size}"]
    rows = [f"{phase} {s.rows - s.verdicts['fail'] - s.verdicts['error']}/{s.rows}"
            for phase, s in result.summaries.items()]
    lines.append(f"verdict: {result.verdict.upper()}  ({', '.join(rows)} within rtol={tol.rtol:g} atol={tol.atol:g})")
    worst = sorted(result.max_abs_diff().items(), key=lambda kv: -kv[1])[:3]
    lines.append("worst abs differences: " + ", ".join(f"{k} {v:.3g}" for k, v in worst))
    name, used = max(result.tolerance_used().items(), key=lambda kv: kv[1])
    lines.append(f"closest to the tolerance: {name} used {used:.1%} of it" if used <= 1 else
                 f"furthest beyond the tolerance: {name}, {used:.3g} times it")
    for title, fractions in (("dead ReLU units", result.dead_units["fraction_dead"]),
                             ("saturated sigmoid units", result.saturated_units)):
        if fractions:
            shown = list(fractions.items())[:8]
            more = f", ... ({len(fractions) - 8} more)" if len(fractions) > 8 else ""
            lines.append(f"{title} (share of samples, keras): "
                         + ", ".join(f"{u} {f['keras']:.0%}" for u, f in shown) + more)
    if result.optimizer:
        o = result.optimizer
        mine = ", ".join(f"{k} {v:g}" for k, v in o["hyperparameters"]["run"].items())
        theirs = ", ".join(f"{k}={v}" for k, v in o["keras"]["arguments"].items())
        lines.append(f"optimizer: {o['name']} ({mine}), {o['class']}; Keras: {o['keras']['class']}({theirs})")
    users = [name for name, whose in result.layers.items() if whose != "reference"]
    if users:
        lines.append(f"your layers: {', '.join(users)}; reference: "
                     + (", ".join(n for n, w in result.layers.items() if w == "reference") or "none"))
    consequences = 0
    for f in result.findings:
        if f.consequence_of:
            consequences += 1
        elif f.severity != "info" or f.code == "dead_relu":
            lines.append(f"  [{f.severity}] {f.code}: {f.message}")
            if f.fix:
                lines.append(f"      fix to try: {f.fix}")
    if consequences:
        lines.append(f"  ... and {consequences} more mismatches in the batch and stepping phases that follow from "
                     "the findings above (all in summary.json)")
    lines.append(f"reports: {out}/ ({', '.join(files)})")
    return "\n".join(lines)
