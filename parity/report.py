"""Render a ParityResult: CSV tables, summary.json, plots, all moved into place at once; and the terminal text."""

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

__all__ = ["summary", "write_report", "terminal_summary", "atomic_folder", "TABLES"]

TABLES = ("samples.csv", "steps.csv", "gradients.csv")


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


def _row_counts(phase) -> dict:
    verdicts = phase.verdicts
    return {"rows": int(len(verdicts)), **{v: int((verdicts == v).sum()) for v in ("pass", "fail", "kink", "error",
                                                                                   "convention")}}


def _zero_patterns(phase) -> dict:
    out = {}
    for name, d in phase.diffs.items():
        if d.kind == "gradient":
            n = len(d.numpy)
            agree = ((d.numpy == 0) == (d.keras == 0)).reshape(n, -1).all(axis=1)
            out[name] = {"rows_agree": int(agree.sum()), "rows_differ": int((~agree).sum()),
                         "zero_entries_numpy": int((d.numpy == 0).sum()), "zero_entries_keras": int((d.keras == 0).sum())}
    return out


def _classes(probe) -> dict:
    ours, theirs = probe.numpy.pred.argmax(axis=1), probe.keras.pred.argmax(axis=1)
    return {"predicted_class_agree": int((ours == theirs).sum()), "predicted_class_differ": int((ours != theirs).sum())}


def summary(result: ParityResult, files: list[str]) -> dict:
    import matplotlib
    import pandas

    return _finite_or_str({
        "verdict": result.verdict,
        "scenario": result.config.scenario,
        "dtype": result.config.dtype,
        "tolerances": {result.config.dtype: result.tolerance.as_dict(),
                       "rule": "pass when |numpy - keras| <= atol + rtol * |keras| and both are finite"},
        "max_abs_diff": result.max_abs_diff(),
        "tolerance_used": result.tolerance_used(),
        "rows": {p.phase: _row_counts(p) for p in result.phases},
        "dead_units": result.dead_units,
        "saturated_units": result.saturated_units,
        **({"classes": _classes(result.probe)} if result.classifies else {}),
        "dead_relu_steps": result.dead_relu_steps,
        "zero_patterns": {p.phase: _zero_patterns(p) for p in result.phases},
        "kinks": result.kinks,
        "layers": result.layers or {name: "reference" for name in ("Affine", "Relu", "Sigmoid", "MeanSquaredError",
                                                                  "SoftmaxWithLoss")},
        "findings": result.findings,
        "config": result.config.as_dict(),
        "model": {"input_dim": result.spec.input_dim, "loss": result.spec.loss, "source": (
                      str(result.config.model_path) if result.config.model_path else f"scenario {result.config.scenario}"),
                  "layers": [{"units": s.units, "activation": s.activation} for s in result.spec.layers]},
        "fitted_weights": {k: v.tolist() for k, v in result.fitted.items()},
        "environment": {**result.environment, "pandas": pandas.__version__, "matplotlib": matplotlib.__version__},
        "files": files,
    })


def write_report(result: ParityResult, out: Path, plots: bool = True) -> list[str]:
    """Write every file into a temporary folder, then move it into place; returns the file names."""
    from parity.tables import gradients_table, samples_table, steps_table

    data, train = result.data, result.config.train
    tables = {
        "samples.csv": samples_table(result.probe, data.x, data.y, data.split(), classes=result.classifies),
        "steps.csv": steps_table(result.stepping, data.x[:train], data.y[:train], result.fitted),
        "gradients.csv": gradients_table(*result.phases),
    }
    with atomic_folder(out) as tmp:
        for name, table in tables.items():
            table.to_csv(tmp / name, index=False, lineterminator="\n")
        files = list(tables)
        if plots:
            from parity.plots import draw_all
            files += draw_all(result, tmp)
        files.append("summary.json")
        text = json.dumps(summary(result, files), indent=2, allow_nan=False)
        (tmp / "summary.json").write_text(text + "\n")
    return files


def terminal_summary(result: ParityResult, out: Path, files: list[str]) -> str:
    c, tol = result.config, result.tolerance
    lines = [f"keras-parity: scenario {c.scenario}, {c.dtype}, {c.samples} samples ({c.train} train), "
             f"{c.epochs} epochs, lr {c.lr}, batch {c.batch_size}"]
    rows = [f"{p.phase} {int(np.isin(p.verdicts, ('pass', 'kink', 'convention')).sum())}/{len(p.verdicts)}"
            for p in result.phases]
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
    users = [name for name, whose in result.layers.items() if whose != "reference"]
    if users:
        lines.append(f"your layers: {', '.join(users)}; reference: "
                     + (", ".join(n for n, w in result.layers.items() if w == "reference") or "none"))
    consequences = 0
    for f in result.findings:
        if f.get("consequence_of"):
            consequences += 1
        elif f["severity"] != "info" or f["code"] == "dead_relu":
            lines.append(f"  [{f['severity']}] {f['code']}: {f['message']}")
            if f.get("fix"):
                lines.append(f"      fix to try: {f['fix']}")
    if consequences:
        lines.append(f"  ... and {consequences} more mismatches in the batch and stepping phases that follow from "
                     "the probe's (all in summary.json)")
    lines.append(f"reports: {out}/ ({', '.join(files)})")
    return "\n".join(lines)
