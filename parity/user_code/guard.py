"""The one door into a user's class: every call, attribute read and parameter lookup goes through here.

Whatever a user's class does wrong (raises, returns None, a non-array or an array of another shape,
keeps its gradient under another name, calls sys.exit or os._exit, raises KeyboardInterrupt) becomes a UserCodeError that names the book class, the
method and the user's file:line; callers turn it into a finding on that class, never a traceback.
NumPy only.
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys
import traceback
from pathlib import Path

import numpy as np

from parity.errors import first_line
from parity.user_code.fence import ENDING, UserExit, is_fenced, real_interrupt

__all__ = ["SCALAR", "UserCodeError", "call", "gradients", "held_array", "loss_backward_args", "place", "where_class",
           "stopped_by_code",
           "where_defined", "where_raised"]

SCALAR = "scalar"  # `expect` for a loss layer's forward: one real number
# What a method that returned None most likely forgot, by method and by what it should return.
_FORGOT = {("forward", SCALAR): "`return self.loss`", ("forward", None): "`return out`",
           ("backward", None): "`return dx`"}
_MISSING = object()
_CELL = re.compile(r"\.ipynb, cell \d+$")  # user_code.notebook.cell_file: where a notebook's cell is compiled from
_PACKAGE = str(Path(__file__).resolve().parents[1])  # parity/: frames here are ours, not the user's


class UserCodeError(Exception):
    """A user's class failed to run or to produce what the harness needs; the sentence names it."""

    def __init__(self, book: str, cls: type, method: str, message: str, where: str, kind: str):
        self.book = book  # the book class blamed: Affine, Relu, Sigmoid, SoftmaxWithLoss, MeanSquaredError
        self.class_name = cls.__name__  # as the user spelled it (ReLU)
        self.method = method  # __init__, forward, backward, or the attribute read
        self.message = message  # completes "ReLU.backward ...": "returned None: did you forget `return dx`?"
        self.where = where  # "file:line" in the user's code
        self.kind = kind  # the exception's class, or what was wrong: None, type, shape, gradient
        super().__init__(f"{self.class_name}.{method} {message}")


def place(filename: str, line: int) -> str:
    """'file:line'; 'layers.ipynb, cell 5, line 3' for code compiled from a notebook's cell (user_code.notebook);
    'Cell In[5], line 3', as IPython's tracebacks say it, for a cell run in this process's IPython kernel."""
    if _CELL.search(filename):
        return f"{filename}, line {line}"
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    try:
        label = shell.compile.format_code_name(filename) if shell is not None else None
    except Exception:  # another IPython's compiler: its file names stand as they are
        label = None
    return f"{label[0]} {label[1]}, line {line}" if label else f"{filename}:{line}"


def where_raised(exc: BaseException, cls: type | None = None) -> str:
    """'file:line' of the innermost frame an exception passed through in `cls`'s file (else anywhere)."""
    frames = traceback.extract_tb(exc.__traceback__)
    own = _source_file(cls) if cls is not None else None
    mine = [f for f in frames if own and f.filename == own]
    frame = (mine or frames or [None])[-1]
    return place(frame.filename, frame.lineno) if frame is not None else ""


def where_defined(cls: type, method: str) -> str:
    """'file:line' of a method's definition ('' when Python cannot say, e.g. for a builtin)."""
    func = inspect.unwrap(getattr(cls, method, None) or (lambda: None))
    code = getattr(func, "__code__", None)
    return place(code.co_filename, code.co_firstlineno) if code is not None else ""


def where_class(cls: type) -> str:
    """'file:line' of a class's `class` statement ('' when Python cannot say)."""
    line = getattr(cls, "__firstlineno__", None)  # set by Python 3.13, and by the notebook loader before it
    filename = _source_file(cls)
    if line is None:
        try:
            line = inspect.getsourcelines(cls)[1]
        except (TypeError, OSError, IndexError):
            return ""
    return place(filename, line) if filename else ""


def _source_file(cls: type) -> str | None:
    """The file `cls`'s code was compiled from: for a notebook's class, the cell its methods came from."""
    own = [f.__code__.co_filename for f in vars(cls).values() if hasattr(f, "__code__")]
    if own and _CELL.search(own[0]):
        return own[0]
    try:
        return inspect.getsourcefile(cls)
    except (TypeError, OSError):
        return own[0] if own else None


def _what(value) -> str:
    return "None" if value is None else f"a {type(value).__name__}"


def _raised_by_code(exc: BaseException) -> bool:
    """A SystemExit or KeyboardInterrupt the user's code raised, while a door's check runs: not a Ctrl-C (outside a
    door's check, as in a grade worker, they end the check as before)."""
    if isinstance(exc, KeyboardInterrupt):
        return not real_interrupt()
    return is_fenced()


def call(owner, method: str, *args, book: str, expect=None, kwargs: dict | None = None):
    """owner.method(*args, **kwargs), or owner(*args, **kwargs) for "__init__", checked.

    `expect` is the shape the result must have (an array), SCALAR for one real number, or None for
    no check. An exception, a None or anything else unexpected raises UserCodeError.
    """
    cls = owner if isinstance(owner, type) else type(owner)
    try:
        kwargs = kwargs or {}
        out = owner(*args, **kwargs) if method == "__init__" else getattr(owner, method)(*args, **kwargs)
    except UserCodeError:
        raise
    except UserExit as exc:  # sys.exit, os._exit, os.chdir, ... while a door's check runs (parity.user_code.fence)
        raise UserCodeError(book, cls, method, str(exc), where_raised(exc, cls), "UserExit") from exc
    except Exception as exc:  # the user's code raised: said once, with its line
        raise UserCodeError(book, cls, method, f"raised {type(exc).__name__}: {first_line(exc, 200)}",
                            where_raised(exc, cls), type(exc).__name__) from exc
    except (SystemExit, KeyboardInterrupt) as exc:  # raised by the code itself, not a Ctrl-C: a finding too
        if not _raised_by_code(exc):
            raise
        said = f"raised {type(exc).__name__}({exc.args[0]!r})" if exc.args else f"raised {type(exc).__name__}"
        raise UserCodeError(book, cls, method, f"{said}: {ENDING}", where_raised(exc, cls), type(exc).__name__) from exc
    if method == "__init__" or (expect is None and out is not None):
        return out
    if out is None:
        forgot = _FORGOT.get((method, expect if expect == SCALAR else None), "a `return`")
        raise UserCodeError(book, cls, method, f"returned None: did you forget {forgot}?",
                            where_defined(cls, method), "None")
    if expect == SCALAR:
        try:
            value = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError):
            value = None
        if value is None or value.size != 1:
            got = _what(out) if value is None else f"shape {np.shape(out)}"
            raise UserCodeError(book, cls, method, f"returned {got}; the loss is one number",
                                where_defined(cls, method), "type")
        return out
    if not isinstance(out, np.ndarray):
        raise UserCodeError(book, cls, method, f"returned {_what(out)}, not a NumPy array of shape {expect}",
                            where_defined(cls, method), "type")
    if out.dtype.kind not in "iuf":
        raise UserCodeError(book, cls, method, f"returned an array of dtype {out.dtype}; expected real numbers",
                            where_defined(cls, method), "dtype")
    if out.shape != tuple(expect):
        raise UserCodeError(book, cls, method, f"returned shape {out.shape} where {tuple(expect)} was expected",
                            where_defined(cls, method), "shape")
    return out


def loss_backward_args(layer) -> tuple:
    """The arguments of a loss layer's backward: (1,) for the book's backward(dout=1), () for backward(self)."""
    try:
        params = inspect.signature(layer.backward).parameters.values()
    except (TypeError, ValueError, AttributeError):
        return (1,)
    takes = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) for p in params)
    return (1,) if takes else ()


def _attributes(layer) -> list[tuple[str, object]]:
    """(name, value) of a layer's attributes, one level into lists, tuples and dicts (params[0], ...)."""
    out = []
    for name, value in getattr(layer, "__dict__", {}).items():
        out.append((name, value))
        if isinstance(value, (list, tuple)):
            out += [(f"{name}[{i}]", v) for i, v in enumerate(value)]
        elif isinstance(value, dict):
            out += [(f"{name}[{k!r}]", v) for k, v in value.items()]
    return out


def _looks_like_gradient(name: str) -> bool:
    low = name.lower().lstrip("_")
    return low.startswith("d") or "grad" in low


def held_array(layer, given: np.ndarray) -> np.ndarray:
    """The array a freshly built layer keeps for the `given` parameter, whatever it calls it.

    The very array (or a view of it) when the layer kept it, as the book does; else an equal copy the
    layer made; else `given`. Updating the result in place reaches the layer.
    """
    values = [v for _, v in _attributes(layer) if isinstance(v, np.ndarray)]
    if any(v is given or np.shares_memory(v, given) for v in values):
        return given
    copies = [(n, v) for n, v in _attributes(layer) if isinstance(v, np.ndarray) and v.shape == given.shape
              and np.array_equal(v, given)]
    copies.sort(key=lambda item: _looks_like_gradient(item[0]))  # W's copy before a zero-initialized dW
    return copies[0][1] if copies else given


def _read(layer, name: str, book: str):
    try:
        return getattr(layer, name, _MISSING)
    except Exception as exc:  # a property of the user's that raises
        raise UserCodeError(book, type(layer), name, f"raised {type(exc).__name__}: {first_line(exc, 200)}",
                            where_raised(exc, type(layer)), type(exc).__name__) from exc


def gradients(layer, W: np.ndarray, b: np.ndarray, book: str = "Affine") -> tuple[np.ndarray, np.ndarray]:
    """(dW, db) of an Affine after its backward: its `dW`/`db`, or `grads[i]` beside `params[i]` (the
    second volume's protocol). A gradient under another name, left None or not an array is a UserCodeError."""
    params, grads = _read(layer, "params", book), _read(layer, "grads", book)
    if isinstance(params, (list, tuple)) and isinstance(grads, (list, tuple)) and len(params) == len(grads):
        index = {id(p): i for i, p in enumerate(params)}
        if id(W) in index and id(b) in index:
            return (_gradient(layer, grads[index[id(W)]], f"grads[{index[id(W)]}]", book),
                    _gradient(layer, grads[index[id(b)]], f"grads[{index[id(b)]}]", book))
    return _named_gradient(layer, "dW", (W, b), book), _named_gradient(layer, "db", (W, b), book)


def _gradient(layer, value, name: str, book: str) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise UserCodeError(book, type(layer), "backward", f"set `{name}` to {_what(value)}, not an array",
                            where_defined(type(layer), "backward"), "gradient")
    return value


def _named_gradient(layer, name: str, held: tuple, book: str) -> np.ndarray:
    value = _read(layer, name, book)
    if value is not _MISSING and value is not None:
        return _gradient(layer, value, name, book)
    arrays = {n: v for n, v in _attributes(layer) if isinstance(v, np.ndarray) and "[" not in n
              and n not in ("W", "b", "x", "dW", "db") and not any(v is h for h in held)}
    other = "db" if name == "dW" else "dW"
    near = [n for n in arrays if n.lower() == name.lower()] or \
        [n for n in difflib.get_close_matches(name, list(arrays), n=3, cutoff=0.6) if n.lower() != other.lower()]
    cls = type(layer)
    if near:
        message = f"set `{near[0]}`; the harness reads `{name}` (the book's name)"
    elif value is None:
        message = f"left `{name}` None: set self.{name} in backward"
    else:
        message = f"set no `{name}`; the harness reads dW and db (or grads[i] beside params[i])"
    raise UserCodeError(book, cls, "backward", message, where_defined(cls, "backward"), "gradient")


def stopped_by_code(exc: BaseException):
    """The ParityInputError a door raises for user code that ended the check outside any call this module guards
    (a SystemExit, a KeyboardInterrupt that is no Ctrl-C, a fenced sys.exit or os._exit); None for anything else.
    Call it inside the fence, where a real Ctrl-C can still be told apart."""
    from parity.errors import ParityInputError

    if isinstance(exc, UserExit):
        said = str(exc)
    elif isinstance(exc, SystemExit):
        said = f"raised SystemExit({exc.code!r}): {ENDING}"
    elif isinstance(exc, KeyboardInterrupt) and not real_interrupt():
        said = f"raised KeyboardInterrupt: {ENDING}"
    else:
        return None
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if not _ours(f.filename)]
    where = f" ({frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return ParityInputError(f"your code {said}{where}; the check stopped there and no report was written")


def _ours(filename: str) -> bool:
    return filename.startswith(_PACKAGE) or filename.startswith("<frozen")
