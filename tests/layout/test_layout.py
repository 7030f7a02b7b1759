"""The package's shape, measured from the source: a folder per concern, small modules, imports that run one way.

Every import counts, those inside functions too (half of them are there, to keep TensorFlow lazy); only imports
under `if TYPE_CHECKING:` are left out, since they never run.
"""

import ast
from pathlib import Path

import pytest
from testkit import ROOT

PACKAGE = ROOT / "parity"
MAX_LINES = 300
MAX_TOP_LEVEL = 14

# Bottom to top (STYLE.md): a module may import from its own layer and the layers below it, never above.
LAYERS = [
    {"errors", "version"},
    {"book"},
    {"settings"},
    {"user_code"},
    {"numpy_side"},
    {"keras_side"},
    {"diagnosis"},
    {"compare"},
    {"report"},
    {"prepare", "result"},
    {"pipeline", "record"},
    {"api"},
    {"grading", "selfcheck", "testing", "cli_parser", "cli_commands"},
    {"cli", "pytest_plugin", "__main__", "__init__"},
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports, anywhere in its body."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and _type_checking(node)
               for child in node.body for n in ast.walk(child)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                out.add(full if full in known else base)
    return {m for m in out if m in known and m != name}


def layer_of(name: str) -> str:
    parts = name.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def test_a_folder_per_concern_and_few_modules_at_the_top():
    subpackages = [p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    top = [p for p in PACKAGE.glob("*.py")]
    assert len(subpackages) >= 5, subpackages
    assert len(top) <= MAX_TOP_LEVEL, sorted(p.name for p in top)


def test_no_module_is_over_300_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_every_module_has_a_place_in_the_layers():
    assert {layer_of(n) for n in modules()} - set(RANK) == set()


def test_imports_run_one_way_from_the_book_to_the_doors():
    known = modules()
    upward = [f"{name} imports {target}" for name, path in known.items() for target in imports_of(name, path, known)
              if RANK[layer_of(target)] > RANK[layer_of(name)]]
    assert upward == []


def test_no_import_cycle_counting_imports_inside_functions():
    known = modules()
    graph = {name: imports_of(name, path, known) for name, path in known.items()}
    # A submodule import runs its package's __init__ first; that edge is Python's, not ours.
    graph = {name: {t for t in targets if not name.startswith(t + ".")} for name, targets in graph.items()}
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize("library", ["tensorflow", "keras"])
def test_only_keras_side_imports_tensorflow_and_keras(library):
    importers = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
            if any(n == library or n.startswith(library + ".") for n in names):
                importers.append(str(path.relative_to(PACKAGE)))
    assert importers and all(p.startswith("keras_side/") for p in importers), importers


def test_the_layout_check_sees_an_upward_import(tmp_path):
    """The measure can fail: a settings module importing the report package is caught."""
    bad = tmp_path / "parity" / "settings"
    bad.mkdir(parents=True)
    (bad / "x.py").write_text("def f():\n    from parity.report import plots\n")
    known = {"parity.settings.x": bad / "x.py", "parity.report.plots": bad / "x.py"}
    targets = imports_of("parity.settings.x", bad / "x.py", known)
    assert targets == {"parity.report.plots"} and RANK[layer_of("parity.report.plots")] > RANK["settings"]
