"""`parity record` and `--reference` from the command line: a recorded check in a process where TensorFlow and
Keras cannot be imported gives what the live check gives; every bad recording is one `error:` line and exit 2,
with nothing written and nothing unpickled; `parity grade --reference` never loads TensorFlow in its workers."""

import csv
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parity import cli, pipeline
from parity.keras_side.recording import open_recording
from parity.keras_side.recording_file import write_recording
from parity.settings.config import resolve
from parity.user_code.loader import load
from testkit import FIXTURES

SUBMISSIONS = FIXTURES / "submissions"
# The `parity` command in a process where importing TensorFlow or Keras fails, as in an image without them.
WITHOUT_TENSORFLOW = ("import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
                      "from parity.cli import command\n"
                      "status = command(sys.argv[1:])\n"
                      "assert not any(sys.modules.get(m) for m in ('tensorflow', 'keras')), 'TensorFlow was loaded'\n"
                      "sys.exit(status)\n")


def parity_without_tensorflow(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.fixture(scope="module")
def momentum_recording(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rec") / "momentum64.npz"
    assert cli.main(["record", "--dtype", "float64", "--optimizer", "momentum", "--out", str(out), "--quiet"]) == 0
    return out


def _summary(folder: Path) -> dict:
    summary = json.loads((folder / "summary.json").read_text())
    summary["config"].pop("out")
    return summary


def _live(tmp_path: Path, layers: Path | None, **settings) -> dict:
    """The live check's summary.json, through the pipeline, written as `parity check` writes it."""
    config = resolve({**settings, "plots": False, "out": tmp_path / "live"})
    pipeline.check(load(str(layers)) if layers else None, config, folder=pipeline.ReportFolder())
    return _summary(tmp_path / "live")


def test_a_recorded_check_without_tensorflow_equals_the_live_check(momentum_recording, tmp_path):
    """A planted Relu bug and the learner's Momentum that climbs, float64, against a recording made here."""
    layers = FIXTURES / "momentum_submissions" / "climbing.py"
    done = parity_without_tensorflow("check", "--layers", layers, "--reference", momentum_recording, "--no-plots",
                                     "--out", tmp_path / "recorded")
    assert done.returncode == 1, done.stdout + done.stderr
    recorded, live = _summary(tmp_path / "recorded"), _live(tmp_path, layers, dtype="float64", optimizer="momentum")
    assert recorded.pop("keras_side")["source"] == "recorded" and live.pop("keras_side")["source"] == "computed"
    assert recorded == live  # verdict, findings and the classes they blame, every number
    assert any(f.get("layer") == "Momentum" for f in recorded["findings"] if f["severity"] == "error")
    assert done.stdout.splitlines()[1].startswith("Keras side: recorded by Keras ")


def test_the_shipped_seed_recording_runs_without_tensorflow_and_equals_the_live_run(tmp_path):
    done = parity_without_tensorflow("run", "--reference", "seed-float32", "--no-plots", "--out", tmp_path / "recorded")
    assert done.returncode == 0, done.stdout + done.stderr
    recorded, live = _summary(tmp_path / "recorded"), _live(tmp_path, None)
    recorded.pop("keras_side"), live.pop("keras_side")
    for summary in (recorded, live):
        summary.pop("environment")  # the shipped file's machine and versions; this process's
        summary.pop("fitted_weights")
    assert recorded["verdict"] == live["verdict"] == "pass"
    assert recorded["rows"] == live["rows"] and recorded["dead_units"] == live["dead_units"]
    assert recorded["findings"] == live["findings"]


def _truncated(path: Path, good: Path):
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])


def _members(good: Path) -> dict:
    with np.load(good) as npz:
        return {k: npz[k] for k in npz.files}


def _corrupt(path: Path, good: Path):
    members = _members(good)
    members["fitted/W1"] = members["fitted/W1"] + 1.0  # changed by hand: its recorded digest no longer fits
    np.savez(path, **members)


def _newer(path: Path, good: Path):
    members = _members(good)
    members["meta"] = np.array([json.dumps({**open_recording(good).meta, "recording_schema": 99})])
    np.savez(path, **members)


class Trap:
    """Unpickling it creates the file it names: the test's proof that nothing was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


BAD = {
    "truncated": (_truncated, "cannot be read as a recording"),
    "corrupt": (_corrupt, "is corrupt: fitted/W1 does not match its recorded digest"),
    "newer schema": (_newer, "has recording schema 99, from a newer keras-parity"),
    "foreign npz": (lambda path, good: np.savez(path, x=np.zeros(3)), "is not a keras-parity recording"),
    "npy": (lambda path, good: np.save(path.with_suffix(".npy"), np.zeros(3)) or path.with_suffix(".npy").rename(path),
            "is not a keras-parity recording"),
    "pickle": (lambda path, good: path.write_bytes(pickle.dumps({"meta": "x"})), "is not a keras-parity recording"),
    "text": (lambda path, good: path.write_text("hello"), "is not a keras-parity recording"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_recording_is_one_error_line_exit_2_and_nothing_written(case, tmp_path, capsys):
    good = open_recording("seed-float32").path
    path = tmp_path / f"{case.replace(' ', '_')}.npz"
    make, expected = BAD[case]
    make(path, good)
    assert cli.main(["run", "--reference", str(path), "--out", str(tmp_path / "report"), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --reference {path} ") and expected in err and err.count("\n") == 1, err
    assert not (tmp_path / "report").exists()


def test_a_pickled_member_is_never_unpickled(tmp_path, capsys):
    marker, path = tmp_path / "unpickled", tmp_path / "trap.npz"
    members = _members(open_recording("seed-float32").path)
    members["fitted/W1"] = np.array([Trap(marker)], dtype=object)  # np.savez pickles an object array
    np.savez(path, **members)
    assert cli.main(["run", "--reference", str(path), "--quiet"]) == 2
    assert "cannot be read as a recording (Object arrays cannot be loaded" in capsys.readouterr().err
    assert not marker.exists()


def test_a_bad_recording_from_a_real_process_has_no_traceback(tmp_path):
    path = tmp_path / "cut.npz"
    _truncated(path, open_recording("seed-float32").path)
    done = parity_without_tensorflow("check", "--layers", FIXTURES / "book_layers.py", "--reference", path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("error: --reference") and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize("argv, expected", [
    (["record"], "error: record needs --out, the recording file to write (.npz) (received: no --out)"),
    (["record", "--out", "{tmp}/r.txt"], "error: --out {tmp}/r.txt must name a .npz file"),
    (["record", "--out", "{tmp}/none/r.npz"], "error: --out {tmp}/none/r.npz: the folder {tmp}/none does not exist"),
    (["record", "--out", "{tmp}/taken.npz"], "error: --out {tmp}/taken.npz exists and is not a keras-parity recording; "
                                              "it is left as it is"),
    (["record", "--out", "{tmp}/r.npz", "--no-plots"], "error: record writes no report, so --no-plots"),
    (["record", "--verify", "seed-float32", "--seed", "3"], "error: record --verify FILE computes FILE's own "
                                                             "configuration again: give it alone (received: --seed"),
    (["record", "--verify", "{tmp}/none.npz"], "error: --reference {tmp}/none.npz is neither a file nor a shipped "
                                                "recording (deep-float32, deep-float64, regularized-float32, "
                                                "regularized-float64, seed-float32"),
    (["run", "--reference", "seed-float64", "--seed", "7"], "error: --seed 7 contradicts --reference seed-float64, "
                                                             "recorded with seed 44: leave it out, or record again"),
    (["sweep", "--seeds", "1", "--reference", "seed-float32", "--out", "{tmp}/s"], "error: unrecognized arguments: --reference"),
])
def test_record_and_reference_bad_input_is_one_error_line(argv, expected, tmp_path, capsys):
    (tmp_path / "taken.npz").write_text("a file of someone else's")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected.replace("{tmp}", str(tmp_path))) and err.count("\n") == 1, err
    assert (tmp_path / "taken.npz").read_text() == "a file of someone else's"


def test_record_and_verify_from_the_command_line(momentum_recording, tmp_path, capsys):
    assert cli.main(["record", "--verify", str(momentum_recording)]) == 0
    assert capsys.readouterr().out.startswith("holds: the installed Keras ")
    recording = open_recording(momentum_recording)
    arrays = dict(recording.arrays)
    arrays["stepping/state_after/v/b1"] = arrays["stepping/state_after/v/b1"] * 1.01  # the optimizer's state moved
    moved = tmp_path / "moved.npz"
    write_recording(moved, recording.meta, arrays)
    assert cli.main(["record", "--verify", str(moved)]) == 1
    out = capsys.readouterr().out
    versions = f"Keras {recording.meta['keras']} / TensorFlow {recording.meta['tensorflow']}"
    assert out.startswith(f"moved: the installed {versions} does not compute what {moved} recorded with {versions}: "
                          "stepping/state_after/v/b1[")
    assert "the largest move: stepping/state_after/v/b1 by" in out


def test_grade_with_a_reference_never_loads_tensorflow_in_its_workers(tmp_path):
    """Each submission's row and report as `parity check --reference` gives them; the workers say what they loaded."""
    seen = tmp_path / "seen.txt"
    spy = tmp_path / "spy.py"
    spy.write_text((SUBMISSIONS / "correct.py").read_text() + "\n\nimport sys as _sys\n\n"
                   f"_original_forward = Relu.forward\n\ndef _forward(self, x):\n"
                   f"    with open({str(seen)!r}, 'a') as log:\n"
                   "        log.write(str(any(_sys.modules.get(m) for m in ('tensorflow', 'keras'))) + '\\n')\n"
                   "    return _original_forward(self, x)\n\nRelu.forward = _forward\n")
    out = tmp_path / "book"
    status = cli.main(["grade", str(spy), str(SUBMISSIONS / "buggy_relu.py"), "--reference", "seed-float32",
                       "--out", str(out), "--workers", "1", "--timeout", "60", "--no-plots", "--quiet"])
    assert status == 0
    rows = {Path(r["file"]).stem: r for r in csv.DictReader(open(out / "gradebook.csv", newline=""))}
    assert rows["spy"]["status"] == "pass" and rows["buggy_relu"]["status"] == "fail"
    assert "mask_mismatch" in rows["buggy_relu"]["error_codes"].split(";")
    assert set(seen.read_text().split()) == {"False"}  # the worker ran the layers, and never had TensorFlow
    for name in ("spy", "buggy_relu"):
        assert json.loads((out / name / "summary.json").read_text())["keras_side"]["recording"] == "seed-float32"


def test_a_saved_model_and_a_data_file_are_recorded_and_not_read_again(tmp_path, capsys):
    import keras

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3, activation="relu"), keras.layers.Dense(1)])
    model.save(tmp_path / "m.keras")
    x = np.random.default_rng(0).normal(size=(40, 2))
    rows = "".join(f"{float(a)!r},{float(b)!r},{float(0.5 * a - b)!r}\n" for a, b in x)
    (tmp_path / "d.csv").write_text("x0,x1,y\n" + rows)
    settings = {"model_path": tmp_path / "m.keras", "data_path": tmp_path / "d.csv", "dtype": "float64"}
    recording = tmp_path / "model.npz"
    assert cli.main(["record", "--model", str(settings["model_path"]), "--data", str(settings["data_path"]),
                     "--dtype", "float64", "--out", str(recording)]) == 0
    said = capsys.readouterr().out
    assert said.startswith(f"recorded: {recording} (") and ", float64, 40 samples (32 train), 0 epochs," in said
    live = _live(tmp_path, None, **settings)
    (tmp_path / "m.keras").rename(tmp_path / "gone.keras")  # a recorded check reads neither file
    (tmp_path / "d.csv").rename(tmp_path / "gone.csv")
    done = parity_without_tensorflow("run", "--reference", recording, "--no-plots", "--out", tmp_path / "recorded")
    assert done.returncode == 0, done.stdout + done.stderr
    recorded = _summary(tmp_path / "recorded")
    assert recorded.pop("keras_side")["source"] == "recorded" and live.pop("keras_side")["source"] == "computed"
    assert recorded == live
    assert recorded["model"]["source"] == str(tmp_path / "m.keras")
