"""Quiet means quiet: TensorFlow's C++ log lines never reach either stream; our own error lines and tracebacks do."""

import os
import subprocess
import sys
import textwrap
from concurrent.futures import Executor, Future
from pathlib import Path

import pytest

from parity.keras_side.native_logs import strip_native_logs
from testkit import ROOT

CUINIT = (b"E0000 00:00:1795609771.557828   13002 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
          b"Failed call to cuInit: UNKNOWN ERROR (303)")
NODEDEF = (b"E0000 00:00:1795609785.742723   14164 node_def_util.cc:682] NodeDef mentions attribute "
           b"use_unbounded_threadpool which is not in the op definition: Op<name=MapDataset; ...> NodeDef: "
           b"{{node ParallelMapDatasetV2/_15}}")


def parity(*args, env=None):
    return subprocess.run([sys.executable, "-m", "parity.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600, env={**os.environ, **(env or {})})


def test_native_log_records_are_stripped_and_everything_else_is_kept():
    assert strip_native_logs(CUINIT) == b""
    assert strip_native_logs(NODEDEF + CUINIT) == b""  # TensorFlow sometimes leaves out the newline between two
    assert strip_native_logs(b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR") == b""
    assert strip_native_logs(b"error: --seed must be an integer") == b"error: --seed must be an integer"
    assert strip_native_logs(b'  File "x.py", line 3, in <module>') == b'  File "x.py", line 3, in <module>'


def test_native_writes_to_fd_2_are_filtered_for_the_whole_block_and_python_output_passes():
    code = textwrap.dedent(f"""
        import os, sys
        from parity.keras_side.native_logs import native_logs_filtered
        with native_logs_filtered():
            os.write(2, {CUINIT!r} + b"\\n")
            print("error: ours", file=sys.stderr, flush=True)
            os.write(2, {NODEDEF!r} + {CUINIT!r} + b"\\n" + b"a native line that is no log record\\n")
        raise SystemExit(7)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PARITY_TF_LOGS"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert done.returncode == 7
    assert done.stdout == ""
    assert done.stderr == "error: ours\na native line that is no log record\n"


def test_the_stream_it_yields_reaches_the_original_fd_2_at_once_without_a_newline():
    """Progress bars are drawn there: a carriage return must not wait in the filter for the end of a line. The child
    draws a bar and waits for this test to have seen it; through the filter it would wait for a newline, for ever."""
    import select

    code = textwrap.dedent(f"""
        import os, sys
        from parity.keras_side.native_logs import native_logs_filtered
        with native_logs_filtered() as terminal:
            os.write(2, {CUINIT!r} + b"\\n")
            terminal.write("\\rprobe: 1/2")
            terminal.flush()
            sys.stdin.readline()
            os.write(2, b"after\\n")
    """)
    env = {k: v for k, v in os.environ.items() if k != "PARITY_TF_LOGS"}
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                             env=env)
    try:
        shown = b""
        while not shown.endswith(b"1/2") and select.select([child.stderr], [], [], 30)[0]:
            shown += os.read(child.stderr.fileno(), 1024)
        assert shown == b"\rprobe: 1/2"
    finally:
        child.stdin.write(b"go\n")
        child.stdin.close()
    assert child.wait(timeout=60) == 0 and child.stderr.read() == b"after\n"


QUIET_RUNS = {"short last batch": ["--samples", "40"], "saved model": ["--model", "MODEL"]}


def save_model(path: Path) -> Path:
    """A float32 Dense chain the CLI accepts, its weights drawn from seeded initializers: no global state is touched."""
    from parity.keras_side import backend

    keras = backend.keras

    def dense(units: int, **kwargs):
        return keras.layers.Dense(units, kernel_initializer=keras.initializers.GlorotUniform(seed=1), dtype="float32",
                                  **kwargs)

    keras.Sequential([keras.Input((1,)), dense(2, activation="relu"), dense(1)]).save(path)
    return path


def start_early(folder: Path, lane: Executor) -> dict[str, Future]:
    """Both quiet runs, queued with the session (conftest's started_early), with TensorFlow's native logging at its
    loudest."""
    model = save_model(folder / "model.keras")
    return {case: lane.submit(parity, "run", "--quiet", "--no-plots", "--out", str(folder / f"r{k}"),
                              *[str(model) if a == "MODEL" else a for a in extra],
                              env={"PARITY_TF_LOGS": "0", "TF_CPP_MIN_LOG_LEVEL": "0"})
            for k, (case, extra) in enumerate(QUIET_RUNS.items())}


@pytest.fixture(scope="module")
def quiet_runs(started_early) -> dict[str, Future]:
    return started_early[__name__]


@pytest.mark.parametrize("case", QUIET_RUNS)
def test_a_quiet_run_prints_nothing_on_either_stream(quiet_runs, case):
    """--samples 40 makes the fit's last batch short (32 = 3 x 10 + 2), where TensorFlow logs a NodeDef line;
    loading a saved model makes it probe CUDA and log cuInit where there is no GPU."""
    done = quiet_runs[case].result()
    assert done.returncode == 0
    assert (done.stdout, done.stderr) == ("", "")


def test_an_error_still_reaches_stderr_when_tensorflow_is_silenced(tmp_path):
    done = parity("run", "--quiet", "--samples", "1", "--out", str(tmp_path / "r"))
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == "error: --samples must be at least 2 (received: 1)\n"
