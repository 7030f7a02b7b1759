"""Classes a user's module defines under names the tool does not map, and the refusal that keeps a reference
from silently standing in for one of them.

A class with `forward` and `backward` is layer-like; one with `update` is optimizer-like. Under a book name
(`Affine`, `ReLU`, `Momentum`, ...), or one of the book's other layers that no run builds (`Dropout`,
`Convolution`, ...), it is mapped or has nothing to map to. Any other name (`Dense`, `nefterovmomentumSGD`) is
unmapped: when the run would use a reference where such a class could serve, the run is refused before any
work, naming the class and how to map it (`--class Affine=Dense`, `[classes]`, `parity.check(..., Affine=Dense)`).
"""

from __future__ import annotations

import difflib
import inspect
import sys
import sysconfig
from pathlib import Path

from parity.errors import ParityInputError, arg, arg_given
from parity.settings.optimizer_registry import OPTIMIZERS
from parity.settings.spec import LAYER_NAMES

__all__ = ["BOOK_OTHER_CLASSES", "layer_like", "optimizer_like", "unmapped_classes", "how_to_map",
           "refuse_layer_substitutes", "refuse_optimizer_substitute"]

# Classes of the book (both volumes) that no run builds: never a stand-in's candidate.
BOOK_OTHER_CLASSES = ("Dropout", "BatchNormalization", "Convolution", "Pooling", "MulLayer", "AddLayer", "MatMul",
                      "Softmax", "SigmoidWithLoss", "Embedding", "EmbeddingDot", "NegativeSamplingLoss",
                      "UnigramSampler", "RNN", "LSTM", "GRU", "Trainer")
_LOSSES = ("SoftmaxWithLoss", "MeanSquaredError")  # forward(x, t); the other layers take forward(x)
_INSTALLED = tuple(str(Path(p).resolve()) for p in {sysconfig.get_paths()[k] for k in ("stdlib", "purelib", "platlib")})


def layer_like(cls: type) -> bool:
    return callable(getattr(cls, "forward", None)) and callable(getattr(cls, "backward", None))


def optimizer_like(cls: type) -> bool:
    return callable(getattr(cls, "update", None)) and not layer_like(cls)


def _installed(cls: type) -> bool:
    """Whether the class comes from Python itself or an installed package (torch's Function has forward too)."""
    if cls.__module__.split(".")[0] == "parity":  # the book's reference classes, imported under another name
        return True
    path = getattr(sys.modules.get(cls.__module__), "__file__", None)
    return path is not None and str(Path(path).resolve()).startswith(_INSTALLED)


def unmapped_classes(namespace: dict, mapped: list[type]) -> dict[str, type]:
    """Name -> class: the layer-like and optimizer-like classes under names the tool does not map.

    Not counted: a class mapped by name, one a mapped or book-named class derives from (`class Affine(Layer)`,
    `from common.layers import Affine as Base`), and one from Python, an installed package or this tool."""
    known = {n.lower() for n in (*LAYER_NAMES, *BOOK_OTHER_CLASSES, *(i.book_class for i in OPTIMIZERS.values()))}
    known |= {"time" + n.lower() for n in BOOK_OTHER_CLASSES + LAYER_NAMES}  # the second volume's TimeAffine, ...
    used = [*mapped, *(obj for name, obj in namespace.items() if inspect.isclass(obj) and name.lower() in known)]
    bases = {id(base) for cls in used for base in cls.__mro__}
    return {name: obj for name, obj in namespace.items()
            if inspect.isclass(obj) and name.lower() not in known and id(obj) not in bases
            and (layer_like(obj) or optimizer_like(obj)) and not _installed(obj)}


def _forward_takes(cls: type, count: int) -> bool:
    """Whether `cls().forward` binds `count` positional arguments (True where Python cannot say)."""
    try:
        signature = inspect.signature(cls.forward)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(None, *range(count))
    except TypeError:
        return False
    return True


def how_to_map(pairs: list[tuple[str, str]]) -> str:
    """How to map (book class, the user's class) pairs, as the door spells the flag, and in a TOML file."""
    flags = " ".join(arg_given("classes", f"{b}={y}") for b, y in pairs)
    table = ", ".join(f'{b} = "{y}"' for b, y in pairs)
    one = len(pairs) == 1
    them = "it" if one else "them"
    return f"map {them}: {flags} (a TOML file: [classes] {table}), or rename {them}"


def refuse_layer_substitutes(unmapped: dict[str, type], provided: dict[str, type], used: set[str], label: str,
                             explicit: bool) -> None:
    """Refuse the run when a reference would stand in for a book layer this run uses while the module has an
    unmapped layer-like class that could serve there (its forward takes what that layer's does).

    `provided` are the user's classes by book name; `explicit` says the user mapped layer classes by name,
    so what they left to the reference is their choice (and is said in the verdict's first lines)."""
    missing = [n for n in LAYER_NAMES if n in used and n not in provided]
    if explicit or not missing:
        return
    candidates = {name: [n for n in missing if _forward_takes(cls, 2 if n in _LOSSES else 1)]
                  for name, cls in unmapped.items() if layer_like(cls)}
    candidates = {name: slots for name, slots in candidates.items() if slots}
    if not candidates:
        return
    names, slots = list(candidates), list(dict.fromkeys(s for ss in candidates.values() for s in ss))
    pairs, taken = [], set()
    for name, fits in candidates.items():  # each to the free slot its name is most like (Dense: Affine, first)
        free = [s for s in fits if s not in taken]
        if free:
            slot = max(free, key=lambda s: difflib.SequenceMatcher(None, s.lower(), name.lower()).ratio())
            pairs.append((slot, name))
            taken.add(slot)
    one = len(names) == 1
    raise ParityInputError(
        f"{label} defines {', '.join(names)} (forward and backward) under {'a name' if one else 'names'} the tool "
        f"does not map, and this run would use the reference {', '.join(slots)} in {'its' if one else 'their'} "
        f"place without checking {'it' if one else 'them'}; {how_to_map(pairs)}. The book's names: "
        f"{', '.join(LAYER_NAMES)} (any case)")


def refuse_optimizer_substitute(unmapped: dict[str, type], optimizer: str, label: str, classes: dict[str, type],
                                has_layers: bool) -> None:
    """Refuse the run when the module has no class for the run's optimizer yet defines optimizer-like classes
    under unmapped names (the book's optimizer would step in place of the one the user meant), or has no layers
    either (nothing of the user's would be checked).

    Plain SGD, the default, is refused only for a module without layers."""
    others = [name for name, cls in unmapped.items() if optimizer_like(cls)]
    book = OPTIMIZERS[optimizer].book_class
    names = {info.book_class.lower(): info.name for info in OPTIMIZERS.values()}
    theirs = [name for name, cls in classes.items() if name.lower() in names and optimizer_like(cls)]
    if has_layers and (optimizer == "sgd" or not others):
        return
    if not others and not theirs:
        return  # neither layers nor optimizers: the loader has refused the module already
    one = len(others) == 1
    said = f"{label} has no class {book} for {arg_given('optimizer', optimizer)}"
    if others:
        raise ParityInputError(
            f"{said}, but defines {', '.join(others)} (update) under {'a name' if one else 'names'} the tool does not "
            f"map: the run would step with the book's {book} instead of yours; {how_to_map([(book, others[0])])}. "
            f"The book's names: {', '.join(i.book_class for i in OPTIMIZERS.values())} (any case); "
            f"{arg('optimizer')} picks which one the run steps with")
    raise ParityInputError(
        f"{said} and no layer classes: nothing of yours would be checked. Its optimizers: {', '.join(theirs)}; "
        f"pick one with {arg_given('optimizer', names[theirs[0].lower()])}")
