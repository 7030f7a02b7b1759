"""Drive a learner's optimizer class: pick it from their module, construct it with the run's
hyperparameters, and call its `update` through one guard (NumPy only). What an instance holds is
read by parity.user_code.attributes.

Learners' classes vary: `lr` or `learning_rate`, `decay_rate` or `rho`, `beta1` or `beta_1`; no
defaults, or a hard-coded epsilon; state created lazily on the first update under `v`, `h`, `m`,
`velocity`, with a step counter `iter`, `t` or `count`; parameters in a dict (first volume) or a
list (second volume). The driver adapts to each; what it cannot drive is refused before any work,
and whatever the class does while running (raise, change a shape, write into the gradients) becomes
a finding on that class, never a traceback.
"""

from __future__ import annotations

import difflib
import inspect

import numpy as np

from parity.errors import ParityInputError, first_line
from parity.user_code.guard import where_raised
from parity.user_code.attributes import KEYWORD_ALIASES, read_counter, read_state, write_state
from parity.settings.optimizer_registry import OPTIMIZERS, OptimizerSettings
from parity.settings.spec import LAYER_NAMES
from parity.book.optimizers import BOOK_EPSILON

__all__ = ["find_optimizer_class", "optimizer_class_in", "constructor_arguments", "OptimizerDriver", "user_frame"]

def find_optimizer_class(namespace, name: str, label: str) -> type:
    """The class for optimizer `name` (a registry name) in a namespace, its name matched case-insensitively."""
    info = OPTIMIZERS[name]
    classes = {key: obj for key, obj in dict(namespace).items() if inspect.isclass(obj)}
    cls = next((obj for key, obj in classes.items() if key.lower() == info.book_class.lower()), None)
    if cls is None:
        lowered = {key.lower(): key for key in classes}
        near = difflib.get_close_matches(info.book_class.lower(), list(lowered), n=1, cutoff=0.6)
        if near:
            hint = f"your module has `{lowered[near[0]]}`: did you mean {info.book_class}?"
        else:
            hint = "found: " + (", ".join(sorted(classes)) or "no classes")
        raise ParityInputError(f"{label} has no class {info.book_class} for the optimizer {name} "
                               f"(names match case-insensitively); {hint}")
    update = getattr(cls, "update", None)
    if not callable(update):
        raise ParityInputError(f"{label}: class {cls.__name__} has no update method; the book's optimizers "
                               "have update(params, grads)")
    try:
        inspect.signature(update).bind(None, {}, {})
    except (TypeError, ValueError):
        raise ParityInputError(f"{label}: {cls.__name__}.update{_signature(update)} cannot be called as "
                               "update(params, grads), the book's protocol") from None
    return cls


def optimizer_class_in(classes: dict[str, type], name: str, label: str) -> type | None:
    """The class for optimizer `name` among a module's classes, checked as find_optimizer_class does; None
    when the module has none (the run then steps with the book's). A near miss is refused, naming it.

    Near misses are looked for among the classes that are none of the book's layers or optimizers:
    `Sigmoid` is no misspelt SGD, nor `AdaGrad` a misspelt Adam.
    """
    book = OPTIMIZERS[name].book_class.lower()
    if any(key.lower() == book for key in classes):
        return find_optimizer_class(classes, name, label)
    known = {n.lower() for n in LAYER_NAMES} | {"relu"} | {info.book_class.lower() for info in OPTIMIZERS.values()}
    others = {key: cls for key, cls in classes.items() if key.lower() not in known}
    if difflib.get_close_matches(book, [key.lower() for key in others], n=1, cutoff=0.6):
        find_optimizer_class(others, name, label)  # raises, naming the near miss
    return None


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"


def _book_call(settings: OptimizerSettings) -> str:
    info = settings.info
    return f"{info.book_class}({', '.join(f'{k}={v}' for k, v in info.defaults.items())})"


def constructor_arguments(cls: type, settings: OptimizerSettings, label: str) -> dict:
    """Keyword arguments for `cls(...)`: the run's hyperparameters under the names its signature uses.

    A hyperparameter the signature does not take is left out (the class may hard-code it: see
    hyperparameter_differences). Epsilon is passed, the run's (the book's 1e-7 unless set), where the
    signature takes one. A parameter with no default that is none of the book's refuses the class, naming both
    signatures.
    """
    run = {**settings.hyper, "epsilon": BOOK_EPSILON, **settings.values()}
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        raise ParityInputError(f"{label}: the signature of {cls.__name__} cannot be read; "
                               f"expected {_book_call(settings)}") from None
    kwargs, takes_any, taken = {}, False, set()
    for p in signature.parameters.values():
        if p.kind is p.VAR_POSITIONAL:
            continue
        if p.kind is p.VAR_KEYWORD:
            takes_any = True
            continue
        key = next((k for k in run if p.name in KEYWORD_ALIASES[k] and k not in taken), None)
        if key is not None and p.kind is not p.POSITIONAL_ONLY:
            kwargs[p.name] = run[key]
            taken.add(key)
        elif p.default is p.empty:
            raise ParityInputError(
                f"{label}: {cls.__name__}{signature} cannot be constructed with the run's hyperparameters: "
                f"its parameter {p.name!r} has no default and is not one of the book's keywords "
                f"({', '.join(settings.info.defaults)}); expected {_book_call(settings)}")
    if takes_any:  # **kwargs: the book's names for what no named parameter took (epsilon only when set)
        kwargs.update({k: v for k, v in settings.values().items()
                       if k not in taken and (k != "epsilon" or k in settings.given)})
    return kwargs


def user_frame(exc: BaseException, cls: type) -> str:
    """'file:line' of the innermost frame in the class's own file (a notebook's cell); else of the innermost frame."""
    return where_raised(exc, cls)


class OptimizerDriver:
    """One learner optimizer over a stepping run: owns the parameters it is given, as the book's network does.

    `params` is passed to every update as the same container (dict, or list in `names`' order), so a
    class that keeps references between calls sees what it would in the book. After each update the
    parameters are checked; a failed update leaves them as they were and is recorded as a finding.
    """

    def __init__(self, cls: type, settings: OptimizerSettings, params: dict[str, np.ndarray], label: str = "--layers"):
        self.cls, self.settings, self.names = cls, settings, list(params)
        self.kwargs = constructor_arguments(cls, settings, label)
        self.params = {k: np.array(v, copy=True) for k, v in params.items()}
        self.dtypes = {k: v.dtype for k, v in self.params.items()}
        self.container: str | None = None  # "dict" | "list", found on the first update
        self._packed = None
        self._failures: dict[tuple, dict] = {}  # (code, method) -> finding, merged over steps
        self.instance = self._construct()

    def _construct(self, record: bool = True):
        try:
            return self.cls(**self.kwargs)
        except Exception as exc:  # the learner's constructor raised: a finding, not a crash
            if record:
                self._fail("layer_error", "__init__", 0, exc)
            return None

    @property
    def constructed(self) -> bool:
        return self.instance is not None

    def _pack(self, values: dict, kind: str):
        return dict(values) if kind == "dict" else [values[k] for k in self.names]

    def _unpack(self, container) -> dict | None:
        """name -> value from a dict or list the update left or returned; None when it is neither."""
        if isinstance(container, dict) and set(self.names) <= set(container):
            return {k: container[k] for k in self.names}
        if isinstance(container, (list, tuple)) and len(container) == len(self.names):
            return dict(zip(self.names, container))
        return None

    def _probe_container(self, grads: dict) -> str:
        """dict if a throwaway instance updates a dict of copies without raising; else list if a list works."""
        for kind in ("dict", "list"):
            instance = self._construct(record=False)
            try:
                with np.errstate(all="ignore"):
                    instance.update(self._pack({k: v.copy() for k, v in self.params.items()}, kind),
                                    self._pack({k: np.array(v, copy=True) for k, v in grads.items()}, kind))
                return kind
            except Exception:  # this container is not the one it expects; the real update reports errors
                continue
        return "dict"

    def update(self, grads: dict[str, np.ndarray], step: int) -> bool:
        """One guarded update with these gradients; True when it succeeded. `self.params` holds the result."""
        if self.instance is None:
            return False
        if self.container is None:
            self.container = self._probe_container(grads)
            self._packed = self._pack(self.params, self.container)
        before = {k: v.copy() for k, v in self.params.items()}
        given = {k: np.array(v, copy=True) for k, v in grads.items()}
        try:
            with np.errstate(all="ignore"):  # overflow and NaN are compared as values, not raised as warnings
                returned = self.instance.update(self._packed, self._pack(given, self.container))
        except Exception as exc:
            self._restore(before)
            self._fail("layer_error", "update", step, exc)
            return False
        after = self._unpack(returned) if returned is not None else None
        after = after if after is not None else self._unpack(self._packed)
        problem = self._problem(after)
        if problem:
            self._restore(before)
            self._fail("shape_mismatch", "update", step, None, problem)
            return False
        # A float64 state can promote a float32 run's parameters; the comparison is in the run's dtype.
        self.params = {k: np.asarray(after[k]).astype(self.dtypes[k], copy=False) for k in self.names}
        self._restore(self.params)
        changed = [k for k in self.names if not np.array_equal(given[k], grads[k], equal_nan=True)]
        if changed:
            self._fail("input_mutation", "update", step, None,
                       f"{self.cls.__name__}.update wrote into the gradients it was given ({', '.join(changed)})")
        return True

    def _problem(self, after: dict | None) -> str:
        """What makes the parameters an update left unusable, in words; "" when they are fine."""
        name = self.cls.__name__
        if after is None:
            return f"{name}.update left params without the keys {', '.join(self.names)}"
        for k in self.names:
            try:
                value = np.asarray(after[k])
            except Exception:  # a ragged list, an object NumPy cannot hold: not a parameter
                return f"{name}.update left {k} as a {type(after[k]).__name__}, not an array"
            if value.shape != self.params[k].shape:
                return f"{name}.update left {k} with shape {value.shape}; it is {self.params[k].shape}"
            if not np.issubdtype(value.dtype, np.number):
                return f"{name}.update left {k} as {value.dtype}, not numbers"
        return ""

    def _restore(self, values: dict) -> None:
        """Put these arrays back into the container the update is given (a failed update changes nothing)."""
        self.params = values
        for i, k in enumerate(self.names):
            self._packed[k if self.container == "dict" else i] = values[k]

    def _fail(self, code: str, method: str, step: int, exc: BaseException | None, text: str = "") -> None:
        """Record a failure; the same code and method on later steps counts into the first one's finding."""
        kind = type(exc).__name__ if exc is not None else code
        key = (code, method)
        if key in self._failures:
            f = self._failures[key]
            f["count"] += 1
            if kind != f["kind"]:  # usually a consequence: a failed call left the instance half-built
                f["later"][kind] = f["later"].get(kind, 0) + 1
            return
        name = self.cls.__name__
        where = user_frame(exc, self.cls) if exc is not None else ""
        if exc is not None:
            text = f"{name}.{method} raised {kind}: {first_line(exc)} ({where})"
        severity = "warning" if code == "input_mutation" else "error"  # fixes: parity.diagnosis.fixes
        self._failures[key] = {"code": code, "severity": severity, "layer": name, "method": method,
                               "message": text, "where": where, "step": step, "count": 1,
                               "kind": kind, "later": {}}

    @property
    def findings(self) -> list[dict]:
        """One finding per code and method, with the first step and how many steps it happened on."""
        out = []
        for f in self._failures.values():
            f = dict(f)
            if f["method"] == "update":
                f["message"] += f" on {_steps(f['count'])}, first at step {f['step']}"
            if f["later"]:
                f["message"] += "; after it, " + ", ".join(f"{kind} on {_steps(c)}" for kind, c in f["later"].items())
            del f["kind"], f["later"]
            out.append({k: v for k, v in f.items() if v != ""})
        return out

    def state(self) -> dict[str, dict[str, np.ndarray]]:
        """The state the instance exposes now, under the book's names (copies); empty before the first update."""
        return read_state(self.instance, self.settings.name, self.params)

    def counter(self) -> int | None:
        return read_counter(self.instance)

    def resume(self, seen: list[dict[str, np.ndarray]], state: dict[str, dict[str, np.ndarray]]) -> str:
        """Stand where an optimizer is after one update per gradient in `seen`, holding `state` (book names): the
        instance makes those updates (its step counter, whatever it calls it, counts them; its state exists), then
        holds `state` and the parameters this driver was given. "" when read_state reads `state` back exactly; else
        why not, in words: nothing is guessed (a state kept under a name the tool does not know cannot be set)."""
        given = {k: v.copy() for k, v in self.params.items()}
        for step, grads in enumerate(seen):
            if not self.update(grads, step):
                return f"{self.cls.__name__}.update failed on step {step} when replayed"
        missing = write_state(self.instance, self.settings.name, self.params, state) if state else []
        self._restore(given)
        held = self.state()
        missing += [b for b in state if b not in missing and (b not in held or any(
            not np.array_equal(np.asarray(held[b][k], np.float64), np.asarray(v, np.float64)) for k, v in state[b].items()))]
        if missing:
            return (f"{self.cls.__name__} keeps no {' or '.join(missing)} the tool can set (it looks under the names "
                    "the book and common variants use, one array per parameter)")
        return ""


def _steps(count: int) -> str:
    return f"{count} step{'s' if count != 1 else ''}"
