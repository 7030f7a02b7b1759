"""`parity record`: the Keras side of one configuration, computed here by Keras and written to one file with
its provenance, so that later checks of that configuration need no TensorFlow; and `--verify`, which computes
it again with the installed Keras and says whether the recording still holds.

What a recording holds is exactly what a check reads from Keras: the data and saved weights it started from,
the fitted weights, the probe (per sample, in the chunks compare_numpy reads), the batch probe, the stepping
trajectory with the optimizer's state, and the layer probes' Keras values for every seeded input they use; with
Dropout or BatchNormalization, the masks Keras drew and the batch statistics it normalized with in each training-mode
batch and step, and the running statistics after each step (parity.keras_side.train_mode).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from parity.errors import ParityInputError, arg_given
from parity.numpy_side.trace import Trace
from parity.settings.config import RunConfig

__all__ = ["record", "verify", "Verification", "check_options", "check_recording_out", "written"]

# The run options that make a configuration (argparse names); --verify takes none of them: the file says.
RUN_OPTIONS = ("scenario", "config", "model", "data", "dtype", "seed", "data_seed", "samples", "train", "epochs", "lr",
               "optimizer", "batch_size", "out")


def _processor() -> str:
    """The CPU's model name where the system says it (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "an unknown processor"


def _joined(parts: list[Trace]) -> Trace:
    return Trace(pred=np.concatenate([p.pred for p in parts]), loss=np.concatenate([p.loss for p in parts]),
                 dx=np.concatenate([p.dx for p in parts]),
                 grads={k: np.concatenate([p.grads[k] for p in parts]) for k in parts[0].grads},
                 z={k: np.concatenate([p.z[k] for p in parts]) for k in parts[0].z},
                 maps={k: np.concatenate([p.maps[k] for p in parts]) for k in parts[0].maps})


def _build(prepared) -> tuple[dict, dict[str, np.ndarray]]:
    """(provenance, arrays): everything Keras contributes to a check of `prepared`, computed now by Keras."""
    from parity.compare.keras_values import every_keras_value
    from parity.settings.resources import chunk_rows
    from parity.keras_side.layer_reference import KerasLayers
    from parity.keras_side.recording import trace_arrays
    from parity.keras_side.reference import reference_for
    from parity.prepare import fingerprint
    from parity.version import __version__

    reference = reference_for(replace(prepared, recording=None))  # computed by Keras, whatever the config names
    n, chunk = len(prepared.data), chunk_rows(prepared.spec)
    probe = _joined([trace for _, _, trace in reference.probe_chunks(
        [(start, min(start + chunk, n)) for start in range(0, n, chunk)])])  # the chunks a check reads

    class Capture(KerasLayers):  # Keras's answers to the layer probes, as a check asks for them
        calls: list = []

        def results(self, what, inputs, compute):
            out = super().results(what, inputs, compute)
            self.calls.append((what, inputs, out))
            return out

    every_keras_value(Capture(), images=bool(prepared.spec.features))  # the chapter-7 probes where the model has them
    arrays = {"data/x": prepared.data.x, "data/y": prepared.data.y,
              **{f"saved/{i}": w for i, w in enumerate(prepared.weights or [])},
              **{f"fitted/{k}": v for k, v in reference.fitted.items()},
              **trace_arrays("probe", probe), **trace_arrays("stepping", reference.stepping),
              **(trace_arrays("batch", reference.batch) if reference.batch is not None else {})}
    for i, (_, inputs, outputs) in enumerate(Capture.calls):
        arrays |= {f"layers/{i}/in/{j}": a for j, a in enumerate(inputs)}
        arrays |= {f"layers/{i}/out/{j}": np.asarray(a) for j, a in enumerate(outputs)}
    env = reference.environment
    fixed, digest = fingerprint(prepared)
    meta = {"keras_parity": __version__, "recorded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "keras": env["keras"], "tensorflow": env["tensorflow"], "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "processor": _processor(),
            "op_determinism": env["op_determinism"], "environment": env,
            "config": prepared.config.as_dict() | {"out": None}, "fingerprint": fixed, "config_hash": digest,
            "spec": fixed["spec"], "fitted": list(reference.fitted), "saved_weights": None if prepared.weights is None
            else len(prepared.weights), "batch": reference.batch is not None, "optimizer": reference.optimizer,
            "vectorized_map_fallback": reference.vectorized_map_fallback,
            "layer_probes": [{"what": list(what), "inputs": len(inputs), "outputs": len(outputs)}
                             for what, inputs, outputs in Capture.calls]}
    return meta, arrays


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_options(args) -> None:
    """The record command's options, before any work: --verify FILE alone, or run options and --out FILE; no
    report options (a recording is no report)."""
    report = [_flag(n) for n in ("no_plots", "all_gradients", "verbose") if getattr(args, n)]
    report += [f"--format {args.format}"] if args.format != "csv" else []
    if report:
        raise ParityInputError(f"record writes no report, so --no-plots, --all-gradients, --format and --verbose do "
                               f"not apply (received: {report[0]})")
    if args.verify is None:
        check_recording_out(args.out)
        return
    given = [_flag(n) for n in RUN_OPTIONS if getattr(args, n) is not None]
    if given:
        raise ParityInputError(f"record --verify FILE computes FILE's own configuration again: give it alone "
                               f"(received: {given[0]} with --verify)")


def written(meta: dict, out: Path) -> str:
    """What `parity record` prints once the file is written."""
    from parity.keras_side.recording import summary_line

    c = meta["config"]
    return (f"recorded: {out} ({out.stat().st_size / 1024:,.0f} KB): scenario {c['scenario']}, {c['dtype']}, "
            f"{c['samples']} samples ({c['train']} train), {c['epochs']} epochs, optimizer {c['optimizer']['name']}, "
            f"seed {c['seed']}; {summary_line(meta)}")


def check_recording_out(out: Path | None) -> Path:
    """--out for `parity record`: a .npz file in an existing folder; an existing file there must be a recording
    (it is replaced), never anything else (it is left as it is)."""
    from parity.keras_side.recording import open_recording

    if out is None:
        raise ParityInputError("record needs --out, the recording file to write (.npz) (received: no --out)")
    if out.suffix != ".npz":
        raise ParityInputError(f"{arg_given('out', out)} must name a .npz file, such as seed-float32.npz")
    if not out.parent.is_dir():
        raise ParityInputError(f"{arg_given('out', out)}: the folder {out.parent} does not exist")
    if out.exists():
        try:
            open_recording(out)
        except ParityInputError:
            raise ParityInputError(f"{arg_given('out', out)} exists and is not a keras-parity recording; it is left "
                                   "as it is: choose another name") from None
    return out


def record(config: RunConfig, out: Path) -> dict:
    """Compute the Keras side of `config` with Keras and write it to `out` whole (or not at all); its provenance."""
    from parity.keras_side.recording_file import write_recording
    from parity.pipeline import session_preserved
    from parity.prepare import prepare

    check_recording_out(out)
    with session_preserved():
        prepared = prepare(replace(config, reference=None))
        meta, arrays = _build(prepared)
    write_recording(out, meta, arrays)
    return meta


@dataclass
class Verification:
    """`parity record --verify`: does the installed Keras compute what the recording holds?"""

    holds: bool
    recorded: str  # "Keras 3.x / TensorFlow 2.y" that recorded it
    installed: str  # the same for this process
    values: int  # recorded values compared
    worst: dict  # the entry that used most of its tolerance: key, index, recorded, now, abs_diff, share
    largest: dict  # the largest absolute move
    tolerance: dict  # dtype -> {rtol, atol} used

    def text(self, file) -> str:
        w = self.worst
        where = f"{w['key']}{w['index'] or ''}"
        if self.holds:
            closest = "every one exactly as recorded" if w["share"] == 0 else \
                f"the closest to it: {where}, moved by {w['abs_diff']:.3g} ({w['share']:.1%} of its tolerance)"
            return (f"holds: the installed {self.installed} computes the {self.values:,} values {file} recorded "
                    f"(by {self.recorded}) within tolerance; {closest}")
        if w["index"] is None:
            moved = f"{w['key']} is no longer computed alike (its shape changed, or it is gone)"
        else:
            moved = (f"{where} moved by {w['abs_diff']:.3g} (recorded {w['recorded']:.9g}, now {w['now']:.9g}), "
                     f"{w['share']:.3g} times its tolerance")
        tolerances = "; ".join(f"{d} rtol {t['rtol']:g}, atol {t['atol']:g}" for d, t in self.tolerance.items())
        return (f"moved: the installed {self.installed} does not compute what {file} recorded with {self.recorded}: "
                f"{moved}; the largest move: {self.largest['key']} by {self.largest.get('largest_abs', 0):.3g} "
                f"(tolerances: {tolerances}). Record it again with this Keras, or check with {self.recorded}")


def _moves(key: str, was: np.ndarray, now: np.ndarray | None, tol) -> dict:
    """The largest move of one array, absolute and as a share of its tolerance (inf: not computed alike)."""
    if now is None or was.shape != now.shape:
        return {"key": key, "index": None, "recorded": None, "now": None, "abs_diff": float("inf"), "share": float("inf")}
    a, b = was.astype(np.float64), now.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(np.isnan(a) & np.isnan(b), 0.0, np.abs(a - b))
        diff = np.where(np.isnan(diff), np.inf, diff)
        share = diff / (tol.atol + tol.rtol * np.abs(a))
    if diff.size == 0:
        return {"key": key, "index": None, "recorded": None, "now": None, "abs_diff": 0.0, "share": 0.0}
    at = np.unravel_index(int(np.argmax(share)), diff.shape)
    return {"key": key, "index": [int(i) for i in at], "recorded": float(a[at]), "now": float(b[at]),
            "abs_diff": float(diff[at]), "share": float(share[at]), "largest_abs": float(diff.max())}


def verify(given) -> Verification:
    """Compute the recording's configuration again with the installed Keras, from its own data and saved
    weights, and compare every recorded value within the dtype's tolerance (the layer probes' in float64's)."""
    from parity.keras_side.recording import open_recording
    from parity.pipeline import session_preserved
    from parity.prepare import prepare, resolve_recorded
    from parity.settings.tolerances import tolerance_for

    recording = open_recording(given)
    config = resolve_recorded({}, None, given)
    with session_preserved():
        prepared = prepare(config)
        meta, arrays = _build(prepared)
    dtype = prepared.config.dtype
    moves, values = [], 0
    for key, was in recording.arrays.items():
        if key.startswith(("data/", "saved/")) or "/in/" in key:
            continue  # inputs, not Keras's answers
        tol = tolerance_for("float64" if key.startswith("layers/") else dtype)
        moves.append(_moves(key, was, arrays.get(key), tol))
        values += int(was.size)
    moves += [_moves(key, np.zeros(0), None, tolerance_for(dtype)) for key in arrays  # computed now, never recorded
              if key not in recording.arrays and not key.startswith(("data/", "saved/")) and "/in/" not in key]
    versions = "Keras {keras} / TensorFlow {tensorflow}"
    return Verification(holds=all(m["share"] <= 1 for m in moves), recorded=versions.format(**recording.meta),
                        installed=versions.format(**meta), values=values, worst=max(moves, key=lambda m: m["share"]),
                        largest=max(moves, key=lambda m: m.get("largest_abs", m["abs_diff"])),
                        tolerance={d: {"rtol": tolerance_for(d).rtol, "atol": tolerance_for(d).atol}
                                   for d in sorted({dtype, "float64"})})
