"""The user's chapter-6 classes (Dropout, BatchNormalization), wherever the loader put them: under their book names
in the kit where the architecture lists them, else among every class the module defines (names match in any case);
and the refusal, before any work, of one whose forward takes no train flag."""

from __future__ import annotations

from parity.errors import ParityInputError
from parity.user_code.train_flag import MODE_LAYERS, train_flag_problem

__all__ = ["mode_classes", "refuse_without_train_flag"]


def mode_classes(layers: dict[str, type], classes: dict[str, type]) -> dict[str, type]:
    """Book name -> the user's class, for each chapter-6 layer the user defines (the kit's first, then by name)."""
    found = {}
    for name in MODE_LAYERS:
        if name in layers:
            found[name] = layers[name]
            continue
        same = [cls for key, cls in classes.items() if key.lower() == name.lower()]
        if len(same) == 1:
            found[name] = same[0]
    return found


def refuse_without_train_flag(found: dict[str, type], label: str) -> None:
    """ParityInputError naming the signature found and the one expected, for a class that can't be told its mode."""
    problems = [p for p in (train_flag_problem(cls, name) for name, cls in found.items()) if p]
    if problems:
        raise ParityInputError(f"{label}: " + "; ".join(problems))
