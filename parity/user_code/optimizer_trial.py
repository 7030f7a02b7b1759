"""A learner's optimizer tried once before any work: can the harness drive it at all, and what does it hold?

A throwaway instance is constructed with the run's hyperparameters and its `update` called once on
stand-in parameters of the run's shapes, in a dict and then in a list (both volumes' forms). What it
holds afterwards (lr, decay_rate, eps, ... under the names attributes.py knows) is read, so the Keras
optimizer can be built to mirror it. An update that raises under every container because it expects
something else than the parameters (`update(self, network, grads)` walking `network.layers`) cannot be
driven: that is bad input, refused with the signature found and a method of the class that does take
(params, grads) where there is one. An update that raises for any other reason is left to the run, where
it becomes a finding on the class with file and line.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field

import numpy as np

from parity.errors import ParityInputError, first_line
from parity.settings.optimizer_registry import OptimizerSettings
from parity.user_code.attributes import hyperparameters_of
from parity.user_code.optimizer_driver import constructor_arguments, user_frame

__all__ = ["Trial", "try_optimizer"]

# A first parameter so named is a network or model, not the parameters the book's update takes.
_NETWORK = re.compile(r"^(net|network|model|layers?|nn|self_?net)$", re.IGNORECASE)
_LIKELY = re.compile(r"param|update|step|apply|optimi", re.IGNORECASE)  # the names a learner gives the real work


@dataclass(frozen=True)
class Trial:
    """What one throwaway instance showed: the container its update took, and what it holds."""

    container: str | None = None  # "dict" | "list"; None when it was not tried or raised under both
    held: dict[str, float] = field(default_factory=dict)  # book keyword -> value the instance holds


def _stand_ins(shapes: dict[str, tuple], dtype: str) -> tuple[dict, dict]:
    """Parameters and gradients of the run's shapes and dtype: seeded, never the run's own numbers."""
    rng = np.random.default_rng(0)
    params = {k: rng.normal(size=shape).astype(dtype) for k, shape in shapes.items()}
    return params, {k: (0.1 * rng.normal(size=shape)).astype(dtype) for k, shape in shapes.items()}


def _pack(values: dict, kind: str):
    return {k: v.copy() for k, v in values.items()} if kind == "dict" else [v.copy() for v in values.values()]


def _call(instance, method: str, params: dict, grads: dict, kind: str):
    """Call instance.method(params, grads) on copies; (None, None) when it returned, else (exception, packed args)."""
    p, g = _pack(params, kind), _pack(grads, kind)
    try:
        with np.errstate(all="ignore"):
            getattr(instance, method)(p, g)
    except Exception as exc:  # the learner's code: judged below, never raised from here
        return exc, (p, g)
    return None, None


def _about_the_arguments(cls: type, failures: list) -> bool:
    """Whether the update failed because it expects something else than parameters: under every container, an
    attribute looked up on what it was given ('dict' object has no attribute 'layers'; a dict-only update that a
    list fails is no such thing), or a first parameter named for a network."""
    if all(isinstance(exc, AttributeError) and any(getattr(exc, "obj", None) is a for a in args)
           for exc, args in failures):
        return True
    try:
        names = [p.name for p in inspect.signature(cls.update).parameters.values()]
    except (TypeError, ValueError):
        return False
    return len(names) > 1 and bool(_NETWORK.match(names[1]))


def _method_taking_params(cls: type, kwargs: dict, params: dict, grads: dict) -> tuple[str, str] | None:
    """(name, signature) of a method of the class that runs when called with (params, grads): `updateParams`."""
    candidates = []
    for name in dir(cls):
        if name.startswith("__") or name == "update" or not inspect.isfunction(getattr(cls, name, None)):
            continue
        try:
            inspect.signature(getattr(cls, name)).bind(None, {}, {})
        except (TypeError, ValueError):
            continue
        candidates.append(name)
    for name in sorted(candidates, key=lambda n: not _LIKELY.search(n)):
        for kind in ("dict", "list"):
            try:
                instance = cls(**kwargs)
            except Exception:  # the constructor worked a moment ago; nothing more to learn
                return None
            if _call(instance, name, params, grads, kind)[0] is None:
                return name, _shown(getattr(cls, name))
    return None


def _shown(method) -> str:
    try:
        return str(inspect.signature(method))
    except (TypeError, ValueError):
        return "(...)"


def try_optimizer(cls: type, settings: OptimizerSettings, shapes: dict[str, tuple], dtype: str,
                  label: str) -> Trial:
    """One throwaway instance of `cls`, one update per container (see the module's docstring); ParityInputError
    when the update cannot be driven, naming its signature and a method that takes (params, grads)."""
    kwargs = constructor_arguments(cls, settings, label)
    params, grads = _stand_ins(shapes, dtype)
    failures, held = [], {}
    for kind in ("dict", "list"):
        try:
            instance = cls(**kwargs)
        except Exception:  # the run constructs it again and reports the constructor on the class
            return Trial()
        held = held or hyperparameters_of(instance, settings.name)
        exc, args = _call(instance, "update", params, grads, kind)
        if exc is None:  # as constructed; what the update sets lazily too (an lr it decays stays the constructed one)
            return Trial(kind, {**hyperparameters_of(instance, settings.name), **held})
        failures.append((exc, args))
    if not _about_the_arguments(cls, failures):
        return Trial(None, held)  # a bug inside a drivable update: the run's finding says where
    exc = failures[0][0]
    found = _method_taking_params(cls, kwargs, params, grads)
    name = cls.__name__
    other = (f"; {name}.{found[0]}{found[1]} does take them (it ran on them): make update(self, params, grads) "
             f"call it, or rename it to update") if found else \
        "; the book's update(params, grads) changes each params[key] in place, with no network in sight"
    raise ParityInputError(
        f"{label}: {name}.update{_shown(cls.update)} cannot be driven: called as update(params, grads), the "
        f"book's protocol, with the parameters in a dict and in a list, it raised on its first call "
        f"({type(exc).__name__}: {first_line(exc, 120)} ({user_frame(exc, cls)})){other}")
