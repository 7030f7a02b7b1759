"""Turn a validated configuration into what a run needs: data, architecture, starting weights.

This is the boundary: data files and saved models are read and checked here, before any report
folder is touched, and every problem is a ParityInputError.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.settings.config import RunConfig, with_defaults
from parity.settings.data import Dataset, blobs_data, linear_data, load_csv
from parity.settings.resources import check_fits
from parity.errors import ParityInputError, arg
from parity.settings.spec import ModelSpec

__all__ = ["Prepared", "prepare"]


@dataclass
class Prepared:
    config: RunConfig  # with the data-dependent defaults filled in
    spec: ModelSpec
    data: Dataset
    weights: list[np.ndarray] | None  # a saved model's [kernel, bias, ...]; None: Keras initializes


def _data(config: RunConfig, sparse_labels: bool) -> tuple[np.ndarray, np.ndarray]:
    if config.data_kind == "csv":
        x, y = load_csv(config.data_path, list(config.x_columns or []), list(config.y_columns or []), sparse_labels,
                        config.dtype)
        if config.samples is not None:
            if config.samples > len(x):
                raise ParityInputError(f"{arg('samples')} is {config.samples} but {arg('data_path')} {config.data_path} has {len(x)} rows")
            x, y = x[:config.samples], y[:config.samples]
        return x, y
    make = {"linear": linear_data, "blobs": blobs_data}[config.data_kind]
    with np.errstate(over="ignore", invalid="ignore"):  # a noise too large for float64 is refused just below
        data = make(config.samples, 0, config.data_seed, config.noise)
    largest = float(np.finfo(config.dtype).max)
    if not (np.isfinite(data.y).all() and np.abs(data.y).max() <= largest):  # a huge [data] noise
        raise ParityInputError(f"[data] noise = {config.noise:g} makes targets that do not fit in {config.dtype} (largest "
                               f"magnitude {largest:.4g}); use a smaller noise, or {arg('dtype')} float64")
    return data.x, data.y


_SYNTHETIC_WIDTHS = {"linear": (1, 1), "blobs": (2, 1)}  # (inputs, target columns) of the generated data


def prepare(config: RunConfig) -> Prepared:
    if config.data_kind in _SYNTHETIC_WIDTHS:  # before a saved model loads TensorFlow, and before the data are made
        check_fits(config.samples, config.train, *_SYNTHETIC_WIDTHS[config.data_kind],
                   [layer.units for layer in config.layers or ()])
    weights = None
    if config.model_path is not None and config.layers is None:
        from parity.keras_side.saved_model import load_dense_chain

        input_dim, layers, weights = load_dense_chain(config.model_path)
    else:
        input_dim, layers = None, config.layers
    loss = config.loss
    if config.model_path is not None and loss == "mean_squared_error" and layers[-1].activation == "softmax":
        loss = "sparse_categorical_crossentropy"  # a saved classifier: integer labels unless told otherwise
    sparse = loss == "sparse_categorical_crossentropy"
    x, y = _data(config, sparse)
    spec = ModelSpec(input_dim=x.shape[1] if input_dim is None else input_dim, layers=tuple(layers), loss=loss)
    check_fits(len(x), config.train, x.shape[1], y.shape[1], [layer.units for layer in spec.layers])
    problems = spec.problems()
    if problems:
        raise ParityInputError(f"the model cannot be compared: {problems[0]}")
    if spec.input_dim != x.shape[1]:
        raise ParityInputError(f"the model takes {spec.input_dim} inputs but the data have {x.shape[1]} input columns")
    if loss == "categorical_crossentropy" and config.data_kind == "blobs":
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
    return Prepared(config, spec, Dataset(x=x, y=y, train=config.train), weights)
