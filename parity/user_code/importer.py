"""Import a user's module: a .py path (run as a script would be) or a dotted module name.

This is code the user chose to run, so it is imported as is; an error while importing it is a
ParityInputError naming the file and line.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path

from parity.errors import ParityInputError, arg, first_line

__all__ = ["import_layers", "tensorflow_env_defaults"]


def tensorflow_env_defaults() -> None:
    """The environment keras_side.backend sets before TensorFlow loads, set before a user's code runs too: a
    notebook or module that imports Keras itself (`from keras.optimizers import SGD`) loads TensorFlow first,
    and its C++ start-up lines would reach the terminal. A user's own setting wins."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _import_error(source: str, exc: BaseException) -> ParityInputError:
    if isinstance(exc, SyntaxError):
        where = f"{Path(exc.filename or source).name}, line {exc.lineno}"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        user = [f for f in frames if "importlib" not in f.filename] or frames
        where = f"{Path(user[-1].filename).name}, line {user[-1].lineno}" if user else source
    message = exc.msg if isinstance(exc, SyntaxError) else first_line(exc)  # str(SyntaxError) repeats `where`
    return ParityInputError(f"{arg('layers')} {source} failed to import: {type(exc).__name__}: {message} ({where})")


def import_layers(source: str):
    """Import a .py path (as a script would be) or a dotted module name; errors are ParityInputError.

    A file that imports its own package (the book's layout: common/layers.py does `from common.functions
    import *`) is imported again from the folder that holds that package.
    """
    path = Path(source)
    tensorflow_env_defaults()
    if source.endswith(".py") or path.exists():
        if not path.is_file():
            raise ParityInputError(f"{arg('layers')} file not found (received: {source}); give a .py file, a .ipynb notebook or a dotted module name")
        if path.suffix != ".py":
            raise ParityInputError(f"{arg('layers')} must be a .py file, a .ipynb notebook or a dotted module name (received: {source})")
        try:
            return _import_file(path, path.resolve().parent, source)
        except ModuleNotFoundError as exc:
            return _import_from_package_root(path, source, exc)
    if not all(part.isidentifier() for part in source.split(".")):
        raise ParityInputError(f"{arg('layers')} must be a .py file, a .ipynb notebook or a dotted module name (received: {source})")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` does
    try:
        return importlib.import_module(source)
    except ModuleNotFoundError as exc:
        if exc.name == source.split(".")[0] or exc.name == source:
            raise ParityInputError(f"{arg('layers')} module {source} not found from {Path.cwd()} "
                             "(give a .py path, or run from the folder that holds the module)") from None
        raise _import_error(source, exc) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _import_error(source, exc) from None


def _import_file(path: Path, folder: Path, source: str):
    """Run a .py file as a module, with `folder` first on sys.path; a ModuleNotFoundError is left to the caller."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # as for a script: its own folder comes first
    name = f"parity_user_layers_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # a SystemExit or KeyboardInterrupt from the module is its failure too
        sys.modules.pop(name, None)
        if isinstance(exc, (KeyboardInterrupt, ModuleNotFoundError)):
            raise
        raise _import_error(source, exc) from None
    return module


def _import_from_package_root(path: Path, source: str, exc: ModuleNotFoundError):
    """The file imports a package that is not beside it: import it again from the nearest folder above
    that holds the package, as `python -m` would from there; else say which command would work."""
    top = (exc.name or "").split(".")[0]
    root = next((folder for folder in path.resolve().parents
                 if top and ((folder / top).is_dir() or (folder / f"{top}.py").is_file())), None)
    if root is None or root == path.resolve().parent:
        raise _import_error(source, exc) from None
    parts = path.resolve().relative_to(root).with_suffix("").parts
    dotted = ".".join(parts)
    hint = f"; it imports its own package {top}: from {root}, run `parity check --layers {dotted}`"
    if parts[0] != top:  # a script beside the package (the book's ch05/), not inside it
        try:
            return _import_file(path, root, source)
        except ModuleNotFoundError as again:
            raise _import_error(source, again) from None
    loaded = sys.modules.get(top)
    if not all(p.isidentifier() for p in parts) or (loaded is not None and not _under(loaded, root / top)):
        raise ParityInputError(_import_error(source, exc).args[0] + hint) from None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module(dotted)
    except BaseException as again:
        if isinstance(again, KeyboardInterrupt):
            raise
        raise ParityInputError(_import_error(source, again).args[0] + hint) from None


def _under(module, folder: Path) -> bool:
    """Whether an imported module or package was loaded from `folder`."""
    places = [getattr(module, "__file__", None), *list(getattr(module, "__path__", []))]
    return any(p and Path(p).resolve().is_relative_to(folder.resolve()) for p in places)
