"""The lines of a learner's `update` that change nothing the caller holds, read from its source (ast).

Asked only after a replay has shown that the update leaves every parameter as it was: the source then
says where. Three forms learners write:
- an expression statement whose value is thrown away: `params[key] -+ self.lr * grads[key]` (a typo of `-=`);
- a loop variable over the parameters rebound to a new array: `for p, g in zip(params, grads): p = p - lr * g`;
- the parameters' name rebound to a copy that is never returned: `params = params.copy()`.
"""

from __future__ import annotations

import ast
import inspect
import textwrap

__all__ = ["idle_lines"]


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _loop_names(tree: ast.AST, params: str) -> set[str]:
    """Names a `for` loop binds from the parameters: `for p in params`, `for k, p in params.items()`, zip(...)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.For) and params in _names(node.iter):
            targets = node.target.elts if isinstance(node.target, ast.Tuple) else [node.target]
            out |= {t.id for t in targets if isinstance(t, ast.Name)}
    return out


def _why(node: ast.stmt, text: str, params: str, loop: set[str], returns: bool) -> str | None:
    if isinstance(node, ast.Expr) and not isinstance(node.value, (ast.Call, ast.Constant, ast.Await, ast.Yield)) \
            and params in _names(node.value):
        compact = text.replace(" ", "")
        typo = next((f" (did you mean `{good}`?)" for bad, good in (("-+", "-="), ("+-", "+=")) if bad in compact), "")
        return "is an expression whose value is thrown away: it assigns nothing" + typo
    if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
        name = node.targets[0].id
        if name == params and not returns:
            return (f"rebinds {params} to a new object that is never returned: the caller's {params} does not "
                    f"change (update {params}[key] in place)")
        if name in loop:
            return (f"rebinds the loop's {name} to a new array: {params}[key] is left as it was "
                    f"(write {params}[key] -= ..., or {name} -= ... in place)")
    return None


def idle_lines(cls: type) -> list[tuple[str, str, str]]:
    """(file:line, the line's code, why it changes nothing) for each such statement of cls.update, in order;
    empty where the source cannot be read or says nothing of the kind."""
    try:
        lines, start = inspect.getsourcelines(cls.update)
        path = inspect.getsourcefile(cls.update)
        source = textwrap.dedent("".join(lines))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return []
    function = next((n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))), None)
    if function is None or len(function.args.args) < 2:
        return []
    params = function.args.args[1].arg
    loop = _loop_names(function, params)
    returns = any(isinstance(n, ast.Return) and n.value is not None for n in ast.walk(function))
    out = []
    for node in ast.walk(function):
        if not isinstance(node, ast.stmt):
            continue
        text = (ast.get_source_segment(source, node) or lines[node.lineno - 1]).strip().splitlines()[0]
        why = _why(node, text, params, loop, returns)
        if why:
            out.append((f"{path}:{start + node.lineno - 1}", text, why))
    return sorted(out, key=lambda item: int(item[0].rsplit(":", 1)[1]))
