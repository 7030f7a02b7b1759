"""Chapter 7 as learners write it before im2col, a Python loop over the output positions: correct loop-style layers
pass `parity check --scenario cnn` in both dtypes, and a window offset that forgets the stride fails on the Pooling."""

import json

import pytest

from parity import cli

from testkit import FIXTURES


def _check(layers: str, dtype: str, out) -> tuple[int, dict]:
    code = cli.main(["check", "--layers", f"{FIXTURES}/{layers}", "--scenario", "cnn", "--dtype", dtype,
                     "--no-plots", "--quiet", "--out", str(out)])
    return code, json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_loop_style_convolution_and_pooling_pass_the_cnn_scenario(tmp_path, dtype):
    code, summary = _check("learner_loop_conv.py", dtype, tmp_path / "report")
    assert code == 0, [f["message"] for f in summary["findings"] if f["severity"] == "error"]
    assert summary["layers"]["Convolution"].startswith("yours") and summary["layers"]["Pooling"].startswith("yours")
    if dtype == "float64":
        assert max(summary["max_abs_diff"].values()) <= 1e-12


def test_a_loop_style_pooling_whose_windows_forget_the_stride_fails_on_the_pooling(tmp_path):
    code, summary = _check("learner_loop_pool_offset.py", "float64", tmp_path / "report")
    assert code == 1
    roots = [f for f in summary["findings"] if f["severity"] == "error" and not f.get("consequence_of")]
    assert roots and {f["layer"] for f in roots} == {"Pooling"}, roots
    assert {f["code"] for f in roots} == {"forward_mismatch", "gradient_mismatch"}
    assert all("learner_loop_pool_offset.py:" in f["where"] for f in roots)  # pointed at the learner's own line
