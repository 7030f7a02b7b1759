"""Load a user's layers module: a .py path (run as a script would be) or a dotted module name.

This is code the user chose to run, so it is imported as is; what is checked is its shape: which
of the book's classes it provides, and that each has forward and backward.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path

from parity.errors import ParityInputError

__all__ = ["LAYER_NAMES", "import_layers", "kit_from_namespace", "load_layers"]

LAYER_NAMES = ("Affine", "Relu", "Sigmoid", "SoftmaxWithLoss", "MeanSquaredError")


def _import_error(source: str, exc: BaseException) -> ParityInputError:
    if isinstance(exc, SyntaxError):
        where = f"{Path(exc.filename or source).name}, line {exc.lineno}"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        user = [f for f in frames if "importlib" not in f.filename] or frames
        where = f"{Path(user[-1].filename).name}, line {user[-1].lineno}" if user else source
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ParityInputError(f"--layers {source} failed to import: {type(exc).__name__}: {message} ({where})")


def import_layers(source: str):
    """Import a .py path (as a script would be) or a dotted module name; errors are ParityInputError."""
    path = Path(source)
    if source.endswith(".py") or path.exists():
        if not path.is_file():
            raise ParityInputError(f"--layers file not found (received: {source}); give a .py file or a dotted module name")
        if path.suffix != ".py":
            raise ParityInputError(f"--layers must be a .py file or a dotted module name (received: {source})")
        folder = str(path.resolve().parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)  # as for a script: its own folder comes first
        name = f"parity_user_layers_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException as exc:  # a SystemExit or KeyboardInterrupt from the module is its failure too
            sys.modules.pop(name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise _import_error(source, exc) from None
        return module
    if not all(part.isidentifier() for part in source.split(".")):
        raise ParityInputError(f"--layers must be a .py file or a dotted module name (received: {source})")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` does
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as exc:
        if exc.name == source.split(".")[0] or exc.name == source:
            raise ParityInputError(f"--layers module {source} not found from {Path.cwd()} "
                             "(give a .py path, or run from the folder that holds the module)") from None
        raise _import_error(source, exc) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _import_error(source, exc) from None


def load_layers(source: str) -> tuple[dict[str, type], list[str]]:
    """(kit of the user's classes by canonical name, the canonical names they provide), from a .py
    path or a dotted module name."""
    return kit_from_namespace(vars(import_layers(source)), f"--layers {source}")


def kit_from_namespace(namespace, label: str) -> tuple[dict[str, type], list[str]]:
    """The book's classes found in a namespace (a module's vars, a dict, `globals()`).

    Names match case-insensitively (`ReLU` is `Relu`); a class must have forward and backward.
    `label` names the argument in error messages (`--layers x.py`, `layers=`).
    """
    classes = {name.lower(): obj for name, obj in dict(namespace).items() if inspect.isclass(obj)}
    kit = {}
    for canonical in LAYER_NAMES:
        cls = classes.get(canonical.lower())
        if cls is None:
            continue
        missing = [m for m in ("forward", "backward") if not callable(getattr(cls, m, None))]
        if missing:
            raise ParityInputError(f"{label}: class {cls.__name__} has no {' or '.join(missing)} method; "
                                   f"the book's layers have forward and backward")
        kit[canonical] = cls
    if not kit:
        found = ", ".join(sorted(obj.__name__ for obj in classes.values())) or "no classes"
        raise ParityInputError(f"{label} has none of the classes {', '.join(LAYER_NAMES)} "
                               f"(names match case-insensitively; found: {found})")
    return kit, list(kit)
