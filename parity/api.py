"""The Python door: `parity.check` and `parity.run` translate keyword arguments into a RunConfig and a
set of user classes, call the pipeline, and return its Report. Bad arguments raise ParityInputError
naming the keyword."""

from __future__ import annotations

import inspect
import os
import types
from collections.abc import Mapping
from pathlib import Path

from parity.errors import ParityInputError, python_door
from parity.result import Report

__all__ = ["check", "run"]

_INTS = ("seed", "data_seed", "samples", "train", "epochs", "batch_size")
_PATHS = {"model": "model_path", "data": "data_path", "config": "config_path", "out": "out"}
FORMATS = ("csv", "parquet")


def _received(value) -> str:
    return f"{value!r} of type {type(value).__name__}"


def _settings(options: dict) -> tuple[dict, Path | None]:
    """Keyword arguments -> the same flags dict the CLI builds, each value type-checked."""
    flags = {}
    for name in _INTS:
        value = options.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ParityInputError(f"{name}= must be an integer (received: {_received(value)})")
        flags[name] = value
    lr = options.get("lr")
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float))):
        raise ParityInputError(f"lr= must be a number (received: {_received(lr)})")
    flags["lr"] = None if lr is None else float(lr)
    for name in ("scenario", "dtype"):
        value = options.get(name)
        if value is not None and not isinstance(value, str):
            raise ParityInputError(f"{name}= must be a string (received: {_received(value)})")
        flags[name] = value
    for name, field in _PATHS.items():
        value = options.get(name)
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise ParityInputError(f"{name}= must be a path (str or pathlib.Path) (received: {_received(value)})")
        flags[field] = None if value is None else Path(value)
    optimizer = options.get("optimizer")
    if optimizer is not None and not isinstance(optimizer, (str, Mapping)):
        raise ParityInputError(f"optimizer= must be a name or a dict such as {{'name': 'adam', 'lr': 0.001}} "
                               f"(received: {_received(optimizer)})")
    flags["optimizer"] = optimizer
    for name in ("plots", "all_gradients"):
        value = options.get(name)
        if value is not None and not isinstance(value, bool):
            raise ParityInputError(f"{name}= must be True or False (received: {_received(value)})")
        flags[name] = value
    return flags, flags.pop("config_path")


def _user_layers(layers, classes: dict):
    """The user's classes from whatever form `layers` takes, with keyword classes on top."""
    from parity.optimizer_settings import OPTIMIZERS
    from parity.pipeline import UserLayers
    from parity.user_layers import LAYER_NAMES, classes_of, import_layers, kit_from_namespace

    kit, source, every = {}, None, {}
    if layers is not None:
        if isinstance(layers, types.ModuleType):
            source = getattr(layers, "__file__", None) or layers.__name__
            namespace = vars(layers)
        elif isinstance(layers, (str, os.PathLike)):
            source = str(layers)
            namespace = vars(import_layers(source))
        elif isinstance(layers, dict):
            source = "the notebook" if layers.get("__name__") == "__main__" else "the dict given as layers="
            namespace = layers
        elif hasattr(layers, "__dict__") and not inspect.isclass(layers):
            source, namespace = f"the {type(layers).__name__} given as layers=", vars(layers)
        else:
            raise ParityInputError(f"layers= must be a module, a .py path, a dotted module name, a dict or a namespace "
                                   f"such as globals() (received: {_received(layers)}); pass single classes by name: "
                                   "parity.check(Affine=Affine, Relu=Relu)")
        kit, _ = kit_from_namespace(namespace, f"layers={source}")
        every = classes_of(namespace)
    if classes:
        canonical = {n.lower(): n for n in (*LAYER_NAMES, *(info.book_class for info in OPTIMIZERS.values()))}
        named = {}
        for key, cls in classes.items():
            if key.lower() not in canonical:
                raise ParityInputError(f"parity.check() got an unexpected keyword argument {key}=; class keywords are "
                                       f"{', '.join(canonical.values())} and options are {', '.join(OPTIONS)}")
            if not inspect.isclass(cls):
                raise ParityInputError(f"{key}= must be a class (received: {_received(cls)})")
            named[key] = cls
        picked, _ = kit_from_namespace(named, "the classes given by name")
        kit |= picked
        every = {k: v for k, v in every.items() if k.lower() not in {n.lower() for n in named}} | named
        source = source or "the classes given by name"
    if not kit and not every:
        return None
    return UserLayers(kit, source, tuple(kit), every)


OPTIONS = ("scenario", "dtype", "seed", "data_seed", "samples", "train", "epochs", "lr", "optimizer", "batch_size", "model", "data",
           "config", "out", "plots", "all_gradients", "format")


def check(layers=None, /, *, scenario: str | None = None, dtype: str | None = None, seed: int | None = None,
          data_seed: int | None = None, samples: int | None = None, train: int | None = None, epochs: int | None = None, lr: float | None = None,
          optimizer=None, batch_size: int | None = None, model=None, data=None, config=None, out=None,
          plots: bool | None = None, all_gradients: bool | None = None, format: str = "csv", **classes) -> Report:
    """Compare your layers with Keras, sample by sample; returns a Report (nothing is written unless out= is given).

    `layers`: a module, a .py path, a dotted module name, a dict or a namespace such as `globals()`;
    book class names (Affine, Relu, Sigmoid, SoftmaxWithLoss, MeanSquaredError, and the optimizers SGD,
    Momentum, Nesterov, AdaGrad, RMSprop, Adam) are picked out case-insensitively, and classes may also be
    given by name: `parity.check(Affine=Affine, Relu=Relu, Adam=MyAdam, optimizer="adam")`.
    `optimizer`: a name (`"adam"`) or a dict of the name and the book's hyperparameters
    (`{"name": "rmsprop", "lr": 0.01, "decay_rate": 0.9}`). The other keywords mean what the
    `parity check` flags mean and have the same defaults.
    """
    from parity.config import resolve
    from parity.pipeline import check as pipeline_check

    options = dict(scenario=scenario, dtype=dtype, seed=seed, data_seed=data_seed, samples=samples, train=train,
                   epochs=epochs, lr=lr, optimizer=optimizer, batch_size=batch_size, model=model, data=data,
                   config=config, out=out, plots=plots, all_gradients=all_gradients)
    with python_door():
        if format not in FORMATS:
            raise ParityInputError(f"format= must be csv or parquet (received: {format!r})")
        flags, config_path = _settings(options)
        user = _user_layers(layers, classes)
        run_config = resolve(flags, config_path)
        return pipeline_check(user, run_config, write=out is not None, fmt=format)


def run(**options) -> Report:
    """The same comparison with the reference layers (what `parity run` does)."""
    return check(None, **options)
