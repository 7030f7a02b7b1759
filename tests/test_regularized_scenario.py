"""The regularized scenario (the book's MultiLayerNetExtend shape: Affine -> BatchNormalization -> Relu -> Dropout ->
Affine -> SoftmaxWithLoss): it passes in both dtypes with each phase in its mode, a learner's classes are driven with
their train flag however they spell it, and a class that takes none is refused before any work."""

import json
from pathlib import Path

import numpy as np
import pytest

from parity import cli
from parity.book.regularization import Dropout as InvertedDropout

FIXTURES = Path(__file__).parent / "fixtures"
REGULARIZED = {"scenario": "regularized"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_regularized_scenario_passes_with_each_phase_in_its_mode(cached_run, dtype):
    result = cached_run({**REGULARIZED, "dtype": dtype})
    assert result.verdict == "pass", [f.message for f in result.findings]
    if dtype == "float64":
        assert max(result.max_abs_diff().values()) <= 1e-12
    steps = result.stepping
    assert set(steps.diffs) >= {"running_mean1", "running_var1", "dgamma1", "dbeta1", "gamma1", "beta1"}
    assert len(steps.rows) == result.config.train // result.config.batch_size  # batch-wise: one step per batch
    assert "dW1" not in result.probe.diffs and "z1" in result.probe.diffs  # test mode: forward only
    assert result.modes["probe"].startswith("test mode") and result.modes["stepping"].startswith("training mode")
    assert result.modes["dropout_routes"] == {"layer 1": ["driven"]}
    # the running statistics moved on both sides, step by step, and are compared after each step
    assert not np.allclose(steps.keras.params_after["running_var1"][0], steps.keras.params_after["running_var1"][-1])
    kept = steps.keras.masks[1].mean()
    assert 0.7 < kept < 0.9  # Keras kept about 1 - rate = 0.8 of the units


def test_a_learners_inverted_dropout_and_the_books_batch_normalization_pass_check(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(["check", "--layers", str(FIXTURES / "learner_regularization.py"), "--scenario", "regularized",
                     "--dtype", "float64", "--out", str(out)])
    summary = json.loads((out / "summary.json").read_text())
    assert code == 0, [f["message"] for f in summary["findings"]]
    assert summary["layers"]["Dropout"].startswith("yours") and summary["layers"]["BatchNormalization"].startswith("yours")
    assert "modes:" in capsys.readouterr().out
    html = (out / "report.html").read_text()
    assert "<h2>Modes</h2>" in html and "test mode" in html and "layer 1: driven" in html


def _spelled(flag: str | None):
    """The reference inverted Dropout with its train flag under another name (None: a second positional argument)."""
    source = (f"def forward(self, x, {flag}=True):\n    return InvertedDropout.forward(self, x, {flag})\n" if flag
              else "def forward(self, x, mode):\n    return InvertedDropout.forward(self, x, mode)\n")
    namespace = {"InvertedDropout": InvertedDropout}
    exec(source, namespace)
    return type(f"Dropout_{flag}", (InvertedDropout,), {"forward": namespace["forward"]})


@pytest.mark.parametrize("flag", ["train_flg", "train_flag", "training", "is_training", "train", None])
def test_each_train_flag_spelling_is_driven(cached_run, flag):
    result = cached_run({**REGULARIZED, "dtype": "float64"}, {"Dropout": _spelled(flag)})
    assert result.verdict == "pass", [f.message for f in result.findings]
    assert result.modes["dropout_routes"] == {"layer 1": ["driven"]}


class ForgetsTheMask(InvertedDropout):
    """Backward without the mask: gradient reaches the units forward dropped."""

    def backward(self, dout):
        return dout / (1.0 - self.dropout_ratio)


def test_a_dropout_whose_backward_forgets_the_mask_fails_the_training_phases(cached_run):
    result = cached_run({**REGULARIZED, "dtype": "float64"}, {"Dropout": ForgetsTheMask})
    assert result.verdict == "fail"
    assert result.summaries["batch"].verdicts["fail"] > 0 and result.summaries["probe"].verdicts["fail"] == 0


def test_a_class_without_a_train_flag_is_refused_before_any_work(tmp_path, capsys):
    layers = tmp_path / "no_flag.py"
    layers.write_text("class Dropout:\n    def __init__(self, dropout_ratio=0.5):\n        self.r = dropout_ratio\n"
                      "    def forward(self, x):\n        return x\n    def backward(self, dout):\n        return dout\n")
    out = tmp_path / "out"
    assert cli.main(["check", "--layers", str(layers), "--scenario", "regularized", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "forward(self, x)" in err and "forward(x, train_flg=True)" in err
    assert not out.exists()


def test_recording_such_a_model_is_refused_in_one_line_not_written(tmp_path, capsys):
    out = tmp_path / "r.npz"
    assert cli.main(["record", "--scenario", "regularized", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Dropout or BatchNormalization" in err
    assert not out.exists()
