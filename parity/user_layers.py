"""Load a user's layers module: a .py path (run as a script would be) or a dotted module name.

This is code the user chose to run, so it is imported as is; what is checked is its shape: which
of the book's classes it provides, that each has forward and backward, and that the harness can
call them as the book's layers are called (every door calls `kit_from_namespace`).
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import re
import sys
import traceback
from pathlib import Path

from parity.errors import ParityInputError, arg
from parity.optimizer_settings import OPTIMIZERS

__all__ = ["LAYER_NAMES", "classes_of", "import_layers", "kit_from_namespace", "load_layers", "load_module"]

LAYER_NAMES = ("Affine", "Relu", "Sigmoid", "SoftmaxWithLoss", "MeanSquaredError")


def _import_error(source: str, exc: BaseException) -> ParityInputError:
    if isinstance(exc, SyntaxError):
        where = f"{Path(exc.filename or source).name}, line {exc.lineno}"
    else:
        frames = traceback.extract_tb(exc.__traceback__)
        user = [f for f in frames if "importlib" not in f.filename] or frames
        where = f"{Path(user[-1].filename).name}, line {user[-1].lineno}" if user else source
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return ParityInputError(f"{arg('layers')} {source} failed to import: {type(exc).__name__}: {message} ({where})")


def import_layers(source: str):
    """Import a .py path (as a script would be) or a dotted module name; errors are ParityInputError.

    A file that imports its own package (the book's layout: common/layers.py does `from common.functions
    import *`) is imported again from the folder that holds that package.
    """
    path = Path(source)
    if source.endswith(".py") or path.exists():
        if not path.is_file():
            raise ParityInputError(f"{arg('layers')} file not found (received: {source}); give a .py file or a dotted module name")
        if path.suffix != ".py":
            raise ParityInputError(f"{arg('layers')} must be a .py file or a dotted module name (received: {source})")
        try:
            return _import_file(path, path.resolve().parent, source)
        except ModuleNotFoundError as exc:
            return _import_from_package_root(path, source, exc)
    if not all(part.isidentifier() for part in source.split(".")):
        raise ParityInputError(f"{arg('layers')} must be a .py file or a dotted module name (received: {source})")
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
        raise ParityInputError(str(_import_error(source, exc)) + hint) from None
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        return importlib.import_module(dotted)
    except BaseException as again:
        if isinstance(again, KeyboardInterrupt):
            raise
        raise ParityInputError(str(_import_error(source, again)) + hint) from None


def _under(module, folder: Path) -> bool:
    """Whether an imported module or package was loaded from `folder`."""
    places = [getattr(module, "__file__", None), *list(getattr(module, "__path__", []))]
    return any(p and Path(p).resolve().is_relative_to(folder.resolve()) for p in places)


def load_layers(source: str) -> tuple[dict[str, type], list[str]]:
    """(kit of the user's classes by canonical name, the canonical names they provide), from a .py
    path or a dotted module name."""
    return kit_from_namespace(vars(import_layers(source)), f"{arg('layers')} {source}")


def load_module(source: str) -> tuple[dict[str, type], list[str], dict[str, type]]:
    """load_layers, and every class of the module (its optimizers among them)."""
    namespace = vars(import_layers(source))
    kit, names = kit_from_namespace(namespace, f"{arg('layers')} {source}")
    return kit, names, classes_of(namespace)


def kit_from_namespace(namespace, label: str) -> tuple[dict[str, type], list[str]]:
    """The book's classes found in a namespace (a module's vars, a dict, `globals()`), checked before any work.

    A namespace with none of the layers but one of the book's optimizers is fine (its layers are the
    reference's); the optimizer itself is checked when the run picks it. Names match case-insensitively
    (`ReLU` is `Relu`). Each class must have forward and backward, and the harness must be able to drive
    it: its constructor and methods must accept the calls the book's layers take (CALLS). Every class's
    problems are named in one ParityInputError, with the likely intended method name for a typo. `label`
    names the argument (`--layers x.py`, `layers=`).
    """
    classes = {name.lower(): obj for name, obj in dict(namespace).items() if inspect.isclass(obj)}
    kit, problems = {}, []
    for canonical in LAYER_NAMES:
        cls = classes.get(canonical.lower())
        if cls is None:
            continue
        problems += _problems(cls, canonical)
        kit[canonical] = cls
    if problems:
        methods = " (the book's layers have forward and backward)" if any(" method" in p for p in problems) else ""
        raise ParityInputError(f"{label}: " + "; ".join(problems) + methods)
    if not kit and not any(info.book_class.lower() in classes for info in OPTIMIZERS.values()):
        found = ", ".join(sorted(obj.__name__ for obj in classes.values())) or "no classes"
        optimizers = ", ".join(info.book_class for info in OPTIMIZERS.values())
        raise ParityInputError(f"{label} has none of the classes {', '.join(LAYER_NAMES)} "
                               f"(nor an optimizer: {optimizers}; names match case-insensitively; found: {found})")
    return kit, list(kit)


def classes_of(namespace) -> dict[str, type]:
    """Every class in a namespace, by the name it has there (the pipeline picks the run's optimizer from them)."""
    return {name: obj for name, obj in dict(namespace).items() if inspect.isclass(obj)}


# The calls the harness makes, per book class: the constructor's arguments, forward's, backward's.
# A loss layer's backward is called as backward(1), or as backward() where it takes no argument.
CALLS = {
    "Affine": (("W", "b"), ("x",), ("dout",)),
    "Relu": ((), ("x",), ("dout",)),
    "Sigmoid": ((), ("x",), ("dout",)),
    "SoftmaxWithLoss": ((), ("x", "t"), ("dout=1",)),
    "MeanSquaredError": ((), ("y", "t"), ("dout=1",)),
}
# Constructor parameter names that mean a size, not an array: Affine(input_size, output_size).
_SIZE_NAME = re.compile(r"size|dim|units|features|neurons|nodes|shape|fan|num|width|hidden|^n_|^n$|^in$|^out$")


def _problems(cls: type, canonical: str) -> list[str]:
    """What keeps the harness from driving `cls` as the book class `canonical`; empty when nothing."""
    missing = [m for m in ("forward", "backward") if not callable(getattr(cls, m, None))]
    out = [_missing_methods(cls, missing)] if missing else []
    out += _constructor_problem(cls, canonical)
    for method in ("forward", "backward"):
        if method not in missing:
            out += _method_problem(cls, canonical, method)
    return out


def _missing_methods(cls: type, missing: list[str]) -> str:
    own = [n for n in dir(cls) if not n.startswith("__") and callable(getattr(cls, n, None))]
    hints = [f"rename `{near[0]}` to `{m}`" for m in missing
             if (near := difflib.get_close_matches(m, own, n=1, cutoff=0.6))]
    return f"class {cls.__name__} has no {' or '.join(missing)} method" + (f" ({', '.join(hints)}?)" if hints else "")


def _constructor_problem(cls: type, canonical: str) -> list[str]:
    init = CALLS[canonical][0]
    found = _signature(cls)
    if found is None:
        return []
    names = [p.name for p in found.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    sizes = canonical == "Affine" and any(_SIZE_NAME.search(n.lower()) for n in names[:2])
    if not sizes and _accepts(found, len(init)):
        return []
    what = ("takes sizes and makes its own weights; the harness hands Affine the weights to use" if sizes
            else "cannot be called as the harness calls it")
    shapes = " with W (in, out) and b (out,), as the book's common/layers.py does" if canonical == "Affine" else ""
    return [f"class {cls.__name__} has __init__{_shown(found)}: it {what}: {canonical}({', '.join(init)}){shapes}"]


def _method_problem(cls: type, canonical: str, method: str) -> list[str]:
    args = CALLS[canonical][1 if method == "forward" else 2]
    bound = not isinstance(inspect.getattr_static(cls, method), staticmethod)
    found = _signature(getattr(cls, method), method=bound)
    if found is None:
        return []
    loss_backward = args == ("dout=1",)  # called as backward(1), or backward() where it takes nothing
    if (_accepts(found, 1) or _accepts(found, 0)) if loss_backward else _accepts(found, len(args)):
        return []
    why = (f" after forward({', '.join(CALLS[canonical][1])}), as the book's loss layers keep what backward "
           "needs from forward") if loss_backward else ""
    return [f"class {cls.__name__} has {method}{_shown(found)}: the harness calls {method}({', '.join(args)}){why}"]


def _signature(obj, method: bool = False) -> inspect.Signature | None:
    """obj's call signature, without `self` for a method; None where Python cannot say (a builtin)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = list(sig.parameters.values())
    if method and params and params[0].kind in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        sig = sig.replace(parameters=params[1:])
    return sig


def _accepts(sig: inspect.Signature, count: int) -> bool:
    """Whether a call with `count` positional arguments binds."""
    try:
        sig.bind(*range(count))
    except TypeError:
        return False
    return True


def _shown(sig: inspect.Signature) -> str:
    """(self, a, b): a signature as the user wrote it."""
    inner = str(sig)[1:-1]
    return f"(self, {inner})" if inner else "(self)"
