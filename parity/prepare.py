"""Turn a validated configuration into what a run needs: data, architecture, starting weights, and the
recorded Keras side when the run names one.

This is the boundary: data files, saved models and recordings are read and checked here, before any
report folder is touched, and every problem is a ParityInputError. A recording brings its own data and
saved weights, so a recorded check reads neither file and never imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from parity.settings.config import RunConfig, with_defaults
from parity.settings.data import Dataset, bars_data, blobs_data, linear_data, load_csv
from parity.settings.resources import check_fits
from parity.errors import SETTINGS, ParityInputError, arg
from parity.settings.regularization_spec import options_data, options_from_data
from parity.settings.spec import DenseSpec, ModelSpec

__all__ = ["Prepared", "prepare", "fingerprint"]


@dataclass
class Prepared:
    config: RunConfig  # with the data-dependent defaults filled in
    spec: ModelSpec
    data: Dataset
    weights: list[np.ndarray] | None  # a saved model's [kernel, bias, ...]; None: Keras initializes
    recording: object = None  # keras_side.recording.Recording: the Keras side, recorded; None: computed


def _data(config: RunConfig, sparse_labels: bool) -> tuple[np.ndarray, np.ndarray]:
    if config.data_kind == "csv":
        x, y = load_csv(config.data_path, list(config.x_columns or []), list(config.y_columns or []), sparse_labels,
                        config.dtype)
        if config.samples is not None:
            if config.samples > len(x):
                raise ParityInputError(f"{arg('samples')} is {config.samples} but {arg('data_path')} {config.data_path} has {len(x)} rows")
            x, y = x[:config.samples], y[:config.samples]
        return x, y
    make = {"linear": linear_data, "blobs": blobs_data, "bars": bars_data}[config.data_kind]
    with np.errstate(over="ignore", invalid="ignore"):  # a noise too large for float64 is refused just below
        data = make(config.samples, 0, config.data_seed, config.noise)
    largest = float(np.finfo(config.dtype).max)
    if not (np.isfinite(data.y).all() and np.abs(data.y).max() <= largest):  # a huge [data] noise
        raise ParityInputError(f"[data] noise = {config.noise:g} makes targets that do not fit in {config.dtype} (largest "
                               f"magnitude {largest:.4g}); use a smaller noise, or {arg('dtype')} float64")
    return data.x, data.y


_SYNTHETIC_WIDTHS = {"linear": (1, 1), "blobs": (2, 1)}  # (inputs, target columns) of the generated data


def prepare(config: RunConfig) -> Prepared:
    recording = None
    if config.reference is not None:
        from parity.keras_side.recording import open_recording

        recording = open_recording(config.reference)
    if config.data_kind in _SYNTHETIC_WIDTHS:  # before a saved model loads TensorFlow, and before the data are made
        check_fits(config.samples, config.train, *_SYNTHETIC_WIDTHS[config.data_kind],
                   [layer.units for layer in config.layers or ()])
    weights = None
    input_shape, features = config.input_shape, config.features
    if config.model_path is not None and config.layers is None and recording is not None:
        spec = recording.meta["spec"]  # the saved model as recorded: no Keras needed to read it again
        input_dim, weights = spec["input_dim"], recording.saved_weights()
        layers = tuple(DenseSpec(layer["units"], layer["activation"], **options_from_data(layer))
                       for layer in spec["layers"])
    elif config.model_path is not None and config.layers is None:
        from parity.keras_side.reference import keras_backend

        keras_backend()  # an install without TensorFlow says so, as one line
        from parity.keras_side.saved_model import load_chain

        input_dim, layers, weights, input_shape, features = load_chain(config.model_path)
    else:
        input_dim, layers = None, config.layers
    loss = config.loss
    if config.model_path is not None and loss == "mean_squared_error" and layers[-1].activation == "softmax":
        loss = "sparse_categorical_crossentropy"  # a saved classifier: integer labels unless told otherwise
    sparse = loss == "sparse_categorical_crossentropy"
    x, y = recording.data() if recording is not None else _data(config, sparse)
    images = {"input_shape": tuple(input_shape), "features": tuple(features)} if features else {}
    spec = ModelSpec(input_dim=x.shape[1] if input_dim is None else input_dim, layers=tuple(layers), loss=loss,
                     **images)
    check_fits(len(x), config.train, x.shape[1], y.shape[1], [layer.units for layer in spec.layers])
    problems = spec.problems()
    if problems:
        raise ParityInputError(f"the model cannot be compared: {problems[0]}")
    if spec.input_dim != x.shape[1]:
        raise ParityInputError(f"the model takes {spec.input_dim} inputs but the data have {x.shape[1]} input columns")
    if loss == "categorical_crossentropy" and config.data_kind in ("blobs", "bars"):
        if y.max() >= spec.output_dim:
            raise ParityInputError(f"the blobs have class label {int(y.max())} but the model outputs "
                                   f"{spec.output_dim} classes (labels 0..{spec.output_dim - 1})")
        y = np.eye(spec.output_dim)[y.reshape(-1)]  # (n, classes): categorical cross-entropy takes one-hot targets
    if sparse:
        if y.max() >= spec.output_dim:
            raise ParityInputError(f"the data have class label {int(y.max())} but the model outputs "
                             f"{spec.output_dim} classes (labels 0..{spec.output_dim - 1})")
    elif spec.output_dim != y.shape[1]:
        raise ParityInputError(f"the model outputs {spec.output_dim} values but the data have {y.shape[1]} target columns")
    config = with_defaults(config, len(x))
    prepared = Prepared(config, spec, Dataset(x=x, y=y, train=config.train), weights, recording)
    if recording is not None:
        _check_recording(prepared)
    return prepared


def fingerprint(prepared: Prepared) -> tuple[dict, str]:
    """(what the Keras side depends on, its sha256): the settings that reach Keras, the architecture, and the
    data and saved weights by digest; never the NumPy classes, the report or the tolerances."""
    from parity.keras_side.recording_file import digest

    c = prepared.config.as_dict()
    fixed = {key: c[key] for key in ("scenario", "dtype", "seed", "data_seed", "data_kind", "samples", "train",
                                     "noise", "x_columns", "y_columns", "loss", "epochs", "batch_size", "lr")}
    fixed["optimizer"] = {"name": c["optimizer"]["name"], "hyperparameters": c["optimizer"]["hyperparameters"]}
    spec = prepared.spec
    fixed["spec"] = {"input_dim": spec.input_dim, "loss": spec.loss,
                     "layers": [{"units": s.units, "activation": s.activation, **options_data(s.batch_norm, s.dropout)}
                                for s in spec.layers]}
    fixed["data"] = [digest(prepared.data.x), digest(prepared.data.y)]
    fixed["saved_weights"] = None if prepared.weights is None else [digest(w) for w in prepared.weights]
    return fixed, hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()


def _check_recording(prepared: Prepared) -> None:
    """The recording is of this configuration, and holds every Keras value this version's layer probes ask for."""
    from parity.compare.keras_values import every_keras_value
    from parity.errors import arg_given

    recording = prepared.recording
    fixed, digest = fingerprint(prepared)
    if digest != recording.meta["config_hash"]:
        recorded = recording.meta["fingerprint"]
        differ = sorted(k for k in fixed if fixed[k] != recorded.get(k))
        raise ParityInputError(f"{arg_given('reference', recording.name)} was recorded for another configuration: "
                               f"{', '.join(differ) or 'its fingerprint'} differ; record it again with these settings")
    # A RecordingMiss (bad input, one line) if this version asks for more.
    every_keras_value(recording.layers(), images=bool(prepared.spec.features))
    recording.reference(prepared.spec, prepared.config.dtype)  # read before any work: it may lack what a check reads


# The settings a recording fixes, in the order a contradiction is reported; those with a flag (or keyword) can be
# left out and are then the recording's. `train` and `samples` follow from the data when neither says.
FIXED = ("scenario", "dtype", "seed", "data_seed", "data_kind", "samples", "train", "noise", "x_columns", "y_columns",
         "layers", "loss", "epochs", "batch_size", "optimizer", "lr", "data_path", "model_path")
FLAGGED = tuple(n for n in FIXED if n in SETTINGS and SETTINGS[n].kind != "optimizer")  # the optimizer: below


def _recorded_flags(recorded: dict) -> dict:
    """The flags (RunConfig fields, as resolve takes them) that reproduce the recording's settings."""
    flags = {name: recorded[name] for name in FLAGGED}
    for name in ("data_path", "model_path"):
        flags[name] = None if recorded[name] is None else Path(recorded[name])
    o = recorded["optimizer"]
    flags["optimizer"] = {"name": o["name"], **{k: o["hyperparameters"][k] for k in o["given"] if k != "lr"}}
    flags["lr"] = o["hyperparameters"]["lr"] if "lr" in o["given"] else None  # else the same default again
    return flags


def _shown(name: str, value, other=None) -> str:
    if name == "optimizer" and other is not None and value["name"] != other["name"]:
        return value["name"]  # another optimizer: its name says it
    if name == "optimizer":
        hyper = ", ".join(f"{k} {v:g}" for k, v in value["hyperparameters"].items() if k != "lr")
        return value["name"] + (f" ({hyper})" if hyper else "")
    if name == "layers" and value is not None:
        return " -> ".join(f"Dense({layer['units']}, {layer['activation']})" for layer in value)
    return str(value)


def resolve_recorded(flags: dict, config_path: Path | None, reference) -> RunConfig:
    """The run's settings when its Keras side is a recording's: what the flags and the file leave out is the
    recording's; what they give must agree with it (else a ParityInputError naming both values). Tolerances,
    the report's folder, format and plots are the run's own."""
    from parity.errors import arg_given
    from parity.keras_side.recording import open_recording
    from parity.settings.config import read_file, resolve

    if reference is None:
        return resolve(flags, config_path)
    recording = open_recording(reference)
    recorded = recording.config
    in_file = read_file(config_path) if config_path is not None else {}
    said = {k for k, v in flags.items() if v is not None} | set(in_file)
    filled = {k: v for k, v in _recorded_flags(recorded).items()
              if k not in said and not (k == "train" and "samples" in said)}  # the split follows the samples given
    config = replace(resolve({**flags, **filled}, config_path, check_files=False), reference=str(reference))
    now = config.as_dict()
    for name in FIXED:
        ours, theirs = now[name], recorded[name]
        if name == "optimizer":  # its lr is the run's lr, compared on its own
            ours, theirs = ({"name": d["name"], "hyperparameters": {k: v for k, v in d["hyperparameters"].items()
                                                                     if k != "lr"}} for d in (ours, theirs))
        if name in ("data_path", "model_path") and None not in (ours, theirs):
            ours, theirs = (str(Path(p).resolve()) for p in (ours, theirs))  # one file, however it is spelled
        if ours == theirs or (name in ("samples", "train") and ours is None):
            continue
        shown, given = _shown(name, ours, theirs), name in said
        where = arg_given(name, shown) if flags.get(name) is not None else (
            f"{config_path.name}'s {name} {shown}" if name in in_file else f"the scenario's {name} {shown}")
        fix = "leave it out, or record again with it" if given else f"give the {arg('config_path')} file it was recorded with"
        raise ParityInputError(f"{where} contradicts {arg_given('reference', recording.name)}, recorded with "
                               f"{name} {_shown(name, theirs, ours)}: {fix}")
    return config
