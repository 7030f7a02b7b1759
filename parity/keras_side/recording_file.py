"""A recording's file: where the shipped ones are, how one is read and checked (a zip of plain arrays, every one
against its sha256, the metadata a check reads all present) and written whole; never TensorFlow, never pickle.

Layout: `meta` is a one-element string array holding a JSON document; every other member is a plain numeric
array (`data/x`, `fitted/W1`, `probe/grads/W1`, `stepping/state_after/m/W1`, `layers/3/out/0`, ...), each
with its sha256 in `meta["digests"]`, so a file that was cut short or changed reads as corrupt, not as numbers.
What the arrays hold, and how a check reads them back: parity.keras_side.recording.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from parity.errors import ParityInputError, arg_given, first_line
from parity.version import RECORDING_SCHEMA, TOOL

__all__ = ["SHIPPED", "NOT_SHIPPED", "shipped_names", "digest", "locate", "read_recording", "write_recording",
           "refused"]

KIND = "keras-side recording"
SHIPPED = Path(__file__).parent / "recordings"  # the built-in scenarios, recorded: scripts/record_shipped.py
NOT_SHIPPED = ("cnn",)  # 3.9 / 7.6 MB (float32 / 64), compressed


def shipped_names() -> list[str]:
    return sorted(p.stem for p in SHIPPED.glob("*.npz"))


def digest(array: np.ndarray) -> str:
    """sha256 of an array's dtype, shape and bytes."""
    a = np.asarray(array, order="C")  # not ascontiguousarray: it makes a 0-d array 1-d
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def refused(name: str, why: str) -> ParityInputError:
    return ParityInputError(f"{arg_given('reference', name)} {why}")


def locate(given) -> Path:
    path = Path(given)
    if path.is_file():
        return path
    if str(given) in shipped_names():
        return SHIPPED / f"{given}.npz"
    shipped = ", ".join(shipped_names()) or "none in this install"
    if path.exists():
        raise refused(str(given), "is not a file: give a recording (.npz) made by `parity record`")
    raise refused(str(given), f"is neither a file nor a shipped recording ({shipped})")


def read_recording(path: Path, name: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The metadata and every array, checked against their digests; ParityInputError for anything else."""
    foreign = "is not a keras-parity recording (make one with `parity record --out FILE`)"
    try:
        with open(path, "rb") as head:
            zipped = head.read(4) == b"PK\x03\x04"
    except OSError as exc:
        raise refused(name, f"cannot be read ({first_line(exc, 120)})") from None
    if not zipped:  # a .npy, a pickle, text: nothing numpy would have to guess at
        raise refused(name, foreign)
    try:
        loaded = np.load(path, allow_pickle=False)  # a pickle, or a pickled member, raises ValueError: never unpickled
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a plain .npy array
            raise refused(name, foreign)
        with loaded as npz:
            arrays = {key: npz[key] for key in npz.files}
    except ParityInputError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, TypeError) as exc:
        raise refused(name, f"cannot be read as a recording ({first_line(exc, 120, type(exc).__name__)}): "
                            "it is cut short, corrupt, or not a recording") from None
    if "meta" not in arrays:
        raise refused(name, foreign)
    text = arrays.pop("meta")
    try:
        meta = json.loads(str(text.reshape(-1)[0])) if text.dtype.kind == "U" and text.size == 1 else None
    except (json.JSONDecodeError, UnicodeError):
        meta = None
    if not isinstance(meta, dict) or meta.get("tool") != TOOL or meta.get("kind") != KIND:
        raise refused(name, foreign)
    schema = meta.get("recording_schema")
    if not isinstance(schema, int) or schema > RECORDING_SCHEMA:
        raise refused(name, f"has recording schema {schema!r}, from a newer keras-parity "
                            f"({meta.get('keras_parity', '?')}); this one ({RECORDING_SCHEMA}) cannot read it: "
                            "upgrade keras-parity, or record it again with this one")
    digests = meta.get("digests")
    if not isinstance(digests, dict) or set(digests) != set(arrays):
        raise refused(name, "is corrupt: its arrays are not the ones its metadata lists")
    lacking = _lacking(meta, arrays)
    if lacking:
        raise refused(name, f"is corrupt: it has no {lacking}")
    for key, value in arrays.items():
        if value.dtype.kind not in "fiub" or digest(value) != digests[key]:
            raise refused(name, f"is corrupt: {key} does not match its recorded digest")
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
