"""A recording of the cnn scenario holds the Keras side of the chapter-7 layer probes (Conv2D, MaxPooling2D,
Flatten + Dense at every seeded probe input, and the other kernels the traps ask about), so a recorded check of a
user's Convolution, Pooling or tensor-input Affine gives the live check's verdict, codes and numbers in a process
where TensorFlow and Keras cannot be imported."""

import json
import subprocess
import sys

import numpy as np
import pytest

from parity import pipeline
from parity.compare.keras_values import every_keras_value
from parity.errors import ParityInputError
from parity.keras_side.recording import open_recording
from parity.keras_side.recording_file import write_recording
from parity.record import record
from parity.selfcheck.planted_conv import PLANTED_CONV
from parity.settings.config import resolve
from parity.user_code.loader import load

CNN = {"scenario": "cnn", "dtype": "float64"}  # the selftest's chapter-7 configuration
# Every planted chapter-7 class checked against a recording in a process where importing TensorFlow or Keras fails.
WITHOUT_TENSORFLOW = """
import json, sys
sys.modules["tensorflow"] = None
sys.modules["keras"] = None
from parity import pipeline
from parity.selfcheck.planted_conv import PLANTED_CONV
from parity.settings.config import resolve
from parity.user_code.loader import load

out = {}
for name, kit, _, _ in PLANTED_CONV:
    report = pipeline.check(load(named=kit), resolve({"scenario": "cnn", "dtype": "float64", "reference": sys.argv[1]}))
    out[name] = report.summary
assert not any(sys.modules.get(m) for m in ("tensorflow", "keras")), "TensorFlow was loaded"
print(json.dumps(out, default=str))
"""


@pytest.fixture(scope="module")
def cnn_recording(tmp_path_factory):
    out = tmp_path_factory.mktemp("cnn") / "cnn-float64.npz"
    record(resolve(CNN), out)
    return out


def _comparable(summary: dict) -> dict:
    """A summary as JSON reads it back, less where its Keras side came from."""
    summary = json.loads(json.dumps(summary, default=str))
    summary.pop("keras_side")
    return summary


def test_a_cnn_recording_holds_the_keras_side_of_every_chapter_7_probe(cnn_recording):
    meta = open_recording(cnn_recording).meta
    asked = {entry["what"][0] for entry in meta["layer_probes"]}
    assert {"conv2d", "max_pool", "flatten_dense"} <= asked
    # 5 cases, each with its kernel and the other layouts the kernel_layout trap asks about: 2, or 3 where FH == FW
    assert sum(e["what"][0] == "conv2d" for e in meta["layer_probes"]) == 3 + 3 + 3 + 4 + 4
    assert sum(e["what"][0] == "max_pool" for e in meta["layer_probes"]) == 4 + 1  # the cases and the ties probe
    assert sum(e["what"][0] == "flatten_dense" for e in meta["layer_probes"]) == 2  # W, and its channels-last rows
    every_keras_value(open_recording(cnn_recording).layers(), images=True)  # answers each without Keras


def test_a_recorded_cnn_check_of_each_planted_conv_bug_without_tensorflow_equals_the_live_check(cnn_recording):
    # The recorded checks run in their process while the live ones run here, each on a core.
    with subprocess.Popen([sys.executable, "-c", WITHOUT_TENSORFLOW, str(cnn_recording)], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        live = {name: pipeline.check(load(named=kit), resolve(CNN)).summary for name, kit, *_ in PLANTED_CONV}
        stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stdout[-2000:] + stderr[-4000:]
    recorded = json.loads(stdout)
    assert set(recorded) == {name for name, *_ in PLANTED_CONV}
    for name, _, expected, _ in PLANTED_CONV:
        assert recorded[name]["keras_side"]["source"] == "recorded"
        assert _comparable(recorded[name]) == _comparable(live[name]), name  # verdict, codes, classes, numbers
        codes = {f["code"] for f in recorded[name]["findings"] if f["severity"] == "error"}
        if expected:
            assert recorded[name]["verdict"] == "fail" and expected in codes, name
        else:
            assert not codes, name


def test_a_cnn_recording_without_the_chapter_7_probes_is_refused_naming_the_probe(cnn_recording, tmp_path):
    """One recorded before the probes were (a version that asked Keras for them live): bad input, record again."""
    recording = open_recording(cnn_recording)
    keep = [i for i, e in enumerate(recording.meta["layer_probes"]) if e["what"][0] not in ("conv2d", "max_pool",
                                                                                               "flatten_dense")]
    arrays = {k: v for k, v in recording.arrays.items() if not k.startswith("layers/")}
    for new, old in enumerate(keep):
        entry = recording.meta["layer_probes"][old]
        for part, count in (("in", entry["inputs"]), ("out", entry["outputs"])):
            arrays |= {f"layers/{new}/{part}/{j}": recording.arrays[f"layers/{old}/{part}/{j}"] for j in range(count)}
    meta = {k: v for k, v in recording.meta.items() if k not in ("tool", "kind", "recording_schema", "digests")}
    meta["layer_probes"] = [recording.meta["layer_probes"][i] for i in keep]
    older = tmp_path / "older.npz"
    write_recording(older, meta, arrays)
    with pytest.raises(ParityInputError, match=r"holds no Keras value for the layer probe conv2d/1/0.*record it again"):
        pipeline.check(load(named={"Convolution": PLANTED_CONV[-1][1]["Convolution"]}),
                       resolve(CNN | {"reference": str(older)}))
    assert np.array_equal(recording.arrays["data/x"], arrays["data/x"])  # only the probes were left out


def test_a_cnn_recording_without_the_convolutions_maps_is_refused(cnn_recording, tmp_path):
    """Without them its check would leave the convolutions' pre-activations uncompared: bad input, record again."""
    recording = open_recording(cnn_recording)
    arrays = {k: v for k, v in recording.arrays.items() if "/maps/" not in k}
    assert len(arrays) < len(recording.arrays)
    meta = {k: v for k, v in recording.meta.items() if k not in ("tool", "kind", "recording_schema", "digests")}
    older = tmp_path / "older.npz"
    write_recording(older, meta, arrays)
    with pytest.raises(ParityInputError, match=r"holds no pre-activation maps of the convolutions \(probe/maps/1\)"):
        pipeline.check(None, resolve(CNN | {"reference": str(older)}))
