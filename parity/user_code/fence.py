"""What a user's code may not do to the process that checks it: end it, replace it, or move its working directory.

A user's classes run inside the checking process. `sys.exit` (and the `exit`/`quit` builtins), `os._exit`,
`os.abort`, the `os.exec*` family and a signal sent to this process would end the check with no verdict, or
with a false one (`os._exit(0)` is exit status 0, "parity holds"); `os.chdir` would move the report away from
where the terminal says it is. While a door's check runs (`fenced()`, entered by the CLI and `parity.check`),
those functions, called on the checking thread, raise UserExit instead: an Exception, so the user's call that
made it becomes a finding on its class, with its file and line (parity.user_code.guard), or, outside any such
call, one clear refusal at the door. Other threads, and other processes (a fork's child, a Dask worker that
grades), get the real functions. While a module is imported (`importing()`), `os.chdir` is allowed: the
importer puts the working directory back afterwards.

A KeyboardInterrupt that code raises is not a Ctrl-C: in the main thread the fence notes every real SIGINT
(`real_interrupt`), so a layer that raises KeyboardInterrupt is a finding while a Ctrl-C still stops the run.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import signal
import sys
import threading

__all__ = ["ENDING", "UserExit", "fenced", "importing", "is_fenced", "real_interrupt"]

ENDING = "a class under check must return its result; ending the process leaves no verdict"
_MOVES = "a class under check must not change the working directory, where the report goes"


class UserExit(Exception):
    """User code called a function that would end or replace this process, or move its working directory."""

    def __init__(self, call: str, why: str = ENDING):
        self.call = call  # as written: "sys.exit('bye')", "os._exit(0)"
        super().__init__(f"called {call}: {why}")


_lock = threading.RLock()
_threads: dict[int, int] = {}  # fenced thread -> nesting depth
_importing: set[int] = set()  # fenced threads importing a user's module: os.chdir allowed there
_state = {"pid": None, "saved": {}, "sigint": None, "interrupts": 0, "watched": False}


def is_fenced() -> bool:
    """Whether this thread runs a door's check (in the process that entered the fence)."""
    return threading.get_ident() in _threads and os.getpid() == _state["pid"]


def real_interrupt() -> bool:
    """Whether a KeyboardInterrupt now is (or may be) a person's Ctrl-C rather than code raising one: True when
    a SIGINT arrived during the fence, or when nothing watches for SIGINT on this thread."""
    return not (is_fenced() and _state["watched"]) or _state["interrupts"] > 0


def _shown(name: str, args: tuple) -> str:
    return f"{name}({', '.join(map(repr, args))})"


def _stand_in(module, name: str, shown: str, why: str = ENDING, refuses=lambda *args: True):
    real = getattr(module, name)

    def stand_in(*args, **kwargs):
        if is_fenced() and refuses(*args) and not (why is _MOVES and threading.get_ident() in _importing):
            raise UserExit(_shown(shown, args), why)
        return real(*args, **kwargs)

    stand_in.__wrapped__ = real
    return stand_in


def _own_process(pid, *rest) -> bool:
    return pid in (0, os.getpid()) or pid == -os.getpgrp()


def _own_group(pgid, *rest) -> bool:
    return pgid in (0, os.getpgrp())


def _stand_ins() -> list[tuple[object, str, object]]:
    out = [(sys, "exit", _stand_in(sys, "exit", "sys.exit"))]
    out += [(builtins, name, _stand_in(builtins, name, name)) for name in ("exit", "quit") if hasattr(builtins, name)]
    out += [(os, name, _stand_in(os, name, f"os.{name}")) for name in
            ("_exit", "abort", "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe")
            if hasattr(os, name)]
    out += [(os, "kill", _stand_in(os, "kill", "os.kill", refuses=_own_process)),
            (os, "killpg", _stand_in(os, "killpg", "os.killpg", refuses=_own_group)),
            (signal, "raise_signal", _stand_in(signal, "raise_signal", "signal.raise_signal"))]
    out += [(os, name, _stand_in(os, name, f"os.{name}", _MOVES)) for name in ("chdir", "fchdir") if hasattr(os, name)]
    return out


def _note_interrupt(signum, frame):
    """Our SIGINT handler while fenced: count a real Ctrl-C, then do what the previous handler did."""
    previous = _state["sigint"]
    if previous == signal.SIG_IGN:
        return None
    _state["interrupts"] += 1
    if callable(previous):
        return previous(signum, frame)
    raise KeyboardInterrupt


def _put_up() -> None:
    _state.update(pid=os.getpid(), interrupts=0, watched=False)
    stand_ins = _stand_ins()
    _state["saved"] = {(module, name): getattr(module, name) for module, name, _ in stand_ins}
    for module, name, stand_in in stand_ins:
        setattr(module, name, stand_in)
    if threading.current_thread() is threading.main_thread():
        with contextlib.suppress(ValueError, OSError, TypeError):
            _state["sigint"] = signal.getsignal(signal.SIGINT)
            signal.signal(signal.SIGINT, _note_interrupt)
            _state["watched"] = True


def _take_down() -> None:
    for (module, name), real in _state["saved"].items():
        setattr(module, name, real)
    if _state["watched"]:
        with contextlib.suppress(ValueError, OSError, TypeError):
            signal.signal(signal.SIGINT, _state["sigint"] if _state["sigint"] is not None else signal.SIG_DFL)
    _state.update(saved={}, sigint=None, watched=False, pid=None)


@contextlib.contextmanager
def fenced():
    """Within this block, on this thread, user code cannot end the process or move its working directory."""
    me = threading.get_ident()
    with _lock:
        if not _threads:
            _put_up()
        _threads[me] = _threads.get(me, 0) + 1
    try:
        yield
    finally:
        with _lock:
            _threads[me] -= 1
            if not _threads[me]:
                del _threads[me]
            if not _threads:
                _take_down()


@contextlib.contextmanager
def importing():
    """A user's module is being imported on this thread: `os.chdir` is allowed (the importer undoes it)."""
    me = threading.get_ident()
    fresh = me not in _importing
    _importing.add(me)
    try:
        yield
    finally:
        if fresh:
            _importing.discard(me)
