"""TensorFlow's C++ log lines, kept off the terminal for a whole command.

TensorFlow's native code logs straight to file descriptor 2 (`E0000 ... failed call to cuInit`
when a saved model is loaded, `E0000 ... NodeDef mentions attribute use_unbounded_threadpool` when
the fit's last batch is short), at any point of a run and whatever TF_CPP_MIN_LOG_LEVEL says. So
while a command runs, fd 2 goes through a pipe whose reader drops those records and passes
everything else on: our own `error:` lines, Python tracebacks, and any native message that is not
a log record. PARITY_TF_LOGS=1 leaves fd 2 alone. Progress bars are drawn on the stream fd 2 was
before (see `native_logs_filtered`), not through the filter.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading

__all__ = ["native_logs_filtered", "strip_native_logs", "library_warnings_quiet"]

# Python warnings that TensorFlow's and Keras's own code issues (a deprecation inside Keras, say): not the user's news.
_LIBRARIES = r"(tensorflow|keras|tf_keras|absl|ml_dtypes)(\.|$)"

# An absl/glog record: severity, MMDD, time, thread id, file:line]  (e.g. "E0000 00:00:1795.5 13002 cuda_platform.cc:52]").
# A record runs to the end of its line; TensorFlow sometimes leaves out the newline before the next one.
_RECORD = re.compile(rb"[IWEF]\d{4} \d\d:\d\d:[\d.]+\s+\d+ [\w.\-/]+:\d+\].*")
_PREAMBLE = re.compile(rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR\s*")


def strip_native_logs(line: bytes) -> bytes:
    """One line (without its newline) less any native log records and absl's preamble; b"" when nothing is left."""
    kept = _RECORD.sub(b"", _PREAMBLE.sub(b"", line))
    return kept if kept.strip() else b""


def _forward(read_fd: int, write_fd: int) -> None:
    pending = b""
    try:
        while chunk := os.read(read_fd, 65536):
            *lines, pending = (pending + chunk).split(b"\n")
            out = b"".join(kept + b"\n" for kept in map(strip_native_logs, lines) if kept)
            if out:
                os.write(write_fd, out)
        if kept := strip_native_logs(pending):
            os.write(write_fd, kept)
    except OSError:  # the terminal went away: there is nobody left to tell
        pass
    finally:
        os.close(read_fd)


@contextlib.contextmanager
def native_logs_filtered():
    """Within this block, TensorFlow's native log records written to fd 2 are dropped; nothing else is.

    Yields a text stream on what fd 2 was before the block (the terminal, when there is one), for progress bars:
    written there, a bar's carriage returns reach the screen at once instead of waiting in the filter for a
    newline. Whether that is a terminal must be asked before the block: inside it, fd 2 is a pipe."""
    if os.environ.get("PARITY_TF_LOGS") == "1":
        yield sys.stderr
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no fd 2 to filter (no stream, a closed or replaced one)
        yield sys.stderr
        return
    read_fd, write_fd = os.pipe()
    reader = threading.Thread(target=_forward, args=(read_fd, saved), name="parity-native-logs", daemon=True)
    reader.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    original = os.fdopen(os.dup(saved), "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8",
                         errors="replace")
    try:
        yield original
    finally:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stderr.flush()
        with contextlib.suppress(OSError, ValueError):
            original.close()
        os.dup2(saved, 2)  # closes the pipe's last write end: the reader drains it and stops
        reader.join(timeout=5)
        os.close(saved)


@contextlib.contextmanager
def library_warnings_quiet():
    """Within this block, Python warnings issued from TensorFlow's and Keras's modules are not shown; the user's
    own code's warnings still are. PARITY_TF_LOGS=1 shows them all."""
    if os.environ.get("PARITY_TF_LOGS") == "1":
        yield
        return
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=_LIBRARIES)
        yield
