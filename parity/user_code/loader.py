"""The one way into a user's code: every door (the CLI's `check`, `parity.check`, `assert_parity` and the
fixture, the grade worker, `selftest`) gets the user's classes from `load`, as one `UserCode` record.

`load` takes what a person hands over: a .py path or a dotted module name (imported as is: code the
user chose to run), a .ipynb notebook (its definitions: user_code.notebook), a module, a dict or a namespace
such as `globals()`, and classes by name on top. Only the learner's own classes count (user_code.ownership).
"""

from __future__ import annotations

import inspect
import os
import types
from dataclasses import dataclass, field

from parity.errors import ParityInputError, arg, arg_given
from parity.settings.optimizer_registry import OPTIMIZERS
from parity.user_code.importer import import_layers
from parity.user_code.notebook import load_notebook
from parity.user_code.ownership import learners_own
from parity.user_code.protocol import LAYER_NAMES, classes_of, kit_from_namespace

__all__ = ["UserCode", "load", "LAYER_NAMES"]


@dataclass(frozen=True)
class UserCode:
    """A user's classes, and where they came from."""

    layers: dict[str, type]  # the book's layer classes they provide, by canonical name (Affine, Relu, ...)
    source: str  # shown in reports: "tests/fixtures/book_layers.py", "the notebook", ...
    names: tuple[str, ...] = field(default=())  # the canonical names the user provided
    classes: dict[str, type] = field(default_factory=dict)  # every class given, by its own name: optimizers are picked here
    notes: tuple[dict, ...] = ()  # finding records from loading: statements skipped, imports failed, classes not theirs

    def whose(self) -> dict[str, str]:
        """Per book layer: "reference", or "yours (Class from source)"."""
        return {n: f"yours ({self.layers[n].__name__} from {self.source})" if n in self.layers else "reference"
                for n in LAYER_NAMES}


def _received(value) -> str:
    return f"{value!r} of type {type(value).__name__}"


def _namespace(given, run_all: float | bool = False) -> tuple[dict, str, str]:
    """(namespace, source shown in reports, label naming the argument in messages) of what was handed over."""
    if isinstance(given, types.ModuleType):
        source = getattr(given, "__file__", None) or given.__name__
        return vars(given), source, arg_given("layers", source)
    if isinstance(given, (str, os.PathLike)):
        source = str(given)
        module = load_notebook(source, run_all) if source.endswith(".ipynb") else import_layers(source)
        return vars(module), source, arg_given("layers", source)
    if isinstance(given, dict):
        source = "the notebook" if given.get("__name__") == "__main__" else "the dict given as layers="
        return given, source, arg_given("layers", source)
    if hasattr(given, "__dict__") and not inspect.isclass(given):
        source = f"the {type(given).__name__} given as layers="
        return vars(given), source, arg_given("layers", source)
    raise ParityInputError(f"{arg('layers')} must be a module, a .py path, a .ipynb notebook, a dotted module name, a dict or a namespace "
                           f"such as globals() (received: {_received(given)}); pass single classes by name: "
                           "parity.check(Affine=Affine, Relu=Relu)")


def _by_name(named: dict, options: tuple[str, ...]) -> dict[str, type]:
    """Classes given by keyword (`Affine=MyAffine`), checked: each key a book class, each value a class."""
    canonical = {n.lower(): n for n in (*LAYER_NAMES, *(info.book_class for info in OPTIMIZERS.values()))}
    for key, cls in named.items():
        if key.lower() not in canonical:
            raise ParityInputError(f"parity.check() got an unexpected keyword argument {key}=; class keywords are "
                                   f"{', '.join(canonical.values())} and options are {', '.join(options)}")
        if not inspect.isclass(cls):
            raise ParityInputError(f"{key}= must be a class (received: {_received(cls)})")
    return dict(named)


def load(given=None, named: dict | None = None, options: tuple[str, ...] = (), run_all: float | bool = False) -> UserCode | None:
    """The user's classes from `given` (a .py path, a dotted module name, a module, a dict or a namespace) with
    the classes `named` by keyword on top; None when neither holds any. Problems are ParityInputError, before any
    work: an import that fails, a class the harness cannot drive, a module with none of the book's classes.
    `options` lists the door's other keywords, for the message about an unknown keyword. `run_all`: a notebook's
    cells are all executed first on a kernel (True, or the seconds that may take)."""
    kit, source, every, notes = {}, None, {}, []
    if given is not None:
        namespace, source, label = _namespace(given, run_all)
        namespace, notes = learners_own(namespace, label)
        kit, _ = kit_from_namespace(namespace, label)
        every = classes_of(namespace)
    if named:
        picked = _by_name(named, options)
        found, _ = kit_from_namespace(picked, "the classes given by name")
        kit |= found
        every = {k: v for k, v in every.items() if k.lower() not in {n.lower() for n in picked}} | picked
        source = source or "the classes given by name"
    if not kit and not every:
        return None
    return UserCode(kit, source, tuple(kit), every, tuple(notes))
