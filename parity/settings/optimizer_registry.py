"""The optimizers a run may step with, and its validated hyperparameters (NumPy only).

The registry says, per optimizer: the book's class, keywords and defaults; the Keras optimizer built
to mirror it and how each keyword maps; the state each side keeps, under each side's names; and the
conventions Keras cannot be configured to match. Defaults follow the book, as its readers expect.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from numbers import Real
from typing import Callable, Mapping

from parity.book import optimizers as ref
from parity.errors import ParityInputError

__all__ = ["Convention", "OptimizerInfo", "OptimizerSettings", "OPTIMIZERS", "OPTIMIZER_NAMES",
           "optimizer_settings", "with_epsilon", "mirroring"]


@dataclass(frozen=True)
class Convention:
    name: str
    explanation: str


EPSILON_INSIDE_ROOT = Convention(
    "epsilon_inside_root",
    "Keras divides by sqrt(h + epsilon), the book by sqrt(h) + epsilon; no Keras argument moves it")


@dataclass(frozen=True)
class OptimizerInfo:
    name: str  # the run's name for it: sgd | momentum | nesterov | adagrad | rmsprop | adam
    book_class: str  # the class name in the book (and in a learner's module, matched case-insensitively)
    defaults: dict[str, float]  # the book's keywords and defaults, in its signature's order
    keras_class: str  # keras.optimizers.<keras_class>
    keras_keywords: dict[str, str]  # book keyword -> Keras keyword
    keras_fixed: dict  # Keras arguments that mirror what the book hard-codes or leaves out
    state: dict[str, str]  # book state name -> Keras optimizer variable name (per parameter)
    counter: str | None  # the book's step counter; Keras's is `optimizer.iterations`
    reference: type  # the book's formulas (parity.book.optimizers)
    keras_reference: type  # Keras's formulas in the book's protocol; the book's class when they agree
    conventions: tuple[Convention, ...] = ()
    mirrored: tuple[str, ...] = ()  # Keras defaults that differ from the book's, and what the run sets instead
    epsilon: float | None = None  # the book's hard-coded epsilon, where the formula has one (Keras's `epsilon`)

    def keywords(self) -> tuple[str, ...]:
        return tuple(self.defaults)


_LR_DEFAULT = "learning_rate: Keras's default is 0.001, the book's lr 0.01; the run passes lr"
OPTIMIZERS: dict[str, OptimizerInfo] = {info.name: info for info in (
    OptimizerInfo("sgd", "SGD", {"lr": 0.01}, "SGD", {"lr": "learning_rate"}, {"momentum": 0.0, "nesterov": False},
                  {}, None, ref.SGD, ref.SGD),
    OptimizerInfo("momentum", "Momentum", {"lr": 0.01, "momentum": 0.9}, "SGD",
                  {"lr": "learning_rate", "momentum": "momentum"}, {"nesterov": False}, {"v": "momentum"}, None,
                  ref.Momentum, ref.Momentum,
                  mirrored=("momentum: Keras's SGD defaults to 0 (no momentum), the book's Momentum to 0.9",)),
    OptimizerInfo("nesterov", "Nesterov", {"lr": 0.01, "momentum": 0.9}, "SGD",
                  {"lr": "learning_rate", "momentum": "momentum"}, {"nesterov": True}, {"v": "momentum"}, None,
                  ref.Nesterov, ref.Nesterov,
                  mirrored=("nesterov=True with the book's momentum (Keras's SGD defaults to momentum 0)",)),
    OptimizerInfo("adagrad", "AdaGrad", {"lr": 0.01}, "Adagrad", {"lr": "learning_rate"},
                  {"initial_accumulator_value": 0.0, "epsilon": ref.BOOK_EPSILON}, {"h": "accumulator"}, None,
                  ref.AdaGrad, ref.AdaGradKerasConvention, (EPSILON_INSIDE_ROOT,),
                  ("initial_accumulator_value=0.0: Keras starts the accumulator at 0.1 by default, the book at 0",
                   _LR_DEFAULT), ref.BOOK_EPSILON),
    OptimizerInfo("rmsprop", "RMSprop", {"lr": 0.01, "decay_rate": 0.99}, "RMSprop",
                  {"lr": "learning_rate", "decay_rate": "rho"},
                  {"momentum": 0.0, "epsilon": ref.BOOK_EPSILON, "centered": False}, {"h": "velocity"}, None,
                  ref.RMSprop, ref.RMSpropKerasConvention, (EPSILON_INSIDE_ROOT,),
                  ("rho = decay_rate: Keras's default rho is 0.9, the book's decay_rate 0.99", _LR_DEFAULT),
                  ref.BOOK_EPSILON),
    OptimizerInfo("adam", "Adam", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999}, "Adam",
                  {"lr": "learning_rate", "beta1": "beta_1", "beta2": "beta_2"},
                  {"epsilon": ref.BOOK_EPSILON, "amsgrad": False}, {"m": "momentum", "v": "velocity"}, "iter",
                  ref.Adam, ref.Adam, epsilon=ref.BOOK_EPSILON),
)}
OPTIMIZER_NAMES = tuple(OPTIMIZERS)

# Every hyperparameter the book's optimizers take: its rule, as (check, words for the message).
_RULES: dict[str, tuple[Callable[[float], bool], str]] = {
    "lr": (lambda v: v > 0, "a finite number above 0"),
    "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "decay_rate": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "beta1": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "beta2": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "epsilon": (lambda v: 0 < v < 1, "a number in (0, 1)"),
}
# Keras's (and other) spellings of the book's keywords, for a message that names the book's.
_KERAS_SPELLINGS = {"learning_rate": "lr", "rho": "decay_rate", "beta_1": "beta1", "beta_2": "beta2"}


@dataclass(frozen=True)
class OptimizerSettings:
    """The run's optimizer: its registry name and every hyperparameter under the book's keyword."""

    name: str
    hyper: dict[str, float] = field(default_factory=dict)  # all of the book's keywords, defaults filled in
    given: tuple[str, ...] = ()  # the keywords the user set (epsilon among them when set)
    epsilon: float | None = None  # where the formula has one: the book's 1e-7 unless set; Keras is built with it

    def __hash__(self) -> int:  # a run's configuration is hashable; `hyper` is a dict
        return hash((self.name, tuple(sorted(self.hyper.items())), self.given, self.epsilon))

    @property
    def info(self) -> OptimizerInfo:
        return OPTIMIZERS[self.name]

    def values(self) -> dict[str, float]:
        """Every hyperparameter under the book's keyword, epsilon included where the formula has one."""
        return {**self.hyper, **({"epsilon": self.epsilon} if self.epsilon is not None else {})}

    def reference(self):
        """A fresh book-formula optimizer with the run's hyperparameters (its epsilon too)."""
        return with_epsilon(self.info.reference(**self.hyper), self.epsilon)

    def keras_convention_reference(self):
        """A fresh optimizer in Keras's formula (the book's class where the formulas agree)."""
        return with_epsilon(self.info.keras_reference(**self.hyper), self.epsilon)

    def as_dict(self) -> dict:
        info = self.info
        return {"name": self.name, "book_class": info.book_class, "hyperparameters": self.values(),
                "given": list(self.given), "conventions": [c.name for c in info.conventions]}


def with_epsilon(optimizer, epsilon: float | None):
    """`optimizer` with its epsilon set: the book's classes keep it as `eps`, the Keras-convention ones as `epsilon`."""
    if epsilon is not None:
        setattr(optimizer, "eps" if hasattr(optimizer, "eps") else "epsilon", epsilon)
    return optimizer


Label = str | Callable[[str], str]


def _labeller(label: Label) -> Callable[[str], str]:
    """key -> how the caller's user spelled it. A string labels the name and prefixes each key with `.`."""
    if callable(label):
        return label
    return lambda key: label if key == "name" else f"{label}.{key}"


def optimizer_settings(spec: str | Mapping, label: Label = "optimizer", **overrides) -> OptimizerSettings:
    """Validate an optimizer name and its hyperparameters; ParityInputError names the offending key.

    `spec` is a name (`"adam"`), a name with settings (`"adam:epsilon=1e-8,lr=0.002"`) or a table
    (`{"name": "adam", "lr": 0.01}`, as TOML gives it); `overrides` are more hyperparameters (flags). `label`
    says how the caller's user spells the argument: a string (`"--optimizer"`, `"[train] optimizer"`) or a
    function of the key (`"name"` for the name). `epsilon` is a setting of the optimizers whose formula has one.
    """
    say = _labeller(label)
    if isinstance(spec, str) and ":" in spec:
        spec = _parsed(spec, say)
    if isinstance(spec, Mapping):
        table = dict(spec)
        if "name" not in table:
            raise ParityInputError(f"{say('name')} has no name: give name = one of "
                                   f"{', '.join(OPTIMIZER_NAMES)} (received: {table!r})")
        name, given = table.pop("name"), {**table, **overrides}
    else:
        name, given = spec, dict(overrides)
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        close = difflib.get_close_matches(str(name).lower(), OPTIMIZER_NAMES, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ParityInputError(f"{say('name')} must be one of {', '.join(OPTIMIZER_NAMES)} (received: {name!r}){hint}")
    info = OPTIMIZERS[name.lower()]
    hyper, epsilon = dict(info.defaults), info.epsilon
    for key, value in given.items():
        if key not in info.defaults and not (key == "epsilon" and info.epsilon is not None):
            raise ParityInputError(f"{say(key)} is not a hyperparameter of {info.name} "
                                   f"({_takes(info)}){_spelling_hint(key, info)}")
        check, words = _RULES[key]
        number = isinstance(value, Real) and not isinstance(value, bool)
        if not number or not math.isfinite(float(value)) or not check(float(value)):
            raise ParityInputError(f"{say(key)} must be {words} (received: {value!r})")
        if key == "epsilon":
            epsilon = float(value)
        else:
            hyper[key] = float(value)
    return OptimizerSettings(info.name, hyper, tuple(given), epsilon)


def mirroring(settings: OptimizerSettings, held: Mapping[str, float]) -> tuple[OptimizerSettings, dict]:
    """The run's settings with the values a user's class holds where the user set none: (settings, keyword ->
    (the class's value, the run's)). A value the user set stays (the class ignoring it is a finding), and a
    value outside its rule (a misread attribute) is not mirrored."""
    run, changed = settings.values(), {}
    for key, value in held.items():
        check = _RULES.get(key, (None,))[0]
        if key in settings.given or key not in run or check is None or not math.isfinite(value) or not check(value):
            continue
        if not math.isclose(value, run[key], rel_tol=1e-12, abs_tol=0.0):
            changed[key] = (float(value), run[key])
    if not changed:
        return settings, {}
    hyper = {k: changed[k][0] if k in changed else v for k, v in settings.hyper.items()}
    epsilon = changed["epsilon"][0] if "epsilon" in changed else settings.epsilon
    return OptimizerSettings(settings.name, hyper, settings.given, epsilon), changed


def _parsed(spec: str, say: Callable[[str], str]) -> dict:
    """`adam:epsilon=1e-8,lr=0.002` as the table {"name": "adam", "epsilon": 1e-8, "lr": 0.002}."""
    name, _, rest = spec.partition(":")
    table: dict = {"name": name.strip()}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, equals, text = (part.strip() for part in item.partition("="))
        if not equals or not key:
            raise ParityInputError(f"{say('name')} settings are key=value pairs after the name, such as "
                                   f"adam:epsilon=1e-8,lr=0.002 (received: {spec!r})")
        try:
            table[key] = float(text)
        except ValueError:
            raise ParityInputError(f"{say(key)} must be a number (received: {text!r})") from None
    return table


def _takes(info: OptimizerInfo) -> str:
    keys = ", ".join(f"{k} = {v}" for k, v in info.defaults.items())
    return f"the book's {info.book_class} takes {keys}"


def _spelling_hint(key: str, info: OptimizerInfo) -> str:
    book = _KERAS_SPELLINGS.get(key)
    if book in info.defaults:
        return f"; {key} is Keras's name for the book's {book}"
    close = difflib.get_close_matches(key, [*info.defaults, *(["epsilon"] if info.epsilon is not None else [])], n=1)
    return f"; did you mean {close[0]}?" if close else ""
