"""A recording of a model with Dropout and BatchNormalization (issue 22's) holds what its training-mode phases take
from Keras: the masks each Dropout drew in the batch probe and in every step, the batch statistics each
BatchNormalization normalized with, its moving statistics after every step, and a saved model's BatchNormalization
and Dropout options. A recorded check of it, where TensorFlow and Keras cannot be imported, gives the live check's
verdict, codes, blamed classes and numbers: reference layers and planted chapter-6 bugs in both dtypes, and Adam's
cancelled_bias warning; `parity record --verify` accepts a recording and names a moved mask."""

import json
import subprocess
import sys

import numpy as np
import pytest

from parity import cli, pipeline
from parity.errors import ParityInputError
from parity.keras_side.recording import open_recording
from parity.keras_side.recording_file import write_recording
from parity.keras_side.reference import reference_for
from parity.prepare import prepare, resolve_recorded
from parity.record import record, verify
from parity.settings.config import resolve
from parity.user_code.loader import load
from testkit import FIXTURES, MOMENTUM_RULE, MOMENTUM_RULE_FLOAT32, assert_close

REGULARIZED = {"scenario": "regularized"}
# (name, the layers module (None: the reference layers), settings, the error code it must fail with (None: passes))
CASES = [
    *((f"reference-{d}", None, {"dtype": d}, None) for d in ("float32", "float64")),
    *((f"running-never-updated-{d}", "bn_running_never_updated.py", {"dtype": d}, "update_mismatch")
      for d in ("float32", "float64")),
    *((f"dropout-backward-without-mask-{d}", "dropout_backward_without_mask.py", {"dtype": d}, "gradient_mismatch")
      for d in ("float32", "float64")),
    # float32 Adam: b1 before the BatchNormalization steps its own rounding on each side (README: cancelled_bias)
    ("adam-float32", None, {"dtype": "float32", "optimizer": "adam"}, None),
]
# Each case checked against its recording in one process where importing TensorFlow or Keras fails.
WITHOUT_TENSORFLOW = """
import json, sys
sys.modules["tensorflow"] = None
sys.modules["keras"] = None
from parity import pipeline
from parity.settings.config import resolve
from parity.user_code.loader import load

out = {}
for name, layers, settings in json.loads(sys.argv[1]):
    report = pipeline.check(load(layers) if layers else None, resolve(settings))
    out[name] = report.summary
assert not any(sys.modules.get(m) for m in ("tensorflow", "keras")), "TensorFlow was loaded"
print(json.dumps(out, default=str))
"""


def _settings(case) -> dict:
    return REGULARIZED | case[2]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict:
    """settings (as a sorted tuple) -> the path of their recording, made here from the session's Keras side."""
    folder, made = tmp_path_factory.mktemp("regularized"), {}
    for _, _, settings, _ in CASES:
        key = tuple(sorted(settings.items()))
        if key not in made:
            made[key] = folder / f"r{len(made)}.npz"
            record(resolve(REGULARIZED | settings), made[key])
    return made


def _comparable(summary: dict) -> dict:
    """A summary as JSON reads it back, less where its Keras side came from."""
    summary = json.loads(json.dumps(summary, default=str))
    assert summary.pop("keras_side")["source"] in ("recorded", "computed")
    return summary


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_a_recording_holds_the_masks_and_statistics_keras_computed_in_training_mode(recordings, dtype):
    path = recordings[(("dtype", dtype),)]
    live = reference_for(prepare(resolve(REGULARIZED | {"dtype": dtype})))
    recording = open_recording(path)
    read = recording.reference(prepare(resolve_recorded({}, None, str(path))).spec, dtype)
    for phase in ("batch", "stepping"):
        theirs, ours = getattr(live, phase), getattr(read, phase)
        assert set(ours.masks) == set(theirs.masks) == {1}  # the Dropout after Dense 1
        np.testing.assert_array_equal(ours.masks[1], theirs.masks[1])
        assert ours.masks[1].dtype == bool and 0.7 < ours.masks[1].mean() < 0.9  # Keras kept about 1 - 0.2
        assert set(ours.observed) == set(theirs.observed) == {"batch_mean1", "batch_var1"}
        for name in ours.observed:
            np.testing.assert_array_equal(ours.observed[name], theirs.observed[name])
    assert recording.arrays["batch/masks/1"].shape == (len(live.batch.loss), 10 * 8)  # (batches, batch size * units)
    assert list(read.stepping.params_after) == list(live.stepping.params_after)  # running statistics last, as stepped
    for name in ("running_mean1", "running_var1", "b1", "gamma1"):
        np.testing.assert_array_equal(read.stepping.params_after[name], live.stepping.params_after[name])
    # the moving statistics recorded after each step follow the batch statistics recorded with it, in Keras's
    # momentum convention, from the fitted value before the first step
    means, before = read.stepping.params_after["running_mean1"], read.fitted["running_mean1"]
    previous = np.vstack([before[None], means[:-1]])
    assert_close(0.9 * previous + 0.1 * read.stepping.observed["batch_mean1"], means,
                 MOMENTUM_RULE_FLOAT32 if dtype == "float32" else MOMENTUM_RULE)


def test_a_recorded_check_without_tensorflow_equals_the_live_check_on_reference_and_planted_layers(recordings):
    jobs = [(name, str(FIXTURES / layers) if layers else None,
             _settings((name, layers, settings, code)) | {"reference": str(recordings[tuple(sorted(settings.items()))])})
            for name, layers, settings, code in CASES]
    # The recorded checks run in their process while the live ones run here, each on a core.
    with subprocess.Popen([sys.executable, "-c", WITHOUT_TENSORFLOW, json.dumps(jobs)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        live = {name: pipeline.check(load(str(FIXTURES / layers)) if layers else None,
                                     resolve(REGULARIZED | settings)).summary for name, layers, settings, _ in CASES}
        stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout[-2000:] + stderr[-4000:]
    recorded = json.loads(stdout)
    assert set(recorded) == {case[0] for case in CASES}
    for name, _, _, code in CASES:
        assert recorded[name]["keras_side"]["source"] == "recorded"
        assert _comparable(recorded[name]) == _comparable(live[name]), name  # verdict, codes, classes, numbers
        errors = {f["code"] for f in recorded[name]["findings"] if f["severity"] == "error"}
        if code:
            assert recorded[name]["verdict"] == "fail" and code in errors, (name, errors)
        else:
            assert recorded[name]["verdict"] == "pass", (name, errors)
    warnings = {f["code"] for f in recorded["adam-float32"]["findings"] if f["severity"] == "warning"}
    assert "cancelled_bias" in warnings  # stepped again with the recording's b1 after every step, as live


def test_a_saved_model_recording_keeps_its_batchnormalization_and_dropout(tmp_path, capsys):
    from parity.keras_side import backend

    import keras

    backend.configure("float32", 3)
    L = keras.layers
    model = keras.Sequential([keras.Input((2,)), L.Dense(8), L.BatchNormalization(momentum=0.8, epsilon=1e-3, name="bn"),
                              L.Activation("relu"), L.Dropout(0.3), L.Dense(3, activation="softmax")])
    rng = np.random.default_rng(0)  # values no initializer gives: they must come from the recording
    model.get_layer("bn").set_weights([rng.uniform(0.5, 1.5, 8), rng.normal(size=8), rng.normal(size=8),
                                       rng.uniform(0.5, 2.0, 8)])
    model.save(tmp_path / "m.keras")
    settings = {"model_path": tmp_path / "m.keras", "scenario": "softmax", "dtype": "float64"}
    path = tmp_path / "m.npz"
    assert cli.main(["record", "--model", str(settings["model_path"]), "--scenario", "softmax", "--dtype", "float64",
                     "--out", str(path), "--quiet"]) == 0
    pipeline.check(None, resolve(settings | {"plots": False, "out": tmp_path / "live"}), folder=pipeline.ReportFolder())
    assert prepare(resolve_recorded({}, None, str(path))).spec == prepare(resolve(settings)).spec  # momentum 0.8, ...
    (tmp_path / "m.keras").rename(tmp_path / "gone.keras")  # a recorded check reads the model from the recording
    done = subprocess.run([sys.executable, "-c", "import sys; sys.modules['tensorflow'] = None; "
                           "sys.modules['keras'] = None\nfrom parity.cli import command\nsys.exit(command(sys.argv[1:]))",
                           "run", "--reference", str(path), "--no-plots", "--out", str(tmp_path / "recorded")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    recorded, live = (json.loads((tmp_path / side / "summary.json").read_text()) for side in ("recorded", "live"))
    recorded["config"].pop("out"), live["config"].pop("out")
    assert _comparable(recorded) == _comparable(live)  # verdict, findings, every number
    layer = recorded["model"]["layers"][0]
    assert layer["batch_norm"] == {"momentum": pytest.approx(0.8), "epsilon": pytest.approx(1e-3)}
    assert layer["dropout"] == pytest.approx(0.3)
    assert "stepping.running_var1" in recorded["max_abs_diff"]


def test_verify_accepts_the_shipped_recordings_and_names_a_moved_mask(tmp_path, capsys):
    for name in ("regularized-float32", "regularized-float64"):  # recorded by scripts/record_shipped.py, another process
        assert cli.main(["record", "--verify", name]) == 0, capsys.readouterr()
        assert capsys.readouterr().out.startswith("holds: ")
    shipped = open_recording("regularized-float64")
    arrays = dict(shipped.arrays)
    moved = arrays["stepping/masks/1"].copy()
    moved[3, 5] = ~moved[3, 5]  # one unit of step 3's mask kept where Keras dropped it, or the other way round
    arrays["stepping/masks/1"] = moved
    path = tmp_path / "moved.npz"
    write_recording(path, {k: v for k, v in shipped.meta.items() if k != "digests"}, arrays)
    outcome = verify(path)
    assert not outcome.holds and outcome.worst["key"] == "stepping/masks/1" and outcome.worst["index"] == [3, 5]


@pytest.mark.parametrize("key", ["stepping/masks/1", "batch/masks/1", "stepping/params_after/running_mean1"])
def test_a_recording_without_what_its_dropout_or_batchnormalization_reads_is_bad_input(key, tmp_path):
    shipped = open_recording("regularized-float32")
    path = tmp_path / "incomplete.npz"
    write_recording(path, {k: v for k, v in shipped.meta.items() if k != "digests"},
                    {k: v for k, v in shipped.arrays.items() if k != key})
    with pytest.raises(ParityInputError, match=f"holds no {key}, which a check of this model's Dropout or "
                                               "BatchNormalization reads: it is incomplete; record it again"):
        prepare(resolve_recorded({}, None, str(path)))
