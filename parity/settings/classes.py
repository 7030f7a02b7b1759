"""The classes a user maps to the book's by name: `--class Affine=Dense` (repeatable), a TOML `[classes]`
table, validated before any work. The loader (parity.user_code.loader) looks each name up in the user's module."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping

from parity.errors import ParityInputError, arg_given
from parity.settings.optimizer_registry import OPTIMIZERS
from parity.settings.spec import LAYER_NAMES

__all__ = ["MAPPABLE", "class_mapping", "flag_pair"]

# The classes a user may map to one of theirs: the book's layers and optimizers.
MAPPABLE = (*LAYER_NAMES, *(info.book_class for info in OPTIMIZERS.values()))


def flag_pair(text: str) -> tuple[str, str]:
    """`Affine=Dense` (one --class flag) as ("Affine", "Dense")."""
    key, equals, value = (part.strip() for part in str(text).partition("="))
    if not equals:
        raise ParityInputError(f"{arg_given('classes', text)} must be BOOK_CLASS=YOUR_CLASS, such as "
                               f"{arg_given('classes', 'Affine=Dense')}")
    return key, value


def class_mapping(table: Mapping, label: Callable[[str, str], str]) -> tuple[tuple[str, str], ...]:
    """Book class -> the user's class name, each key one of MAPPABLE (any case; kept in the book's spelling), each
    value a Python name. `label(key, value)` says where the pair was written."""
    canonical = {name.lower(): name for name in MAPPABLE}
    out = {}
    for key, value in table.items():
        book = canonical.get(str(key).lower())
        if book is None:
            close = difflib.get_close_matches(str(key).lower(), list(canonical), n=1)
            hint = f"; did you mean {canonical[close[0]]}?" if close else ""
            raise ParityInputError(f"{label(key, value)}: {key} is none of the book's classes "
                                   f"({', '.join(MAPPABLE)}){hint}")
        if not isinstance(value, str) or not value.isidentifier():
            raise ParityInputError(f"{label(key, value)}: the class to map must be a class name of your module "
                                   f"(received: {value!r})")
        out[book] = value
    return tuple(out.items())
