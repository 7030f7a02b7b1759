"""Import a user's module: a .py path (run as a script would be) or a dotted module name.

This is code the user chose to run, so it is imported as is; an error while importing it is a
ParityInputError naming the file and line. Three things are refused or undone, since they would
break the check rather than the user's code: a file or package beside the module named like a
library keras-parity imports (a learner's keras.py would stand in for Keras), and what the import
does to the working directory and to sys.path (put back as they were once it ran).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import traceback
from pathlib import Path

from parity.errors import ParityInputError, arg, first_line
from parity.user_code.fence import importing, real_interrupt

__all__ = ["SHADOWED", "import_layers", "shadowing", "tensorflow_env_defaults"]

# Top-level names keras-parity imports itself: a module or package of the user's by one of these names, on the
# path ahead of the library, would be imported in the library's place (by us, by TensorFlow, by a worker).
SHADOWED = ("keras", "tensorflow", "numpy", "pandas", "matplotlib", "parity", "pyarrow", "tqdm")



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
        user = [f for f in frames if "importlib" not in f.filename and not f.filename.endswith("fence.py")] or frames
        where = f"{Path(user[-1].filename).name}, line {user[-1].lineno}" if user else source
    message = exc.msg if isinstance(exc, SyntaxError) else first_line(exc)  # str(SyntaxError) repeats `where`
    return ParityInputError(f"{arg('layers')} {source} failed to import: {type(exc).__name__}: {message} ({where})")


def shadowing(folder: Path) -> str | None:
    """The first file or package in `folder` that would stand in for a library keras-parity imports; None if none."""
    for name in SHADOWED:
        for suffix in importlib.machinery.all_suffixes():
            for file, shown in ((folder / f"{name}{suffix}", f"{name}{suffix}"),
                                (folder / name / f"__init__{suffix}", f"{name}/ (a package)")):
                if file.is_file() and not _is_the_library(name, file):
                    return shown
    return None


def _is_the_library(name: str, file: Path) -> bool:
    """The file is the library itself, already imported from there (keras-parity run from its own source tree)."""
    loaded = getattr(sys.modules.get(name), "__file__", None)
    return loaded is not None and Path(loaded).resolve() == file.resolve()


def _refuse_shadows(folder: Path, source: str) -> None:
    found = shadowing(folder)
    if found is not None:
        library = found.split(".")[0].split("/")[0]
        raise ParityInputError(f"{arg('layers')} {source}: its folder {folder} holds {found}, which Python would import "
                               f"in place of the {library} library that keras-parity uses; rename it")


@contextlib.contextmanager
def _restored():
    """The working directory and sys.path as they are now, put back after the user's module ran."""
    cwd, path = os.getcwd(), list(sys.path)
    with importing():  # os.chdir allowed, ours included
        try:
            yield
        finally:
            sys.path[:] = path
            if os.getcwd() != cwd:
                os.chdir(cwd)


def _is_path(source: str, path: Path) -> bool:
    return source.endswith(".py") or os.sep in source or "/" in source or path.exists()


def import_layers(source: str):
    """Import a .py path (as a script would be) or a dotted module name; errors are ParityInputError.

    A file that imports its own package (the book's layout: common/layers.py does `from common.functions
    import *`) is imported again from the folder that holds that package.
    """
    if source == "":
        raise ParityInputError(f"{arg('layers')} must be a .py file or a dotted module name (received: '')")
    path = Path(source)
    tensorflow_env_defaults()
    if _is_path(source, path):
        if path.is_dir():
            raise ParityInputError(f"{arg('layers')} {source} is a folder, not a file; give a .py file or a dotted "
                                   "module name")
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
    _refuse_shadows(Path.cwd(), source)
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))  # as `python -m` does
    try:
        with _restored():
            return importlib.import_module(source)
    except ModuleNotFoundError as exc:
        if exc.name == source.split(".")[0] or exc.name == source:
            raise ParityInputError(f"{arg('layers')} module {source} not found from {Path.cwd()} "
                             "(give a .py path, or run from the folder that holds the module)") from None
        raise _import_error(source, exc) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) and real_interrupt():
            raise
        raise _import_error(source, exc) from None


def _import_file(path: Path, folder: Path, source: str):
    """Run a .py file as a module, with `folder` first on sys.path; a ModuleNotFoundError is left to the caller."""
    _refuse_shadows(folder, source)
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))  # as for a script: its own folder comes first
    name = f"parity_user_layers_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with _restored():
            spec.loader.exec_module(module)
    except BaseException as exc:  # a SystemExit or KeyboardInterrupt from the module is its failure too
        sys.modules.pop(name, None)
        if isinstance(exc, ModuleNotFoundError) or (isinstance(exc, KeyboardInterrupt) and real_interrupt()):
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
    _refuse_shadows(root, source)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        with _restored():
            return importlib.import_module(dotted)
    except BaseException as again:
        if isinstance(again, KeyboardInterrupt) and real_interrupt():
            raise
        raise ParityInputError(_import_error(source, again).args[0] + hint) from None


def _under(module, folder: Path) -> bool:
    """Whether an imported module or package was loaded from `folder`."""
    places = [getattr(module, "__file__", None), *list(getattr(module, "__path__", []))]
    return any(p and Path(p).resolve().is_relative_to(folder.resolve()) for p in places)
