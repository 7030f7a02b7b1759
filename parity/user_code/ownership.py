"""Which classes in a learner's namespace are the learner's own: only those are checked.

A class imported into a notebook or module (`from keras.optimizers import SGD`, `from common.layers import *`)
is not the learner's: it would otherwise stand in for one of the book's classes by its name alone. A class is
the learner's when it was defined in the notebook or module itself (its `__module__` is the namespace's
`__name__`), or in a module file directly beside it (a helper module in the learner's own folder). Classes
given by name (`parity.check(Affine=Affine)`) and dicts without a `__name__` are the learner's choice: kept.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from parity.errors import ParityInputError
from parity.settings.optimizer_registry import OPTIMIZERS
from parity.user_code.notebook import NOTES
from parity.user_code.protocol import LAYER_NAMES

__all__ = ["learners_own"]

BOOK_NAMES = {n.lower() for n in (*LAYER_NAMES, *(info.book_class for info in OPTIMIZERS.values()))}


def _file_of(cls: type) -> Path | None:
    where = getattr(sys.modules.get(cls.__module__), "__file__", None)
    return Path(where).resolve() if where else None


def _home(namespace: dict) -> tuple[str | None, Path | None]:
    """(the namespace's module name, the folder whose modules count as the learner's); (None, None): keep all."""
    name = namespace.get("__name__")
    if not isinstance(name, str):
        return None, None
    if name == "__main__" and "__file__" not in namespace:  # a notebook's kernel or an interactive session
        return name, Path.cwd().resolve()
    source = namespace.get("__file__")
    return name, (Path(source).resolve().parent if source else None)


def _is_own(cls: type, name: str, folder: Path | None) -> bool:
    if cls.__module__ == name:
        return True
    where = _file_of(cls)
    return folder is not None and where is not None and where.parent == folder


def learners_own(namespace, label: str) -> tuple[dict, list[dict]]:
    """(the namespace without the classes imported into it, finding records: the loader's notes, and which
    classes were ignored). A namespace whose only book classes were imported is bad input, naming them."""
    namespace = dict(namespace)
    notes = list(namespace.pop(NOTES, None) or [])
    name, folder = _home(namespace)
    if name is None:
        return namespace, notes
    ignored = {key: obj for key, obj in namespace.items()
               if inspect.isclass(obj) and not _is_own(obj, name, folder)}
    if not ignored:
        return namespace, notes
    kept = {k: v for k, v in namespace.items() if k not in ignored}
    book = {k: c for k, c in ignored.items() if k.lower() in BOOK_NAMES}
    own_book = [k for k, v in kept.items() if inspect.isclass(v) and k.lower() in BOOK_NAMES]
    if book and not own_book:
        raise ParityInputError(
            f"{label} defines none of the book's classes itself; it imports {_listed(book)}: only classes defined "
            "in the notebook or module itself, or in a module file beside it, are checked as yours "
            + (f"(give the file that defines them: {_file_of(next(iter(book.values())))})"
               if _file_of(next(iter(book.values()))) else ""))
    others = {k: c for k, c in ignored.items() if k not in book}
    text = _listed(book) + ("; " if book and others else "") + (
        f"{len(others)} other imported class{'es' * (len(others) != 1)} ({', '.join(sorted(others))})" if others else "")
    notes.append({"code": "not_yours", "severity": "warning" if book else "info", "phase": None,
                  "count": len(ignored), "ignored": sorted(ignored),
                  "message": f"not checked, as they were imported, not defined here: {text}"
                             + ("; the reference class of each of these book names stands in unless you define it"
                                if book else ""),
                  "fix": "define the class in your notebook or module, or in a module file beside it" if book else ""})
    return kept, notes


def _listed(classes: dict[str, type]) -> str:
    return ", ".join(f"{k} (from {c.__module__})" for k, c in sorted(classes.items()))
