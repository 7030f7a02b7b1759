"""A Jupyter notebook as a module: its definitions, cell by cell, never its top-level code.

From every code cell, in order, the imports, classes, functions and ALL_CAPS constants run in one module
namespace, a later definition replacing an earlier one as Restart & Run All would; training loops, data
loading and plots never run. IPython syntax (`%matplotlib inline`, `!pip install`) goes through IPython's
own transformer where IPython is installed (its calls are top-level code, so they are skipped too), and is
dropped otherwise; a `%%time` or `%%capture` cell keeps its body, which Jupyter runs in the namespace.

Each kept statement is compiled with the file name `layers.ipynb, cell 5`, cell counting every cell of the
file from 1, markdown included (the index Jupyter's and VS Code's cell lists show), so a traceback, a
finding's `where` and an error point into the notebook: `layers.ipynb, cell 5, line 3` (guard.place).
What was left out becomes finding records under NOTES in the namespace: a cell that does not parse, an
import that failed (each a warning naming its cell) and one info record listing the statements not run.
"""

from __future__ import annotations

import ast
import json
import linecache
import re
import sys
import types
from pathlib import Path

from parity.errors import ParityInputError, arg_given, first_line
from parity.settings.optimizer_registry import OPTIMIZERS
from parity.user_code.importer import tensorflow_env_defaults
from parity.user_code.protocol import LAYER_NAMES

__all__ = ["NOTES", "load_notebook", "cell_file"]

NOTES = "__parity_notes__"  # the namespace key under which the loader finds the notebook's finding records
BODY_MAGICS = ("%%time", "%%capture")  # cell magics whose body Jupyter runs as Python in the notebook's namespace
NEEDED = {n.lower() for n in LAYER_NAMES} | {info.book_class.lower() for info in OPTIMIZERS.values()}
_CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]*$")
_CLASS = re.compile(r"^[ \t]*class[ \t]+([A-Za-z_]\w*)", re.MULTILINE)
_SHELL = re.compile(r"^[ \t]*[%!]|\?[ \t]*$")  # line magics, shell escapes, `obj?` help


def cell_file(notebook: str, cell: int) -> str:
    """The file name a cell's code is compiled under: `layers.ipynb, cell 5`."""
    return f"{notebook}, cell {cell}"


def _fail(label: str, why: str) -> ParityInputError:
    return ParityInputError(f"{label} {why}")


def _code_cells(path: Path, label: str) -> list[tuple[int, str]]:
    """(cell number, source) of every code cell; a file that is not an nbformat 4 notebook is bad input."""
    from nbformat import reader

    if not path.is_file():
        raise _fail(label, "file not found; give a .py file, a .ipynb notebook or a dotted module name")
    try:
        text = path.read_text(encoding="utf-8")
        raw = json.loads(text)
    except UnicodeDecodeError:
        raise _fail(label, "is not a notebook: it is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise _fail(label, f"is not a notebook: it is not JSON ({exc.msg} at line {exc.lineno})") from None
    version = raw.get("nbformat") if isinstance(raw, dict) else None
    if version != 4:
        got = "no nbformat version" if version is None else f"nbformat {version}"
        raise _fail(label, f"is not an nbformat 4 notebook (it has {got}); save it from Jupyter, or convert it "
                           "with `jupyter nbconvert --to notebook --nbformat 4`")
    if not isinstance(raw.get("cells"), list) or not all(isinstance(c, dict) for c in raw["cells"]):
        raise _fail(label, "is not an nbformat 4 notebook: it has no list of cells")
    cells = reader.reads(text).cells  # one string per cell source, as nbformat joins them
    code = [(i, c.get("source") or "") for i, c in enumerate(cells, start=1) if c.get("cell_type") == "code"]
    if not code:
        raise _fail(label, "has no code cell: define your layers in code cells")
    return code


def _python(source: str) -> str | None:
    """A cell's text as Python with the same line numbers; None for a cell magic whose body is not Python."""
    first, _, rest = source.partition("\n")
    if first.startswith("%%"):
        if first.split()[0] not in BODY_MAGICS:
            return None
        inner = _python(rest)
        return None if inner is None else "\n" + inner
    dropped = "\n".join("" if _SHELL.search(line) else line for line in source.split("\n"))
    try:
        from IPython.core.inputtransformer2 import TransformerManager
    except ImportError:
        return dropped
    try:
        out = TransformerManager().transform_cell(source)
    except Exception:  # IPython could not make sense of it either: as without IPython
        return dropped
    return out if out.count("\n") >= source.count("\n") else dropped  # lines kept, so line numbers hold


def _keeps(node: ast.stmt) -> bool:
    """An import, a class, a function, an ALL_CAPS constant, or a try/if made only of those."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef, ast.Pass)):
        return True
    if isinstance(node, ast.Assign):
        return all(isinstance(t, ast.Name) and _CONSTANT.match(t.id) for t in node.targets)
    if isinstance(node, ast.AnnAssign):
        return node.value is not None and isinstance(node.target, ast.Name) and bool(_CONSTANT.match(node.target.id))
    if isinstance(node, ast.Try):
        blocks = [node.body, node.orelse, node.finalbody, *(h.body for h in node.handlers)]
        return all(_keeps(n) for block in blocks for n in block)
    if isinstance(node, ast.If):
        return all(_keeps(n) for n in (*node.body, *node.orelse))
    return False


def _defines(node: ast.stmt) -> str | None:
    return node.name if isinstance(node, ast.ClassDef) else None


class _Loader:
    """Runs the kept statements of each cell in turn into `module`, noting what it left out."""

    def __init__(self, source: str, module: types.ModuleType, label: str):
        self.source, self.module, self.label = source, module, label
        self.name = Path(source).name
        self.notes: list[dict] = []
        self.skipped: list[tuple[int, int, str]] = []  # (cell, line, the line as written)

    def where(self, cell: int, line: int) -> str:
        return f"{cell_file(self.source, cell)}, line {line}"

    def unparsed(self, cell: int, raw: str, exc: SyntaxError, later: set[str]) -> None:
        line = exc.lineno or 1
        needed = [n for n in _CLASS.findall(raw) if n.lower() in NEEDED and n.lower() not in later]
        if needed:
            raise _fail(self.label, f"cell {cell}, line {line} does not parse ({exc.msg}), and it defines class "
                                    f"{needed[0]}, which the check needs: fix that cell ({self.where(cell, line)})")
        self.notes.append({"code": "cell_not_parsed", "severity": "warning", "phase": None,
                           "where": self.where(cell, line), "count": 1,
                           "message": f"{self.where(cell, line)}: the cell does not parse ({exc.msg}); it was "
                                      "skipped, and nothing it defines was checked",
                           "fix": "fix the cell's syntax, or turn prose into a markdown cell or a # comment"})

    def run(self, cell: int, node: ast.stmt, raw_lines: list[str]) -> None:
        filename = cell_file(self.source, cell)
        code = compile(ast.Module(body=[node], type_ignores=[]), filename, "exec")
        try:
            exec(code, self.module.__dict__)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a SystemExit from the notebook's code is its failure too
            self.failed(cell, node, raw_lines, exc)
            return
        cls = self.module.__dict__.get(_defines(node) or "")
        if isinstance(cls, type) and cls.__module__ == self.module.__name__:
            cls.__firstlineno__ = node.lineno  # where guard.where_class points (Python 3.13 sets it itself)

    def failed(self, cell: int, node: ast.stmt, raw_lines: list[str], exc: BaseException) -> None:
        text = raw_lines[node.lineno - 1].strip() if node.lineno <= len(raw_lines) else ""
        why = f"{type(exc).__name__}: {first_line(exc, 200)}"
        name = _defines(node)
        if name and name.lower() in NEEDED:
            raise _fail(self.label, f"cell {cell}, line {node.lineno}: class {name}, which the check needs, could not "
                                    f"be defined: {why} ({self.where(cell, node.lineno)})")
        imports = isinstance(node, (ast.Import, ast.ImportFrom))
        self.notes.append({
            "code": "import_failed" if imports else "definition_failed", "severity": "warning", "phase": None,
            "where": self.where(cell, node.lineno), "count": 1,
            "message": f"{self.where(cell, node.lineno)}: `{text}` failed ({why}); it was skipped",
            "fix": ("put the module beside the notebook (its folder is on the import path) or install it; "
                    "what the check needs must not depend on it") if imports else
                   "what the check needs must not depend on it"})

    def summary(self) -> None:
        if not self.skipped:
            return
        n = len(self.skipped)
        listed = "; ".join(f"cell {c}, line {line} `{text[:80]}`" for c, line, text in self.skipped)
        self.notes.append({"code": "top_level_skipped", "severity": "info", "phase": None, "count": n,
                           "message": f"{self.name}: {n} top-level statement{'s' * (n != 1)} not run (only imports, "
                                      f"classes, functions and ALL_CAPS constants run): {listed}",
                           "statements": [{"cell": c, "line": line, "text": text} for c, line, text in self.skipped]})


def _later_classes(cells: list[tuple[int, str]]) -> list[set[str]]:
    """Per cell, the (lowercased) class names a later cell defines at its top level, by a rough look at the text."""
    out, seen = [], set()
    for _, raw in reversed(cells):
        out.append(set(seen))
        seen |= {m.lower() for m in re.findall(r"^class[ \t]+([A-Za-z_]\w*)", raw, re.MULTILINE)}
    return out[::-1]


def load_notebook(source: str, run_all: float | bool = False) -> types.ModuleType:
    """The notebook at `source` as a module of its definitions (see the module docstring); its notes under NOTES.
    `run_all`: every cell is executed on a kernel first (True, or the seconds that may take; notebook_run)."""
    label = arg_given("layers", source)
    path = Path(source)
    cells = _code_cells(path, label)
    if run_all:
        from parity.user_code.notebook_run import run_all_cells

        run_all_cells(path, source, run_all)
    tensorflow_env_defaults()
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # as Jupyter starts the kernel in the notebook's folder
    name = "parity_user_layers_" + re.sub(r"\W", "_", path.stem)
    module = types.ModuleType(name, f"the definitions of {source}")
    module.__file__ = source  # where its classes came from: ownership counts the modules beside it as the learner's
    sys.modules[name] = module  # as for an imported file: dataclasses, pickling and inspect look classes up here
    loader = _Loader(source, module, label)
    for (cell, raw), later in zip(cells, _later_classes(cells)):
        text = _python(raw)
        lines = raw.split("\n")
        if text is None:
            loader.skipped.append((cell, 1, lines[0].strip()))
            continue
        linecache.cache[cell_file(source, cell)] = (len(text), None, text.splitlines(True), cell_file(source, cell))
        try:
            tree = ast.parse(text, cell_file(source, cell))
        except SyntaxError as exc:
            loader.unparsed(cell, raw, exc, later)
            continue
        for node in tree.body:
            if _keeps(node):
                loader.run(cell, node, lines)
            else:
                text_line = lines[node.lineno - 1].strip() if node.lineno <= len(lines) else ""
                loader.skipped.append((cell, node.lineno, text_line))
    loader.summary()
    module.__dict__[NOTES] = loader.notes
    return module
