"""The Python door: `parity.check` and `parity.run` translate keyword arguments into a RunConfig and a
set of user classes, call the pipeline, and return its Report. Bad arguments raise ParityInputError
naming the keyword."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from parity.errors import SETTINGS, ParityInputError
from parity.result import Report

__all__ = ["check", "run"]

_INTS = tuple(name for name, s in SETTINGS.items() if s.kind == "int")  # keyword and field are one name
_PATHS = {s.keyword: name for name, s in SETTINGS.items() if s.kind == "path"}  # keyword -> field
_TEXTS = tuple(name for name, s in SETTINGS.items() if s.kind == "text")
_BOOLS = tuple(name for name, s in SETTINGS.items() if s.kind in ("switch", "off") and s.keyword)
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
    for name in _TEXTS:
        value = options.get(name)
        if value is not None and not isinstance(value, str):
            raise ParityInputError(f"{name}= must be a string (received: {_received(value)})")
        flags[name] = value
    for name, field in _PATHS.items():
        value = options.get(name)
        if value is not None and not isinstance(value, (str, os.PathLike)):
            raise ParityInputError(f"{name}= must be a path (str or pathlib.Path) (received: {_received(value)})")
        if isinstance(value, str) and value == "":  # Path("") is the current folder: say what was typed
            raise ParityInputError(f"{name}= must be a path (received: '')")
        flags[field] = None if value is None else Path(value)
    optimizer = options.get("optimizer")
    if optimizer is not None and not isinstance(optimizer, (str, Mapping)):
        raise ParityInputError(f"optimizer= must be a name or a dict such as {{'name': 'adam', 'lr': 0.001}} "
                               f"(received: {_received(optimizer)})")
    flags["optimizer"] = optimizer
    for name in _BOOLS:
        value = options.get(name)
        if value is not None and not isinstance(value, bool):
            raise ParityInputError(f"{name}= must be True or False (received: {_received(value)})")
        flags[name] = value
    return flags, flags.pop("config_path")


OPTIONS = (*(s.keyword for s in SETTINGS.values() if s.keyword), "format", "reference", "run_all")


def check(layers=None, /, *, scenario: str | None = None, dtype: str | None = None, seed: int | None = None,
          data_seed: int | None = None, samples: int | None = None, train: int | None = None, epochs: int | None = None, lr: float | None = None,
          optimizer=None, batch_size: int | None = None, model=None, data=None, config=None, out=None,
          plots: bool | None = None, all_gradients: bool | None = None, format: str = "csv", reference=None,
          run_all: bool = False,
          **classes) -> Report:
    """Compare your layers with Keras, sample by sample; returns a Report (nothing is written unless out= is given).

    `layers`: a module, a .py path, a .ipynb notebook (its definitions; with `run_all=True` every cell is executed
    on a kernel first), a dotted module name, a dict or a namespace such as `globals()`;
    book class names (Affine, Relu, Sigmoid, SoftmaxWithLoss, MeanSquaredError, and the optimizers SGD,
    Momentum, Nesterov, AdaGrad, RMSprop, Adam) are picked out case-insensitively, and classes may also be
    given by name: `parity.check(Affine=Affine, Relu=Relu, Adam=MyAdam, optimizer="adam")`, or mapped to a
    class of `layers` by its name: `parity.check("my_layers.py", Affine="Dense")`.
    `optimizer`: a name (`"adam"`) or a dict of the name and the book's hyperparameters
    (`{"name": "rmsprop", "lr": 0.01, "decay_rate": 0.9}`). The other keywords mean what the
    `parity check` flags mean and have the same defaults. `reference`: a recording (`parity record --out FILE`, or a
    shipped name such as "seed-float32") to compare with instead of computing the Keras side: no TensorFlow.
    """
    from parity.keras_side.native_logs import library_warnings_quiet, native_logs_filtered
    from parity.pipeline import ReportFolder
    from parity.pipeline import check as pipeline_check
    from parity.prepare import resolve_recorded
    from parity.user_code.fence import fenced
    from parity.user_code.guard import stopped_by_code
    from parity.user_code.loader import load

    options = dict(scenario=scenario, dtype=dtype, seed=seed, data_seed=data_seed, samples=samples, train=train,
                   epochs=epochs, lr=lr, optimizer=optimizer, batch_size=batch_size, model=model, data=data,
                   config=config, out=out, plots=plots, all_gradients=all_gradients)
    try:
        with fenced():  # the user's code cannot end this process (a kernel, a script) or move its working directory
            try:
                if format not in FORMATS:
                    raise ParityInputError(f"format= must be csv or parquet (received: {format!r})")
                if not isinstance(run_all, bool):
                    raise ParityInputError(f"run_all= must be True or False (received: {_received(run_all)})")
                flags, config_path = _settings(options)
                if reference is not None and not isinstance(reference, (str, os.PathLike)):
                    raise ParityInputError(f"reference= must be a path or a shipped recording's name (received: "
                                           f"{_received(reference)})")
                run_config = resolve_recorded(flags, config_path, None if reference is None else os.fspath(reference))
                user = load(layers, {**dict(run_config.classes), **classes}, OPTIONS, run_all=run_all)  # [classes], keywords
                # In a notebook's kernel nothing reaches stderr: TensorFlow's C++ log lines and its Python warnings stay out.
                with native_logs_filtered(), library_warnings_quiet():
                    report = pipeline_check(user, run_config, folder=ReportFolder(format) if out is not None else None)
            except BaseException as exc:  # a SystemExit from the user's code never reaches the caller
                stopped = stopped_by_code(exc)
                if stopped is None:
                    raise
                raise stopped from None
    except ParityInputError as exc:
        raise exc.for_door("python")  # every message names keywords (seed=), not flags (--seed)
    report.fmt = format  # what report.save(path) writes
    return report


def run(**options) -> Report:
    """The same comparison with the reference layers (what `parity run` does)."""
    return check(None, **options)
