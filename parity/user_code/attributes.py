"""Read a learner's optimizer instance: the state and hyperparameters it holds, under the book's names.

Learners keep state under `v`, `h`, `m`, `velocity`, `cache`, ... (a dict keyed like the parameters,
or a list in their order) and a step counter under `iter`, `t` or `count`; hyperparameters under the
book's keywords or Keras's, PyTorch's and the papers' (`learning_rate`, `rho`, `alpha`, `beta_1`, `eps`).
NumPy only.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from parity.settings.optimizer_registry import OPTIMIZERS, OptimizerSettings

__all__ = ["KEYWORD_ALIASES", "STATE_ALIASES", "COUNTER_ALIASES", "read_state", "write_state", "read_counter",
           "hyperparameters_of", "hyperparameter_differences"]

# Book keyword -> the names learners give it in a constructor or an attribute, the book's first.
KEYWORD_ALIASES = {
    "lr": ("lr", "learning_rate", "eta", "alpha"),
    "momentum": ("momentum", "mu", "beta"),
    "decay_rate": ("decay_rate", "rho", "decay", "beta", "gamma", "alpha"),  # alpha: PyTorch's RMSprop
    "beta1": ("beta1", "beta_1", "b1"),
    "beta2": ("beta2", "beta_2", "b2"),
    "epsilon": ("eps", "epsilon", "delta"),
}
# Per optimizer, book state name -> attribute names learners keep it under, the book's first.
STATE_ALIASES = {
    "momentum": {"v": ("v", "velocity", "velocities", "vel", "m")},
    "nesterov": {"v": ("v", "velocity", "velocities", "vel", "m")},
    "adagrad": {"h": ("h", "cache", "G", "accumulator", "accumulators", "acc", "s", "sq", "r")},
    "rmsprop": {"h": ("h", "cache", "s", "sq", "square_avg", "accumulator", "E", "r", "v")},
    "adam": {"m": ("m", "m_t", "moment1", "first_moment", "mom"), "v": ("v", "v_t", "moment2", "second_moment")},
}
COUNTER_ALIASES = ("iter", "t", "count", "step", "steps", "iterations", "n_iter", "timestep")


def _per_param(value, params: dict[str, np.ndarray]) -> dict[str, np.ndarray] | None:
    """A state container as name -> array when it holds one array per parameter, of its shape."""
    names = list(params)
    if isinstance(value, dict) and set(names) <= set(value):
        items = {k: value[k] for k in names}
    elif isinstance(value, (list, tuple)) and len(value) == len(names):
        items = dict(zip(names, value))
    else:
        return None
    out = {}
    for k, v in items.items():
        if not isinstance(v, np.ndarray) or v.shape != params[k].shape or not np.issubdtype(v.dtype, np.number):
            return None
        out[k] = np.array(v, copy=True)
    return out


def read_state(instance, name: str, params: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Book state name -> parameter name -> a copy, for each state the instance keeps one array per parameter of.

    State kept otherwise (one array shared by every key, scalars, a missing key) is not exposed: the
    parameters still are compared, and the diagnosis names such bugs from them.
    """
    found = {}
    attributes = vars(instance) if hasattr(instance, "__dict__") else {}
    for book, aliases in STATE_ALIASES.get(name, {}).items():
        for attr in aliases:
            per = _per_param(attributes.get(attr), params)
            if per is not None:
                found[book] = per
                break
    return found


def write_state(instance, name: str, params: dict[str, np.ndarray], state: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """Put `state` (book state name -> parameter name -> array) where read_state finds it, entry by entry in the
    container the instance keeps (a dict keyed like the parameters, or a list in their order), each in the dtype the
    instance holds it in. Returns the book names it could not write: the instance keeps no such state where
    read_state looks (an attribute of another name, one array shared by every parameter, not yet created)."""
    attributes = vars(instance) if hasattr(instance, "__dict__") else {}
    missing, names = [], list(params)
    for book, values in state.items():
        attr = next((a for a in STATE_ALIASES.get(name, {}).get(book, ()) if _per_param(attributes.get(a), params)
                     is not None), None)
        container = None if attr is None else attributes[attr]
        if container is None or isinstance(container, tuple) or set(values) != set(names):
            missing.append(book)
            continue
        for i, k in enumerate(names):
            key = k if isinstance(container, dict) else i
            container[key] = np.array(values[k], dtype=container[key].dtype)
    return missing


def read_counter(instance) -> int | None:
    """The step counter (`iter`, `t`, `count`, ...) the instance keeps, if any."""
    attributes = vars(instance) if hasattr(instance, "__dict__") else {}
    for attr in COUNTER_ALIASES:
        value = attributes.get(attr)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
    return None


def hyperparameters_of(instance, name: str) -> dict[str, float]:
    """Book keyword -> the value the instance holds under one of its aliases (class attributes count).

    Keywords are read in the book's order and an attribute serves one keyword only, so `alpha` is
    Adam's lr but RMSprop's decay rate (PyTorch's name) when the class also has `lr`.
    """
    out, used = {}, set()
    info = OPTIMIZERS[name]
    for key in (*info.defaults, *(("epsilon",) if info.epsilon is not None else ())):
        for attr in KEYWORD_ALIASES[key]:
            value = getattr(instance, attr, None)
            if attr not in used and isinstance(value, Real) and not isinstance(value, bool):
                out[key] = float(value)
                used.add(attr)
                break
    return out


def hyperparameter_differences(instance, settings: OptimizerSettings) -> dict[str, tuple[float, float]]:
    """Book keyword -> (the instance's value, the run's) where they differ: values the class hard-codes."""
    run = settings.values()
    held = hyperparameters_of(instance, settings.name)
    return {k: (v, run[k]) for k, v in held.items() if not math.isclose(v, run[k], rel_tol=1e-12, abs_tol=0.0)}
