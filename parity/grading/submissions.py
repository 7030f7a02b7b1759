"""What `parity grade` checks: the submissions named on its command line, found without importing any of them.

A submission is a .py file or a .ipynb notebook, or a student's folder (`alice_1001_assignsubmission_file/`, as
Moodle and Canvas download them) holding one: the folder is one submission, its helper modules part of it, and
its entry is the file that defines (or imports from beside it) the most of the book's classes, read from the
source. A folder named on the command line holds submissions: its files and its students' folders, sorted.
`.ipynb_checkpoints/`, `__pycache__/` and hidden folders are never looked into.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from parity.errors import ParityInputError
from parity.settings.optimizer_registry import OPTIMIZERS
from parity.user_code.protocol import LAYER_NAMES

__all__ = ["Submission", "find_submissions", "RESERVED", "SUFFIXES"]

SUFFIXES = (".py", ".ipynb")
RESERVED = {"gradebook.csv", "gradebook.html", "gradebook.json", "gradescope", "prairielearn"}
_BOOK = {n.lower() for n in (*LAYER_NAMES, *(info.book_class for info in OPTIMIZERS.values()))}
_SKIPPED = {".ipynb_checkpoints", "__pycache__"}


@dataclass(frozen=True)
class Submission:
    given: str  # the path as the teacher gave it (shown in the gradebook and recorded in the report)
    path: str  # the same file, absolute: workers on this machine (or a shared filesystem) import it from here
    folder: str  # its report folder's name in the gradebook


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SUFFIXES and p.name != "__init__.py"
                  and not p.name.startswith("."))


def _students(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in _SKIPPED and not p.name.startswith(".")
                  and _files(p))


def _source_of(path: Path) -> str:
    """A file's Python: a .py file's text, a notebook's code cells (roughly: IPython lines left as they are)."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".py":
            return text
        import json

        cells = json.loads(text).get("cells", [])
        return "\n".join("".join(c.get("source", "")) if isinstance(c.get("source"), list) else str(c.get("source", ""))
                         for c in cells if isinstance(c, dict) and c.get("cell_type") == "code")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return ""


def _book_classes(path: Path, siblings: set[str]) -> int:
    """How many of the book's classes a file defines, or imports from a module beside it."""
    found = {m.lower() for m in re.findall(r"^class[ \t]+(\w+)", _source_of(path), re.MULTILINE)}
    try:
        tree = ast.parse(_source_of(path)) if path.suffix == ".py" else None
    except SyntaxError:
        tree = None
    for node in ast.walk(tree) if tree else ():
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in siblings:
            found |= {a.asname.lower() if a.asname else a.name.lower() for a in node.names}
    return len(found & _BOOK)


def _entry(folder: Path) -> Path:
    """A student's folder's entry file: the most book classes; then a file named layers*, a notebook, by name."""
    files = _files(folder)
    siblings = {p.stem for p in files if p.suffix == ".py"}
    return max(files, key=lambda p: (_book_classes(p, siblings), p.stem.lower().startswith("layers"),
                                     p.suffix == ".ipynb", [-ord(c) for c in p.name]))


def _found(given: str) -> list[tuple[str, Path, Path]]:
    """(as shown, the file to check, the name its report folder is made from: a file's path less its suffix, a
    student's folder) for one command-line argument."""
    path = Path(given)
    if path.is_dir():
        files, students = _files(path), _students(path)
        if not files and not students:
            raise ParityInputError(f"SUBMISSIONS: the folder {given} holds no .py or .ipynb files, nor students' "
                                   f"folders of them (received: {given}); give .py or .ipynb files, or folders that "
                                   "hold them")
        return [(str(path / p.name), p, p.with_suffix("")) for p in files] + \
            [(str(path / s.name / _entry(s).name), _entry(s), s) for s in students]
    if path.is_file():
        if path.suffix not in SUFFIXES:
            raise ParityInputError(f"SUBMISSIONS must be .py or .ipynb files, or folders of them (received: {given})")
        return [(given, path, path.with_suffix(""))]
    raise ParityInputError(f"SUBMISSIONS: no such file or folder (received: {given})")


def find_submissions(paths: list[str]) -> list[Submission]:
    """The submissions named, each once, in order; a folder's files and students' folders sorted by name."""
    seen, unique = set(), []
    for given in paths:
        for shown, path, named in _found(given):
            if path.resolve() not in seen:
                seen.add(path.resolve())
                unique.append((shown, path.resolve(), named.resolve()))
    names = _folder_names([named for _, _, named in unique])
    return [Submission(shown, str(path), name) for (shown, path, _), name in zip(unique, names)]


def _folder_names(paths: list[Path]) -> list[str]:
    """Each name's last part (a file's stem, a student's folder); where they clash, as many parent folders as it
    takes ('alice--layers')."""
    depth = [1] * len(paths)

    def name(i: int) -> str:
        return "--".join(paths[i].parts[-depth[i]:])

    for _ in range(max(len(p.parts) for p in paths) if paths else 0):
        names = [name(i) for i in range(len(paths))]
        clash = [i for i, n in enumerate(names) if names.count(n) > 1 or n in RESERVED]
        if not clash:
            return names
        for i in clash:
            depth[i] = min(depth[i] + 1, len(paths[i].parts) - 1)
    names = [name(i) for i in range(len(paths))]
    return [n if names.count(n) == 1 and n not in RESERVED else f"{n}-{i + 1}" for i, n in enumerate(names)]
