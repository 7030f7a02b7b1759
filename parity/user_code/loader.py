"""The one way into a user's code: every door (the CLI's `check`, `parity.check`, `assert_parity` and the
fixture, the grade worker, `selftest`) gets the user's classes from `load`, as one `UserCode` record.

`load` takes what a person hands over: a .py path or a dotted module name (imported as is: code the
user chose to run), a .ipynb notebook (its definitions: user_code.notebook), a module, a dict or a namespace
such as `globals()`, and classes by name on top. Only the learner's own classes count (user_code.ownership).
"""

from __future__ import annotations

import difflib
import inspect
import os
import types
from dataclasses import dataclass, field

from parity.errors import ParityInputError, arg, arg_given
from parity.settings.classes import MAPPABLE
from parity.settings.spec import LAYER_NAMES
from parity.user_code.importer import import_layers
from parity.user_code.notebook import load_notebook
from parity.user_code.ownership import learners_own
from parity.user_code.protocol import classes_of, kit_from_namespace
from parity.user_code.unmapped import unmapped_classes

__all__ = ["UserCode", "load", "LAYER_NAMES"]


@dataclass(frozen=True)
class UserCode:
    """A user's classes, and where they came from."""

    layers: dict[str, type]  # the book's layer classes they provide, by canonical name (Affine, Relu, ...)
    source: str  # shown in reports: "tests/fixtures/book_layers.py", "the notebook", ...
    names: tuple[str, ...] = field(default=())  # the canonical names the user provided
    classes: dict[str, type] = field(default_factory=dict)  # every class given, by its own name: optimizers are picked here
    unmapped: dict[str, type] = field(default_factory=dict)  # layer- or optimizer-like classes under names not mapped
    mapped: tuple[str, ...] = field(default=())  # the book names the user mapped a class to explicitly
    notes: tuple = ()  # finding records from loading: statements skipped, imports failed, classes not theirs

    def whose(self) -> dict[str, str]:
        """Per book layer: "reference", or "yours (Class from source)"."""
        return {n: f"yours ({self.layers[n].__name__} from {self.source})" if n in self.layers else "reference"
                for n in LAYER_NAMES}

    @property
    def label(self) -> str:
        """The argument that gave these classes, as a door spells it: `--layers x.py`, `layers=x.py`."""
        return arg_given("layers", self.source)


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


def _by_name(named: dict, options: tuple[str, ...], namespace: dict, label: str | None) -> dict[str, type]:
    """Classes given by keyword (`Affine=MyAffine`) or mapped by name (`Affine="Dense"`, from --class or
    [classes]): each key a book class (returned in the book's spelling), each value a class or the name of
    one in the user's namespace."""
    canonical = {n.lower(): n for n in MAPPABLE}
    picked = {}
    for key, cls in named.items():
        if key.lower() not in canonical:
            raise ParityInputError(f"parity.check() got an unexpected keyword argument {key}=; class keywords are "
                                   f"{', '.join(canonical.values())} and options are {', '.join(options)}")
        if isinstance(cls, str):
            cls = _looked_up(namespace, cls, f"{key}={cls}", label)
        if not inspect.isclass(cls):
            raise ParityInputError(f"{key}= must be a class (received: {_received(cls)})")
        picked[canonical[key.lower()]] = cls
    return picked


def _looked_up(namespace: dict, name: str, pair: str, label: str | None) -> type:
    """The class `name` in the user's namespace (any case, where only one matches), for the mapping `pair`."""
    if label is None:
        raise ParityInputError(f"{arg_given('classes', pair)} names a class of your module, but no module was "
                               f"given: pass {arg('layers')} too")
    classes = classes_of(namespace)
    found = classes.get(name)
    if found is None:
        same = [c for k, c in classes.items() if k.lower() == name.lower()]
        found = same[0] if len(same) == 1 else None
    if found is None:
        near = difflib.get_close_matches(name, list(classes), n=1)
        hint = f"did you mean {near[0]}?" if near else "its classes: " + (", ".join(sorted(classes)) or "none")
        raise ParityInputError(f"{arg_given('classes', pair)}: {label} has no class {name}; {hint}")
    return found


def load(given=None, named: dict | None = None, options: tuple[str, ...] = (), run_all: float | bool = False) -> UserCode | None:
    """The user's classes from `given` (a .py path, a dotted module name, a module, a dict or a namespace) with
    the classes `named` on top: by keyword (`Affine=MyAffine`) or mapped by name (`Affine="Dense"`, as
    --class and [classes] give them); None when neither holds any. Problems are ParityInputError, before any
    work: an import that fails, a class the harness cannot drive, a module with none of the book's classes, a
    mapped name the module lacks. `options` lists the door's other keywords, for the message about an unknown
    keyword. `run_all`: a notebook's cells are all executed first on a kernel (True, or the seconds that may
    take); only the learner's own classes count (those a module or notebook defines, not those it imports)."""
    namespace, source, label, notes = {}, None, None, []
    if given is not None:
        namespace, source, label = _namespace(given, run_all)
        namespace, notes = learners_own(namespace, label)
    picked = _by_name(named or {}, options, namespace, label)
    if given is None and not picked:
        return None
    replaced = {n.lower() for n in picked}  # a mapped class plays the book class, whatever else has its name
    kept = {k: v for k, v in namespace.items() if k.lower() not in replaced}
    unmapped = unmapped_classes(kept, list(picked.values()))
    kit, _ = kit_from_namespace({**kept, **picked}, label or "the classes given by name", unmapped)
    every = {**classes_of(kept), **picked}
    if not kit and not every:
        return None
    return UserCode(kit, source or "the classes given by name", tuple(kit), every, unmapped, tuple(picked),
                    tuple(notes))
