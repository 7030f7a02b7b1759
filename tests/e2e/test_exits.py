"""Exit statuses hold for every input (issue 19): 1 only ever means "your layers disagree with Keras".

User code that ends the check (sys.exit, SystemExit, KeyboardInterrupt, os._exit, os.exec*, os.chdir) is a finding on
its class, or one clear refusal; a size beyond this machine's memory, a file that shadows a library and a path that is
a folder are bad input (exit 2, one `error:` line); what a module does to the working directory and sys.path at import
is undone; our own numeric warnings never reach the terminal; a bug of ours is exit 4, never 1.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
import warnings
from concurrent.futures import Executor, Future
from pathlib import Path

import numpy as np
import pytest

import parity
from parity import cli
from parity.settings.resources import check_fits, estimated_bytes
from parity.user_code.importer import shadowing
from testkit import FIXTURES, ROOT

BOOK = FIXTURES / "book_layers.py"
RUN = ["--dtype", "float64", "--epochs", "1", "--no-plots", "--quiet"]  # in-process runs share one Keras side
RELU = """
import os, sys
import numpy as np


class Relu:
    def forward(self, x):
        self.mask = x <= 0
        {forward}
        return np.where(self.mask, 0, x)

    def backward(self, dout):
        {backward}
        return np.where(self.mask, 0, dout)
"""


def relu(folder: Path, forward: str = "pass", backward: str = "pass", name: str = "layers.py") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(RELU.format(forward=forward, backward=backward))
    return folder / name


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


def findings(out: Path) -> list[dict]:
    return json.loads((out / "summary.json").read_text())["findings"]


# -- sizes ----------------------------------------------------------------------------------------------------------

def test_samples_beyond_memory_are_exit_2_naming_the_size_and_the_estimate(tmp_path, capsys):
    assert cli.main(["run", "--samples", "1000000000000", "--out", str(tmp_path / "r")]) == 2
    err = one_error_line(capsys)
    assert err.startswith("error: --samples 1000000000000 (stepping 800000000000 of them, the default 80%) needs about "
                          "2.85 PB of memory"), err
    assert "is available; use fewer samples, or a smaller --train" in err
    assert not (tmp_path / "r").exists()


def test_the_estimate_names_train_when_the_stepping_is_most_of_it():
    with pytest.raises(parity.ParityInputError, match=r"--samples 1000 with --train 1000000000 needs about 23.5 TB"):
        check_fits(1000, 10**9, 1, 1, (16, 16, 1), available=2 * 10**9)
    with pytest.raises(parity.ParityInputError, match=r"^--samples 100000000 needs about 9.6 GB .* 1 GB is available; "
                                                      r"use fewer samples$"):
        check_fits(10**8, 160, 1, 1, (2, 1), available=10**9)


def test_ordinary_sizes_fit_and_the_estimate_grows_with_the_model():
    check_fits(200, 160, 1, 1, (2, 1), available=10**8)  # the default run needs about 0.6 MB beyond the libraries
    assert estimated_bytes(200, 160, 1, 1, (2, 1)) == 200 * 96 + 160 * (3000 + 64 * 7)
    assert estimated_bytes(200, 160, 1, 1, (16, 16, 1)) > 5 * estimated_bytes(200, 160, 1, 1, (2, 1))


@pytest.mark.parametrize("argv,message", [
    (["--workers", "100000"], "--workers 100000 need at least 53.7 TB of memory (512 MiB each, for TensorFlow)"),
    (["--memory-limit", "900TB"], "--memory-limit 900 TB per worker is more than the"),
])
def test_grade_workers_beyond_memory_are_refused_before_any_worker_starts(tmp_path, capsys, argv, message):
    status = cli.main(["grade", str(BOOK), "--out", str(tmp_path / "book"), *argv])
    assert status == 2 and message in one_error_line(capsys)
    assert not (tmp_path / "book").exists()


# -- files that shadow a library ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("shadow,library", [("keras.py", "keras"), ("numpy.py", "numpy"),
                                            ("tensorflow/__init__.py", "tensorflow"), ("pandas.py", "pandas"),
                                            ("matplotlib.py", "matplotlib"), ("parity.py", "parity")])
def test_a_file_beside_the_layers_that_shadows_a_library_is_exit_2_naming_it(tmp_path, capsys, shadow, library):
    shutil.copy(BOOK, tmp_path / "layers.py")
    (tmp_path / shadow).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / shadow).write_text("raise SystemExit('imported in the library's place')\n")
    assert cli.main(["check", "--layers", str(tmp_path / "layers.py"), "--out", str(tmp_path / "r")]) == 2
    err = one_error_line(capsys)
    shown = shadow if shadow.endswith(".py") and "/" not in shadow else f"{library}/ (a package)"
    assert f"its folder {tmp_path} holds {shown}, which Python would import in place of the {library} library" in err
    assert not (tmp_path / "r").exists()


def test_a_dotted_module_in_a_folder_that_shadows_is_refused_and_a_bare_folder_shadows_nothing(tmp_path, capsys,
                                                                                                 monkeypatch):
    (tmp_path / "keras").mkdir()  # a folder without __init__.py: a namespace portion, which the library outranks
    assert shadowing(tmp_path) is None
    shutil.copy(BOOK, tmp_path / "mylayers.py")
    (tmp_path / "keras.py").write_text("x = 1\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["check", "--layers", "mylayers", "--out", "r"]) == 2
    assert "holds keras.py, which Python would import in place of the keras library" in one_error_line(capsys)


def test_python_m_parity_does_not_import_from_the_current_folder(tmp_path):
    (tmp_path / "numpy.py").write_text("raise SystemExit('a learner numpy.py was imported')\n")
    done = subprocess.run([sys.executable, "-m", "parity", "--version"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0 and done.stdout.startswith("keras-parity "), done.stderr


# -- user code that ends the check -------------------------------------------------------------------------------------

ENDINGS = {  # id -> (Relu.backward's body, what the finding says)
    "sys.exit": ("sys.exit('bye')", "Relu.backward called sys.exit('bye'): a class under check must return its result"),
    "exit builtin": ("exit(7)", "Relu.backward called exit(7)"),
    "raise SystemExit": ("raise SystemExit(5)", "Relu.backward raised SystemExit(5)"),
    "KeyboardInterrupt": ("raise KeyboardInterrupt", "Relu.backward raised KeyboardInterrupt"),
    "os.chdir": ("os.chdir('/')", "Relu.backward called os.chdir('/'): a class under check must not change the "
                                  "working directory"),
    "signal to itself": ("os.kill(os.getpid(), 15)", "Relu.backward called os.kill("),
}


@pytest.mark.parametrize("case", ENDINGS)
def test_a_layer_that_ends_the_check_is_a_finding_with_its_line_and_exit_1(tmp_path, capsys, case):
    body, said = ENDINGS[case]
    path = relu(tmp_path, backward=body)
    cwd = os.getcwd()
    assert cli.main(["check", "--layers", str(path), *RUN, "--out", str(tmp_path / "r")]) == 1
    assert capsys.readouterr() == ("", "")
    errors = [f for f in findings(tmp_path / "r") if f["code"] == "layer_error"]
    assert errors and said in errors[0]["message"], errors
    assert f"{path}:13" in errors[0]["message"]  # the line of the call (backward's body), in the user's file
    assert os.getcwd() == cwd


def exit_and_exec_in_a_process(tmp_path: Path) -> tuple[Path, subprocess.CompletedProcess]:
    """`parity check` in a process of its own on layers that call os._exit(0) and os.execv: (its folder, the
    finished process)."""
    path = tmp_path / "layers.py"
    path.write_text(RELU.format(forward="os._exit(0)", backward="pass") + textwrap.dedent("""

        class MeanSquaredError:
            def forward(self, y, t):
                self.y, self.t = y, t
                return float(np.mean((y - t) ** 2))

            def backward(self, dout=1):
                os.execv(sys.executable, [sys.executable, "-c", "pass"])
        """))
    return tmp_path, subprocess.run([sys.executable, "-m", "parity.cli", "check", "--layers", str(path), *RUN,
                                     "--out", str(tmp_path / "r")], cwd=ROOT, capture_output=True, text=True,
                                    timeout=600)


def start_early(folder: Path, lane: Executor) -> Future:
    """The process of its own (mostly TensorFlow's import), queued with the session (conftest's started_early): it
    runs on the machine's other core while other modules' tests run here."""
    return lane.submit(exit_and_exec_in_a_process, folder)


@pytest.fixture(scope="module")
def ended_process(started_early) -> Future:
    return started_early[__name__]


def test_os_exit_and_exec_in_a_layer_are_findings_not_an_ended_process(ended_process):
    """In a process of its own: were the fence down, os._exit(0) would end it with status 0, "parity holds"."""
    tmp_path, done = ended_process.result()
    assert (done.returncode, done.stdout, done.stderr) == (1, "", "")
    said = [f["message"] for f in findings(tmp_path / "r") if f["code"] == "layer_error"]
    assert any(m.startswith("Relu.forward called os._exit(0)") for m in said), said
    assert any(m.startswith("MeanSquaredError.backward called os.execv(") for m in said), said


def test_a_real_ctrl_c_during_a_check_still_interrupts_it(tmp_path, capsys):
    """A SIGINT from outside (here a thread of the test) is a person's Ctrl-C, even when it lands in a layer."""
    forward = ("import threading, time, signal; time.sleep(0.002)\n        if not hasattr(Relu, 'timer'):\n"
               "            Relu.timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)); Relu.timer.start()")
    path = relu(tmp_path, forward=forward)
    assert cli.main(["check", "--layers", str(path), *RUN, "--out", str(tmp_path / "r")]) == 130
    assert capsys.readouterr().err == "error: interrupted; no report was written\n"
    assert not (tmp_path / "r").exists()


def test_parity_check_never_lets_a_system_exit_escape(tmp_path):
    class SGD:  # the run's optimizer: its update is called outside any layer call
        def __init__(self, lr=0.01):
            self.lr = lr

        def update(self, params, grads):
            raise SystemExit(3)

    with pytest.raises(parity.ParityInputError, match=r"^your code raised SystemExit\(3\): a class under check must "
                                                      r"return its result; .*test_exits.py:\d+\); the check stopped"):
        parity.check(SGD=SGD, dtype="float64", epochs=1)
    report = parity.check(relu(tmp_path, backward="sys.exit('bye')"), dtype="float64", epochs=1)
    assert report.verdict == "fail" and "called sys.exit('bye')" in report.errors[0].message
    assert sys.exit.__module__ == "sys" and os._exit.__module__ == "posix"  # the real functions are back


# -- what an import does to the process --------------------------------------------------------------------------------

def test_a_module_that_moves_folder_at_import_leaves_the_report_where_the_terminal_says(tmp_path, monkeypatch):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    path = relu(tmp_path / "code")
    path.write_text(f"import os, sys\nos.chdir({str(elsewhere)!r})\nsys.path.insert(0, {str(elsewhere)!r})\n"
                    + path.read_text())
    monkeypatch.chdir(here)
    before = list(sys.path)
    assert cli.main(["check", "--layers", str(path), *RUN, "--out", "reports/seed"]) == 0
    assert (here / "reports" / "seed" / "summary.json").is_file() and not (elsewhere / "reports").exists()
    assert Path.cwd() == here
    assert str(elsewhere) not in sys.path and [p for p in sys.path if p not in before] == [str(path.parent)]


# -- numbers -----------------------------------------------------------------------------------------------------------

def test_our_own_numeric_warnings_never_reach_the_terminal(tmp_path, monkeypatch):
    """A RuntimeWarning raised in one of our modules (the closed form's, as `--lr 1e300` once did) is dropped by the
    command; the control call outside it shows the warning is real."""
    from parity.numpy_side import closed_form

    namespace = {"__name__": closed_form.__name__, "warnings": warnings, "real": closed_form._record}
    exec("def _record(*args):\n    warnings.warn('overflow encountered in cast', RuntimeWarning)\n"
         "    return real(*args) if args else None\n", namespace)  # a function of that module, as the filter sees it
    monkeypatch.setattr(closed_form, "_record", namespace["_record"])
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert cli.main(["run", *RUN, "--out", str(tmp_path / "r")]) == 0
        assert [str(w.message) for w in seen] == []
        namespace["_record"]()
        assert [str(w.message) for w in seen] == ["overflow encountered in cast"]


def test_a_path_given_as_empty_text_is_said_as_given_in_python_too():
    with pytest.raises(parity.ParityInputError, match=r"^out= must be a path \(received: ''\)$"):
        parity.check(out="")
    with pytest.raises(parity.ParityInputError, match=r"^layers= must be a .py file or a dotted module name "
                                                      r"\(received: ''\)$"):
        parity.check("")


# -- our own failures --------------------------------------------------------------------------------------------------

def test_a_memory_error_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    import parity.prepare

    def no_memory(config):
        raise MemoryError("Unable to allocate 7.28 TiB for an array with shape (1000000000000,)")

    monkeypatch.setattr(parity.prepare, "prepare", no_memory)
    assert cli.main(["run", "--out", str(tmp_path / "r")]) == 2
    assert one_error_line(capsys) == ("error: out of memory (Unable to allocate 7.28 TiB for an array with shape "
                                      "(1000000000000,)); no report was written; use fewer --samples or a smaller "
                                      "--train\n")


def test_a_bug_of_ours_is_exit_4_with_its_traceback_never_1(tmp_path, capsys, monkeypatch):
    import parity.prepare

    def broken(config):
        raise RuntimeError("an invariant of ours broke")

    monkeypatch.setattr(parity.prepare, "prepare", broken)
    assert cli.main(["run", "--out", str(tmp_path / "r")]) == 4
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "RuntimeError: an invariant of ours broke" in err
    assert err.endswith("error: keras-parity failed (a bug in keras-parity, not in your layers: the traceback above "
                        "says where; please report it); no report was written\n")
    assert not (tmp_path / "r").exists()
