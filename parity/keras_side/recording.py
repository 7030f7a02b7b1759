"""A recorded Keras side: everything Keras contributes to a check of one configuration, with its provenance (which
Keras, TensorFlow, NumPy and Python computed it, on which machine, when, for which resolved configuration), read
back with NumPy and json alone: never TensorFlow, never pickle. What is stored under which name, and how a check
reads it back as a KerasReference; the file itself (reading, checking, writing): parity.keras_side.recording_file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parity.errors import ParityInputError, arg_given
from parity.keras_side.layer_reference import KerasLayers
from parity.keras_side.recording_file import digest, locate, read_recording, refused
from parity.keras_side.reference import KerasReference, targets
from parity.numpy_side.trace import Trace
from parity.settings.regularization_spec import state_names

__all__ = ["Recording", "RecordedLayers", "RecordingMiss", "open_recording", "trace_arrays", "layer_key",
           "summary_line"]


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
    out |= {f"{prefix}/maps/{k}": v for k, v in trace.maps.items()}  # a convolution's pre-activations, channel-major
    out |= {f"{prefix}/params_after/{k}": v for k, v in trace.params_after.items()}
    out |= {f"{prefix}/state_after/{book}/{k}": v for book, per in trace.state_after.items() for k, v in per.items()}
    # training mode (a Dropout or BatchNormalization): the masks Keras drew, per Dropout's Dense number, and the batch
    # statistics its BatchNormalizations normalized with (what regularization.png draws); nothing for other models
    out |= {f"{prefix}/masks/{k}": v for k, v in trace.masks.items()}
    out |= {f"{prefix}/observed/{k}": v for k, v in trace.observed.items()}
    return out


def _trace(prefix: str, arrays: dict[str, np.ndarray], names: list[str]) -> Trace:
    """The Trace under `prefix`; `names` are the parameters in Keras's order (grads and optimizer states keep it)."""
    def under(part: str) -> dict[str, np.ndarray]:
        lead = f"{prefix}/{part}/"
        return {k[len(lead):]: v for k, v in arrays.items() if k.startswith(lead)}

    states: dict[str, dict[str, np.ndarray]] = {}
    for key, value in under("state_after").items():
        book, _, name = key.partition("/")
        states.setdefault(book, {})[name] = value
    grads, params = under("grads"), under("params_after")  # in the order written (an .npz keeps it)
    return Trace(pred=arrays[f"{prefix}/pred"], loss=arrays[f"{prefix}/loss"], dx=arrays[f"{prefix}/dx"],
                 grads={n: grads[n] for n in names if n in grads},
                 z={int(k): v for k, v in sorted(under("z").items(), key=lambda kv: int(kv[0]))},
                 maps={int(k): v for k, v in sorted(under("maps").items(), key=lambda kv: int(kv[0]))},
                 params_after=params,  # as stepped: the parameters, then a BatchNormalization's running statistics
                 state_after={book: {n: per[n] for n in names if n in per} for book, per in states.items()},
                 masks={int(k): v for k, v in sorted(under("masks").items(), key=lambda kv: int(kv[0]))},
                 observed=under("observed"))


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
            phases = ("probe", "stepping", *(("batch",) if self.meta["batch"] else ()))
            lacking = [f"{phase}/maps/{i}" for i, *_ in spec.activated_maps() for phase in phases
                       if f"{phase}/maps/{i}" not in self.arrays]
            if lacking:  # recorded before maps were: its check would leave the convolutions' maps uncompared
                raise refused(self.name, f"holds no pre-activation maps of the convolutions ({lacking[0]}): it was "
                                         "recorded by an older keras-parity; record it again")
            trained = [phase for phase in phases if phase != "probe"]  # the training-mode phases
            lacking = [f"{phase}/masks/{k}" for k, _ in spec.dropouts() for phase in trained] + \
                [f"stepping/params_after/{name}" for k, _ in spec.batch_norms() for name in state_names(k)]
            lacking = [key for key in lacking if key not in self.arrays]
            if lacking:  # without them the NumPy side would draw its own masks, or skip the running statistics
                raise refused(self.name, f"holds no {lacking[0]}, which a check of this model's Dropout or "
                                         "BatchNormalization reads: it is incomplete; record it again")
            names = list(self.meta["fitted"])
            x, y = self.data()
            _, t = targets(spec, y, dtype)
            self._reference = KerasReference(
                fitted={n: self.arrays[f"fitted/{n}"] for n in names}, side=None, x=x.astype(dtype), t=t,
                training=(_trace("stepping", self.arrays, names),
                          _trace("batch", self.arrays, names) if self.meta["batch"] else None),
                environment=dict(self.meta["environment"]), optimizer=dict(self.meta["optimizer"]),
                probe=_trace("probe", self.arrays, names), source=self.source(),
                fallback=self.meta["vectorized_map_fallback"])
        return self._reference


_OPENED: dict[tuple, Recording] = {}
KEPT = 8  # recordings kept read per process (a grader's worker reads one; each holds a few MB at most)


def open_recording(given) -> Recording:
    """The recording `given` names (a path, or a shipped recording's name), read once per process and file version."""
    path = locate(given)
    stat = path.stat()
    key = (str(given), str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _OPENED:
        meta, arrays = read_recording(path, str(given))
        _OPENED[key] = Recording(path, str(given), meta, arrays)
        while len(_OPENED) > KEPT:
            del _OPENED[next(iter(_OPENED))]
    return _OPENED[key]


