"""The book's layer protocol: which of its classes a namespace provides, and whether the harness can drive
each as the book's layers are driven (constructor, forward, backward), checked before any work."""

from __future__ import annotations

import difflib
import inspect
import re

from parity.errors import ParityInputError, arg_given
from parity.settings.optimizer_registry import OPTIMIZERS
from parity.settings.spec import IMAGE_LAYERS, LAYER_NAMES, MODE_LAYERS
from parity.user_code.train_flag import train_flag_problem

__all__ = ["LAYER_NAMES", "IMAGE_LAYERS", "CALLS", "classes_of", "kit_from_namespace", "construct"]


def kit_from_namespace(namespace, label: str,
                       unmapped: dict[str, type] | None = None) -> tuple[dict[str, type], list[str]]:
    """The book's classes found in a namespace (a module's vars, a dict, `globals()`), checked before any work.

    A namespace with none of the layers but one of the book's optimizers is fine (its layers are the
    reference's); the optimizer itself is checked when the run picks it. Names match case-insensitively
    (`ReLU` is `Relu`). Each class must have forward and backward, and the harness must be able to drive
    it: its constructor and methods must accept the calls the book's layers take (CALLS). Every class's
    problems are named in one ParityInputError, with the likely intended method name for a typo. `label`
    names the argument (`--layers x.py`, `layers=`); `unmapped` are the classes with the protocol under other
    names (`Dense`), named with how to map one when the namespace has none of the book's.
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
        hint = ""
        if unmapped:
            name, cls = next(iter(unmapped.items()))
            book = "Affine" if callable(getattr(cls, "forward", None)) else "SGD"
            hint = (f"; {', '.join(unmapped)} {'has' if len(unmapped) == 1 else 'have'} the protocol under a name "
                    f"the tool does not map: map one to the book class it is, such as "
                    f"{arg_given('classes', f'{book}={name}')}")
        raise ParityInputError(f"{label} has none of the classes {', '.join(LAYER_NAMES)} "
                               f"(nor an optimizer: {optimizers}; names match case-insensitively; found: {found})"
                               + hint)
    return kit, list(kit)


def classes_of(namespace) -> dict[str, type]:
    """Every class in a namespace, by the name it has there (the pipeline picks the run's optimizer from them)."""
    return {name: obj for name, obj in dict(namespace).items() if inspect.isclass(obj)}


# The calls the harness makes, per book class: the constructor's arguments, forward's, backward's.
# A loss layer's backward is called as backward(1), or as backward() where it takes no argument.
CALLS = {
    "Affine": (("W", "b"), ("x",), ("dout",)),
    "Convolution": (("W", "b", "stride", "pad"), ("x",), ("dout",)),
    "Pooling": (("pool_h", "pool_w", "stride", "pad"), ("x",), ("dout",)),
    "Relu": ((), ("x",), ("dout",)),
    "Sigmoid": ((), ("x",), ("dout",)),
    "SoftmaxWithLoss": ((), ("x", "t"), ("dout=1",)),
    "MeanSquaredError": ((), ("y", "t"), ("dout=1",)),
    # The book's chapter 6, constructed as its MultiLayerNetExtend does; forward's flag as train_flag.forward_call
    # finds it (train_flg, training, ..., or a second positional argument).
    "Dropout": (("dropout_ratio",), ("x", "train_flg"), ("dout",)),
    "BatchNormalization": (("gamma", "beta", "momentum", "running_mean", "running_var"), ("x", "train_flg"), ("dout",)),
}
# An image layer's stride and pad go by name where its constructor names them (Pooling(pool_h, pool_w, pad=0,
# stride=2) is driven too), by position otherwise: the first two arguments always by position.
_SPELLINGS = {"stride": ("stride", "strides"), "pad": ("pad", "padding")}


def construct(cls: type, canonical: str, *values) -> tuple[tuple, dict]:
    """(args, kwargs) to build `cls` as the book class `canonical` from the values CALLS names, in its order."""
    names = CALLS[canonical][0]
    if canonical not in IMAGE_LAYERS:
        return values, {}
    found = _signature(cls)
    if found is None:
        return values, {}
    params = found.parameters
    keyword = {name: next((p for p in params if p.lower() in _SPELLINGS[name]), None) for name in names[2:]}
    if not all(keyword.values()):
        return values, {}
    return values[:2], {keyword[name]: value for name, value in zip(names[2:], values[2:])}


# Constructor parameter names that mean a size, not an array: Affine(input_size, output_size).
_SIZE_NAME = re.compile(r"size|dim|units|features|neurons|nodes|shape|fan|num|width|hidden|^n_|^n$|^in$|^out$")


def _problems(cls: type, canonical: str) -> list[str]:
    """What keeps the harness from driving `cls` as the book class `canonical`; empty when nothing."""
    missing = [m for m in ("forward", "backward") if not callable(getattr(cls, m, None))]
    out = [_missing_methods(cls, missing)] if missing else []
    out += _constructor_problem(cls, canonical)
    for method in ("forward", "backward"):
        if method in missing:
            continue
        if method == "forward" and canonical in MODE_LAYERS:  # told its mode: refused when forward takes no flag
            out += [p for p in [train_flag_problem(cls, canonical)] if p]
        else:
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
    sizes = canonical in ("Affine", "Convolution") and any(_SIZE_NAME.search(n.lower()) for n in names[:2])
    args, kwargs = construct(cls, canonical, *range(len(init)))
    if not sizes and _accepts(found, len(args), kwargs):
        return []
    what = (f"takes sizes and makes its own weights; the harness hands {canonical} the weights to use" if sizes
            else "cannot be called as the harness calls it")
    shapes = {"Affine": " with W (in, out) and b (out,), as the book's common/layers.py does",
              "Convolution": " with W (FN, C, FH, FW) and b (FN,), as the book's common/layers.py does"}
    shapes = shapes.get(canonical, "")
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


def _accepts(sig: inspect.Signature, count: int, kwargs: dict | None = None) -> bool:
    """Whether a call with `count` positional arguments (and these keywords) binds."""
    try:
        sig.bind(*range(count), **(kwargs or {}))
    except TypeError:
        return False
    return True


def _shown(sig: inspect.Signature) -> str:
    """(self, a, b): a signature as the user wrote it."""
    inner = str(sig)[1:-1]
    return f"(self, {inner})" if inner else "(self)"
