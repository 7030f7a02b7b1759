"""A recorded Keras side: everything Keras contributes to a check of one configuration, in one .npz file with
its provenance (which Keras, TensorFlow, NumPy and Python computed it, on which machine, when, for which
resolved configuration), read back with NumPy and json alone: never TensorFlow, never pickle.

Layout: `meta` is a one-element string array holding a JSON document; every other member is a plain numeric
array (`data/x`, `fitted/W1`, `probe/grads/W1`, `stepping/state_after/m/W1`, `layers/3/out/0`, ...), each
with its sha256 in `meta["digests"]`, so a file that was cut short or changed reads as corrupt, not as numbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parity.errors import ParityInputError, arg_given, first_line
from parity.keras_side.layer_reference import KerasLayers
from parity.keras_side.reference import KerasReference, targets
from parity.numpy_side.trace import Trace
from parity.version import RECORDING_SCHEMA, TOOL

__all__ = ["Recording", "RecordedLayers", "RecordingMiss", "SHIPPED", "shipped_names", "open_recording",
           "write_recording", "trace_arrays", "layer_key", "digest", "summary_line"]

KIND = "keras-side recording"
SHIPPED = Path(__file__).parent / "recordings"  # the built-in scenarios, recorded: scripts/record_shipped.py
# cnn: its recordings are 3-6 MB (`parity record --scenario cnn --out FILE` makes one); regularized: a recording has
# no place yet for its Dropout masks and running statistics (parity record refuses it)
NOT_SHIPPED = ("cnn", "regularized")


def shipped_names() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.npz"))


def digest(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes."""
    a = np.asarray(array, order="C")  # not ascontiguousarray: it makes a 0-d array 1-d
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def layer_key(what: tuple, inputs: tuple[np.ndarray, ...]) -> str:
    """What a layer probe asks Keras for, as a key: the computation and its exact inputs."""
    return hashlib.sha256(json.dumps(list(what)).encode() + "".join(map(digest, inputs)).encode()).hexdigest()


def summary_line(meta: dict) -> str:
    """'recorded by Keras 3.x / TensorFlow 2.y on <processor>, <date>' from a recording's provenance."""
    return (f"recorded by Keras {meta.get('keras', '?')} / TensorFlow {meta.get('tensorflow', '?')} on "
            f"{meta.get('processor', '?')}, {str(meta.get('recorded_at', '?'))[:10]}")


# -- traces <-> arrays --------------------------------------------------------------------------------

def trace_arrays(prefix: str, trace: Trace) -> dict[str, np.ndarray]:
    out = {f"{prefix}/pred": trace.pred, f"{prefix}/loss": trace.loss, f"{prefix}/dx": trace.dx}
    out |= {f"{prefix}/grads/{k}": v for k, v in trace.grads.items()}
    out |= {f"{prefix}/z/{k}": v for k, v in trace.z.items()}
    out |= {f"{prefix}/params_after/{k}": v for k, v in trace.params_after.items()}
    out |= {f"{prefix}/state_after/{book}/{k}": v for book, per in trace.state_after.items() for k, v in per.items()}
    return out


def _trace(prefix: str, arrays: dict[str, np.ndarray], names: list[str]) -> Trace:
    """The Trace under `prefix`; `names` are the parameters in Keras's order (grads and params keep it)."""
    def under(part: str) -> dict[str, np.ndarray]:
        lead = f"{prefix}/{part}/"
        return {k[len(lead):]: v for k, v in arrays.items() if k.startswith(lead)}

    states: dict[str, dict[str, np.ndarray]] = {}
    for key, value in under("state_after").items():
        book, _, name = key.partition("/")
        states.setdefault(book, {})[name] = value
    grads, params = under("grads"), under("params_after")
    return Trace(pred=arrays[f"{prefix}/pred"], loss=arrays[f"{prefix}/loss"], dx=arrays[f"{prefix}/dx"],
                 grads={n: grads[n] for n in names if n in grads},
                 z={int(k): v for k, v in sorted(under("z").items(), key=lambda kv: int(kv[0]))},
                 params_after={n: params[n] for n in names if n in params},
                 state_after={book: {n: per[n] for n in names if n in per} for book, per in states.items()})


# -- the layer probes' Keras side, recorded ----------------------------------------------------------

class RecordingMiss(ParityInputError):
    """A layer probe asked for a Keras value the recording does not hold (it was made by another version)."""


class RecordedLayers(KerasLayers):
    """The layer probes' Keras side read from a recording: the same answers, looked up by exact input."""

    def __init__(self, results: dict[str, tuple[np.ndarray, ...]], name: str):
        self._results, self._name = results, name

    def results(self, what: tuple, inputs: tuple, compute) -> tuple[np.ndarray, ...]:
        found = self._results.get(layer_key(what, inputs))
        if found is None:
            raise RecordingMiss(f"{arg_given('reference', self._name)} holds no Keras value for the layer probe "
                                f"{'/'.join(map(str, what))} with this version's inputs: record it again")
        return tuple(a.copy() for a in found)  # a class that writes into its arrays cannot change the next probe's


# -- the file ------------------------------------------------------------------------------------------

@dataclass
class Recording:
    """One recording, read and checked: its provenance (`meta`) and its arrays."""

    path: Path
    name: str  # as the user gave it: a shipped name or a path
    meta: dict
    arrays: dict[str, np.ndarray]
    _reference: KerasReference | None = field(default=None, repr=False)
    _layers: RecordedLayers | None = field(default=None, repr=False)

    @property
    def config(self) -> dict:
        return self.meta["config"]

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies, as prepare generates fresh data for each run: what a user's class writes stays in its run."""
        return self.arrays["data/x"].copy(), self.arrays["data/y"].copy()

    def saved_weights(self) -> list[np.ndarray] | None:
        """A saved model's starting weights ([kernel, bias, ...]); None when Keras initialized them."""
        count = self.meta["saved_weights"]
        return None if count is None else [self.arrays[f"saved/{i}"] for i in range(count)]

    def source(self) -> dict:
        """Where a report's Keras side came from (summary.json's `keras_side`)."""
        m = self.meta
        keys = ("keras_parity", "recording_schema", "recorded_at", "keras", "tensorflow", "numpy", "python",
                "platform", "processor", "op_determinism", "config_hash")
        return {"source": "recorded", "summary": summary_line(m), "recording": self.name, **{k: m[k] for k in keys}}

    def layers(self) -> RecordedLayers:
        """The layer probes' Keras side, as recorded."""
        if self._layers is None:
            results = {}
            for i, entry in enumerate(self.meta["layer_probes"]):
                inputs = tuple(self.arrays[f"layers/{i}/in/{j}"] for j in range(entry["inputs"]))
                outputs = tuple(self.arrays[f"layers/{i}/out/{j}"] for j in range(entry["outputs"]))
                for a in outputs:
                    a.flags.writeable = False
                results[layer_key(tuple(entry["what"]), inputs)] = outputs
            self._layers = RecordedLayers(results, self.name)
        return self._layers

    def reference(self, spec, dtype: str) -> KerasReference:
        """The recorded Keras side as compare_numpy reads a computed one; `spec` is the run's architecture."""
        if self._reference is None:
            names = list(self.meta["fitted"])
            x, y = self.data()
            _, t = targets(spec, y, dtype)
            self._reference = KerasReference(
                fitted={n: self.arrays[f"fitted/{n}"] for n in names}, side=None, x=x.astype(dtype), t=t,
                stepping=_trace("stepping", self.arrays, names),
                batch=_trace("batch", self.arrays, names) if self.meta["batch"] else None,
                environment=dict(self.meta["environment"]), optimizer=dict(self.meta["optimizer"]),
                probe=_trace("probe", self.arrays, names), source=self.source(),
                fallback=self.meta["vectorized_map_fallback"])
        return self._reference


def _refused(name: str, why: str) -> ParityInputError:
    return ParityInputError(f"{arg_given('reference', name)} {why}")


def _locate(given) -> Path:
    path = Path(given)
    if path.is_file():
        return path
    if str(given) in shipped_names():
        return SHIPPED / f"{given}.npz"
    shipped = ", ".join(shipped_names()) or "none in this install"
    if path.exists():
        raise _refused(str(given), "is not a file: give a recording (.npz) made by `parity record`")
    raise _refused(str(given), f"is neither a file nor a shipped recording ({shipped})")


def _read(path: Path, name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The metadata and every array, checked against their digests; ParityInputError for anything else."""
    foreign = "is not a keras-parity recording (make one with `parity record --out FILE`)"
    try:
        with open(path, "rb") as head:
            zipped = head.read(4) == b"PK\x03\x04"
    except OSError as exc:
        raise _refused(name, f"cannot be read ({first_line(exc, 120)})") from None
    if not zipped:  # a .npy, a pickle, text: nothing numpy would have to guess at
        raise _refused(name, foreign)
    try:
        loaded = np.load(path, allow_pickle=False)  # a pickle, or a pickled member, raises ValueError: never unpickled
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a plain .npy array
            raise _refused(name, foreign)
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ParityInputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, TypeError) as exc:
        raise _refused(name, f"cannot be read as a recording ({first_line(exc, 120, type(exc).__name__)}): "
                             "it is cut short, corrupt, or not a recording") from None
    if "meta" not in arrays:
        raise _refused(name, foreign)
    text = arrays.pop("meta")
    try:
        meta = json.loads(str(text.reshape(-1)[0])) if text.dtype.kind == "U" and text.size == 1 else None
    except (json.JSONDecodeError, UnicodeError):
        meta = None
    if not isinstance(meta, dict) or meta.get("tool") != TOOL or meta.get("kind") != KIND:
        raise _refused(name, foreign)
    schema = meta.get("recording_schema")
    if not isinstance(schema, int) or schema > RECORDING_SCHEMA:
        raise _refused(name, f"has recording schema {schema!r}, from a newer keras-parity "
                             f"({meta.get('keras_parity', '?')}); this one ({RECORDING_SCHEMA}) cannot read it: "
                             "upgrade keras-parity, or record it again with this one")
    digests = meta.get("digests")
    if not isinstance(digests, dict) or set(digests) != set(arrays):
        raise _refused(name, "is corrupt: its arrays are not the ones its metadata lists")
    lacking = _lacking(meta, arrays)
    if lacking:
        raise _refused(name, f"is corrupt: it has no {lacking}")
    for key, value in arrays.items():
        if value.dtype.kind not in "fiub" or digest(value) != digests[key]:
            raise _refused(name, f"is corrupt: {key} does not match its recorded digest")
    return meta, arrays


# What a check reads from a recording's metadata, besides its digests.
REQUIRED = ("keras_parity", "recorded_at", "keras", "tensorflow", "numpy", "python", "platform", "processor",
            "op_determinism", "environment", "config", "fingerprint", "config_hash", "spec", "fitted", "saved_weights",
            "batch", "optimizer", "vectorized_map_fallback", "layer_probes")


def _lacking(meta: dict, arrays: dict) -> str | None:
    """The first thing a check would read from the recording that it does not hold; None when it holds all."""
    for key in REQUIRED:
        if key not in meta:
            return f"{key} in its metadata"
    try:
        needed = ["data/x", "data/y", *(f"{phase}/{q}" for phase in ("probe", "stepping") for q in ("pred", "loss", "dx")),
                  *(f"fitted/{n}" for n in meta["fitted"]), *(f"saved/{i}" for i in range(meta["saved_weights"] or 0)),
                  *(f"layers/{i}/{part}/{j}" for i, e in enumerate(meta["layer_probes"])
                    for part in ("in", "out") for j in range(e["inputs" if part == "in" else "outputs"]))]
    except (TypeError, KeyError, AttributeError):
        return "readable list of its arrays in its metadata"
    return next((key for key in needed if key not in arrays), None)


_OPENED: dict[tuple, Recording] = {}
KEPT = 8  # recordings kept read per process (a grader's worker reads one; each holds a few MB at most)


def open_recording(given) -> Recording:
    """The recording `given` names (a path, or a shipped recording's name), read once per process and file version."""
    path = _locate(given)
    stat = path.stat()
    key = (str(given), str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _OPENED:
        meta, arrays = _read(path, str(given))
        _OPENED[key] = Recording(path, str(given), meta, arrays)
        while len(_OPENED) > KEPT:
            del _OPENED[next(iter(_OPENED))]
    return _OPENED[key]


def write_recording(path: Path, meta: dict, arrays: dict[str, np.ndarray]) -> None:
    """Write the recording whole (a temporary file beside it, then one rename), or not at all."""
    arrays = {k: np.asarray(v, order="C") for k, v in arrays.items()}
    meta = {**meta, "tool": TOOL, "kind": KIND, "recording_schema": RECORDING_SCHEMA,
            "digests": {k: digest(v) for k, v in arrays.items()}}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, meta=np.array([json.dumps(meta, allow_nan=False)]), **arrays)
    fd, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
    try:
        umask = os.umask(0o22)
        os.umask(umask)
        os.chmod(scratch, 0o666 & ~umask)  # as open() would have made it, not mkstemp's owner-only mode
        with os.fdopen(fd, "wb") as out:
            out.write(buffer.getvalue())
            out.flush()
            os.fsync(out.fileno())
        os.replace(scratch, path)
    except BaseException:
        Path(scratch).unlink(missing_ok=True)
        raise
