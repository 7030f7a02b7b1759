"""A recorded Keras side (`parity record`, `--reference`, `reference=`) gives the check it is read into the same
verdict, codes, blamed classes and numbers as the live check: on the reference layers and on every planted bug,
in both dtypes, with every optimizer; and the report says where its Keras side came from."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from parity.errors import ParityInputError

import parity
from parity import pipeline
from parity.keras_side.recording import open_recording
from parity.keras_side.recording_file import SHIPPED, shipped_names, write_recording
from parity.record import record, verify
from parity.selfcheck.planted import PLANTED_OPTIMIZERS
from parity.selfcheck.selftest import CORRECT_OPTIMIZERS, PLANTED
from parity.settings.config import resolve
from parity.testing import assert_parity
from parity.user_code.loader import load
from testkit import FIXTURES



@pytest.fixture(scope="session")
def recorded(tmp_path_factory):
    """settings -> the path of their recording, made once per session (from the session's cached Keras side)."""
    folder, made = tmp_path_factory.mktemp("recordings"), {}

    def get(**settings) -> Path:
        key = tuple(sorted(settings.items()))
        if key not in made:
            made[key] = folder / f"r{len(made)}.npz"
            record(resolve(settings), made[key])
        return made[key]

    return get


def _both(kit: dict | None, recording: Path, **settings):
    """(live, recorded) Reports of one kit under one configuration, through the pipeline every door calls."""
    user = load(named=kit) if kit else None
    live = pipeline.check(user, resolve(settings))
    return live, pipeline.check(user, resolve(settings | {"reference": str(recording)}))


def _same(live, recorded) -> None:
    """Everything the two reports say is the same but where their Keras side came from."""
    assert live.result.keras_side["source"] == "computed" and recorded.result.keras_side["source"] == "recorded"
    a, b = (dict(r.summary) for r in (live, recorded))
    a.pop("keras_side"), b.pop("keras_side")
    assert b == a  # verdict, findings (codes, classes, messages, fixes), max differences, rows, fitted weights
    pd.testing.assert_frame_equal(recorded.steps, live.steps)
    if live.result.probe is not None:
        pd.testing.assert_frame_equal(recorded.samples, live.samples)
        pd.testing.assert_frame_equal(recorded.gradients, live.gradients)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", PLANTED, ids=[c.name for c in PLANTED])
def test_a_recorded_check_of_each_planted_bug_equals_the_live_check(recorded, case, dtype):
    live, from_file = _both(case.kit, recorded(dtype=dtype), dtype=dtype)
    _same(live, from_file)
    if case.expected:  # and it is still caught, with its code
        assert from_file.verdict == "fail" and case.expected in {f.code for f in from_file.errors}
    else:
        assert from_file.passed


@pytest.mark.parametrize("case", [*PLANTED_OPTIMIZERS, *CORRECT_OPTIMIZERS], ids=lambda c: c.name)
def test_a_recorded_check_with_an_optimizer_equals_the_live_check(recorded, case):
    settings = {"dtype": "float64", "optimizer": case.optimizer}
    book_class = resolve(settings).optimizer.info.book_class
    mirrored = {"hard-coded decay rate", "the Adam paper's form, epsilon 1e-8 kept on self (correct)"}
    if case.name in mirrored:  # live, Keras is built with the value the class holds; a recording cannot be rebuilt
        with pytest.raises(ParityInputError, match="holds hyperparameters that the Keras side would mirror"):
            _both({book_class: case.cls}, recorded(**settings), **settings)
        return
    live, from_file = _both({book_class: case.cls}, recorded(**settings), **settings)
    _same(live, from_file)
    assert from_file.result.optimizer["keras"] == live.result.optimizer["keras"]
    if case.expected:
        assert case.expected in {f.code for f in from_file.errors if f.layer == book_class}


def test_a_recorded_check_of_a_softmax_model_equals_the_live_check(recorded):
    kit = load(str(FIXTURES / "learner_onehot_softmax.py")).layers
    live, from_file = _both(kit, recorded(scenario="softmax"), scenario="softmax")
    _same(live, from_file)


def test_every_door_takes_a_recording_and_its_report_says_so(recorded, tmp_path):
    path = recorded(dtype="float64")
    report = parity.check(str(FIXTURES / "book_layers.py"), dtype="float64", reference=path, out=tmp_path / "r")
    source = report.summary["keras_side"]
    meta = open_recording(path).meta
    assert source["source"] == "recorded" and source["recording"] == str(path)
    assert source["summary"] == f"recorded by Keras {meta['keras']} / TensorFlow {meta['tensorflow']} on " \
                                f"{meta['processor']}, {meta['recorded_at'][:10]}"
    assert {k: source[k] for k in ("keras", "tensorflow", "numpy", "python", "processor", "config_hash")} == \
        {k: meta[k] for k in ("keras", "tensorflow", "numpy", "python", "processor", "config_hash")}
    assert f"Keras side: {source['summary']} ({path})" in str(report).splitlines()[1]
    assert f"Keras side: {source['summary']}" in (tmp_path / "r" / "report.html").read_text()
    assert assert_parity(str(FIXTURES / "book_layers.py"), dtype="float64", reference=path).passed
    with pytest.raises(AssertionError, match="mask_mismatch"):
        assert_parity(str(FIXTURES / "relu_without_mask.py"), dtype="float64", reference=path)
    live = parity.check(str(FIXTURES / "book_layers.py"), dtype="float64")
    assert live.summary["keras_side"]["source"] == "computed"
    assert not any(line.startswith("Keras side:") for line in str(live).splitlines())


def test_run_options_a_recording_does_not_fix_work_as_usual(recorded, tmp_path):
    path = recorded()
    config = tmp_path / "c.toml"
    config.write_text("[compare]\nrtol = 1e-9\natol = 1e-9\n")
    report = parity.run(reference=path, config=config, out=tmp_path / "p", format="parquet", plots=False)
    live = parity.run(config=config)
    assert report.result.tolerance.rtol == 1e-9 and report.verdict == live.verdict
    assert report.summary["max_abs_diff"] == live.summary["max_abs_diff"]
    assert (tmp_path / "p" / "samples.parquet").is_file() and not (tmp_path / "p" / "fit.png").exists()
    same = parity.run(reference=path, seed=44, dtype="float32", scenario="seed", optimizer="sgd", lr=0.01, samples=200)
    assert same.passed  # options that agree with the recording are no contradiction


@pytest.mark.parametrize("option, value, message", [
    ("seed", 5, "seed=5 contradicts reference="),
    ("dtype", "float64", "dtype=float64 contradicts reference="),
    ("scenario", "deep", "scenario=deep contradicts reference="),
    ("optimizer", "adam", "optimizer=adam contradicts reference="),
    ("lr", 0.05, "lr=0.05 contradicts reference="),
    ("samples", 100, "samples=100 contradicts reference="),
])
def test_an_option_that_contradicts_the_recording_is_bad_input_naming_both_values(recorded, option, value, message):
    path = recorded()
    with pytest.raises(parity.ParityInputError) as caught:
        parity.run(reference=path, **{option: value})
    recorded_value = {"seed": "44", "dtype": "float32", "scenario": "seed", "optimizer": "sgd", "lr": "0.01",
                      "samples": "200"}[option]
    assert str(caught.value) == f"{message}{path}, recorded with {option} {recorded_value}: leave it out, or record " \
                                "again with it"


def test_a_recording_for_another_configuration_is_bad_input(recorded, tmp_path):
    path = recorded()
    noisy = tmp_path / "noisy.toml"
    noisy.write_text("[data]\nnoise = 0.2\n")
    with pytest.raises(parity.ParityInputError, match=r"noisy.toml's noise 0.2 contradicts reference=.*recorded with "
                                                      r"noise 0.05"):
        parity.run(reference=path, config=noisy)
    meta, arrays = open_recording(path).meta, dict(open_recording(path).arrays)
    arrays["data/x"] = arrays["data/x"] + 1.0  # the same settings, other data: the fingerprint says so
    moved = tmp_path / "other-data.npz"
    write_recording(moved, meta, arrays)
    with pytest.raises(parity.ParityInputError, match=r"reference=.*other-data.npz was recorded for another "
                                                      r"configuration: data differ"):
        parity.run(reference=moved)


def test_a_reference_that_is_not_a_path_is_bad_input():
    with pytest.raises(parity.ParityInputError, match=r"reference= must be a path or a shipped recording's name "
                                                      r"\(received: 3 of type int\)"):
        parity.run(reference=3)


def test_the_shipped_recordings_are_the_built_in_scenarios_as_this_version_resolves_them():
    from parity.prepare import fingerprint, prepare
    from parity.settings.config import DTYPES
    from parity.settings.scenarios import SCENARIOS

    from parity.keras_side.recording_file import NOT_SHIPPED

    assert shipped_names() == sorted(f"{s}-{d}" for s in SCENARIOS if s not in NOT_SHIPPED for d in DTYPES)
    for name in shipped_names():
        scenario, dtype = name.split("-")
        recording = open_recording(name)
        assert recording.path == SHIPPED / f"{name}.npz"
        live = prepare(resolve({"scenario": scenario, "dtype": dtype}))  # the data here, generated afresh
        assert fingerprint(live) == (recording.meta["fingerprint"], recording.meta["config_hash"]), name


def test_the_shipped_seed_recording_still_holds_for_the_installed_keras():
    outcome = verify("seed-float32")
    assert outcome.holds, outcome.text("seed-float32")


def test_verify_names_both_versions_and_the_largest_move_of_a_recording_whose_values_moved(recorded, tmp_path):
    path = recorded()
    assert verify(path).holds
    recording = open_recording(path)
    arrays = dict(recording.arrays)
    arrays["probe/grads/W1"] = arrays["probe/grads/W1"].copy()
    arrays["probe/grads/W1"][12, 0, 1] += 1e-3  # far beyond float32's 1e-5
    moved = tmp_path / "moved.npz"
    write_recording(moved, recording.meta, arrays)
    outcome = verify(moved)
    assert not outcome.holds
    assert outcome.worst["key"] == "probe/grads/W1" and outcome.worst["index"] == [12, 0, 1]
    assert outcome.worst["abs_diff"] == pytest.approx(1e-3, rel=1e-3)
    text = outcome.text(moved)
    meta = recording.meta
    assert text.startswith(f"moved: the installed Keras {meta['keras']} / TensorFlow {meta['tensorflow']} does not "
                           f"compute what {moved} recorded with Keras {meta['keras']} / TensorFlow {meta['tensorflow']}")
    assert "probe/grads/W1[12, 0, 1] moved by 0.001" in text


def test_a_recording_holds_what_a_check_reads_and_its_provenance(recorded):
    recording = open_recording(recorded(dtype="float64"))
    meta, arrays = recording.meta, recording.arrays
    assert {"keras_parity", "recording_schema", "recorded_at", "keras", "tensorflow", "numpy", "python", "platform",
            "processor", "op_determinism", "config", "config_hash"} <= set(meta)
    assert meta["op_determinism"] == "tf.config.experimental.enable_op_determinism()"
    assert arrays["probe/grads/W1"].shape == (200, 1, 2) and arrays["stepping/params_after/b2"].shape == (160, 1)
    assert arrays["batch/grads/W2"].shape == (16, 2, 1) and arrays["data/x"].shape == (200, 1)
    assert all(a.dtype.kind in "fiu" for a in arrays.values())
    assert {tuple(e["what"])[0] for e in meta["layer_probes"]} == {"activation", "dense", "loss", "softmax",
                                                                       "dropout", "batch_norm"}
    assert np.array_equal(recording.reference(pipeline_spec(), "float64").fitted["W1"], arrays["fitted/W1"])


def pipeline_spec():
    from parity.prepare import prepare

    return prepare(resolve({})).spec


def test_a_probe_recorded_in_chunks_is_read_back_in_the_same_chunks(tmp_path):
    settings = {"samples": 270_000, "train": 160, "epochs": 1}  # two probe chunks for the seed model
    path = tmp_path / "big.npz"
    record(resolve(settings), path)
    live, from_file = _both(None, path, **settings)
    assert live.result.probe is None and from_file.result.probe is None  # compared chunk by chunk, both
    _same(live, from_file)
