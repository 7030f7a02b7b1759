"""The Keras optimizer built to mirror the book's: its arguments, and its state under the book's names.

On the TensorFlow backend Keras turns a Python-float hyperparameter into a tensor before casting
it, and that tensor is float32: `ops.cast(0.9, "float64")` gives 0.8999999761581421. SGD's momentum
and Adam's beta powers go through that cast. A float64 run therefore passes every hyperparameter as
numpy.float64 (a float subclass, so Keras's `isinstance(x, float)` checks accept it), which TensorFlow
converts exactly. A float32 run passes Python floats: Keras rounds them to float32 itself, and its
`isinstance(x, float)` checks refuse numpy.float32.
"""

from __future__ import annotations

import numpy as np

from parity.keras_side.backend import keras
from parity.settings.optimizer_registry import OptimizerSettings

__all__ = ["keras_arguments", "build_record", "build_keras_optimizer", "optimizer_kind", "keras_state_variables",
           "read_keras_state", "typed_hyperparameter"]


def typed_hyperparameter(value, dtype: str):
    """A hyperparameter as Keras should receive it in a run of `dtype` (see the module's docstring)."""
    if isinstance(value, bool):
        return value
    return np.float64(value) if dtype == "float64" else float(value)


def keras_arguments(settings: OptimizerSettings, dtype: str) -> dict:
    """The keyword arguments for keras.optimizers.<class>, mirroring the book's hyperparameters."""
    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64 (received: {dtype!r})")
    info = settings.info
    args = {info.keras_keywords[key]: typed_hyperparameter(value, dtype) for key, value in settings.hyper.items()}
    args.update({key: typed_hyperparameter(value, dtype) for key, value in info.keras_fixed.items()})
    if settings.epsilon is not None:  # the run's epsilon (the book's 1e-7, a setting, or what the user's class holds)
        args["epsilon"] = typed_hyperparameter(settings.epsilon, dtype)
    return args


def build_keras_optimizer(settings: OptimizerSettings, dtype: str):
    """(the Keras optimizer, a JSON-ready record of what was built and why) for a run of `dtype`.

    Needs keras.config.floatx() == dtype (parity.keras_side.side.configure sets it): Keras makes its
    learning-rate variable in floatx.
    """
    if keras.config.floatx() != dtype:
        raise RuntimeError(f"Keras's floatx is {keras.config.floatx()} but the optimizer is for a {dtype} run; "
                           "call parity.keras_side.side.configure(dtype, seed) first")
    optimizer = getattr(keras.optimizers, settings.info.keras_class)(**keras_arguments(settings, dtype))
    return optimizer, build_record(settings, dtype)


def optimizer_kind(settings: OptimizerSettings, dtype: str) -> tuple:
    """What a compiled step with this optimizer depends on: its class and every argument but the learning rate.

    Keras keeps the learning rate in a variable and the other hyperparameters as Python numbers, which a
    traced function holds as constants: runs of one kind share one trace, with the learning rate assigned.
    """
    args = keras_arguments(settings, dtype)
    return (settings.info.keras_class, dtype, tuple(sorted((k, v) for k, v in args.items() if k != "learning_rate")))


def build_record(settings: OptimizerSettings, dtype: str) -> dict:
    """A JSON-ready record of the Keras optimizer a run of `dtype` builds for `settings`, and why."""
    info = settings.info
    args = keras_arguments(settings, dtype)
    return {
        "class": f"keras.optimizers.{info.keras_class}",
        "arguments": {k: (v if isinstance(v, bool) else float(v)) for k, v in args.items()},
        "hyperparameters_passed_as": "numpy.float64" if dtype == "float64" else "float (Keras rounds to float32)",
        "book_to_keras": dict(info.keras_keywords),
        "state": {book: info.state[book] for book in info.state},
        "mirrored": list(info.mirrored),
        "conventions": [{"name": c.name, "explanation": c.explanation} for c in info.conventions],
    }


def keras_state_variables(optimizer, variables: list, settings: OptimizerSettings) -> dict[str, list]:
    """Book state name -> the Keras optimizer's variable for each model variable, in `variables`' order.

    Keras names a slot `{variable path with / as _}_{slot}` (base_optimizer.add_variable_from_reference).
    Empty for plain SGD, and for momentum 0, where Keras keeps no velocity. Build the optimizer first.
    """
    if not optimizer.built:
        optimizer.build(variables)
    by_name = {v.name: v for v in optimizer.variables}
    out = {}
    for book, slot in settings.info.state.items():
        wanted = [f"{v.path.replace('/', '_')}_{slot}" for v in variables]
        found = [by_name.get(name) for name in wanted]
        if all(f is None for f in found):
            continue  # SGD with momentum 0 creates no momentum slots
        missing = [name for name, f in zip(wanted, found) if f is None]
        if missing:
            raise RuntimeError(f"Keras's {type(optimizer).__name__} has no state variable {missing[0]}; "
                               f"it has {sorted(by_name)}")
        out[book] = found
    return out


def read_keras_state(optimizer, variables: list, settings: OptimizerSettings,
                     names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Book state name -> parameter name -> a copy of the Keras optimizer's value now."""
    slots = keras_state_variables(optimizer, variables, settings)
    return {book: {name: np.array(v.numpy(), copy=True) for name, v in zip(names, found)}
            for book, found in slots.items()}

