"""The terminal summary on real runs: short on a pass, one line per root cause, units named as units, excuses explained."""

import re
from pathlib import Path

import numpy as np
import pytest

import parity
from parity.compare.phase_findings import one_line
from parity.report.terminal import terminal_text
from testkit import FIXTURES

UNIT_AS_NUMBER = re.compile(r"\b\d+\.\d+ \d+%")  # "1.0 0%": the old unit label, read as a number
STARTS = ("keras-parity:", "verdict:", "excused:", "largest differences:", "checked:", "  [", "dead ReLU units",
          "dead while stepping:", "dead while stepping, on Keras's side:", "on your side, ", "on the NumPy side, ",
          "saturated sigmoid units", "reports:", "report: ")  # every line the summary prints begins so


def text(report, verbose: bool = False) -> str:
    return terminal_text(report.result, Path("out"), ["samples.csv", "summary.json", "fit.png"], verbose=verbose)


@pytest.mark.parametrize("scenario,dtype", [("seed", "float32"), ("seed", "float64"), ("sigmoid", "float32"),
                                            ("softmax", "float32"), ("deep", "float32"), ("deep", "float64")])
def test_a_passing_built_in_scenario_prints_at_most_15_short_lines(scenario, dtype):
    report = parity.run(scenario=scenario, dtype=dtype, plots=False)
    out = text(report)
    lines = out.splitlines()
    assert report.passed and lines[1].startswith("verdict: PASS"), out
    assert len(lines) <= 15, out
    assert not UNIT_AS_NUMBER.search(out), out
    assert all(line.startswith(STARTS) for line in lines), out
    assert "[info]" not in out  # collapsed: the dead units and the stepping lesson have a line each
    if scenario != "sigmoid":
        assert re.search(r"dead ReLU units \(share of the \d+ probed samples\): layer 1, (unit 0 \d+%|\d+ units: )", out), out
        assert "a dead ReLU zeroes dW for that sample, not W" in out


def test_the_default_run_names_each_unit_and_its_dead_share():
    out = text(parity.run(plots=False))
    assert "dead ReLU units (share of the 200 probed samples): layer 1, unit 0 40%; layer 1, unit 1 32%" in out, out
    assert "dead while stepping: layer 1, unit 0 on 62 of 160 steps, layer 1, unit 1 on 55;" in out, out


def test_verbose_prints_every_finding_as_a_full_sentence():
    report = parity.run(plots=False)
    out = text(report, verbose=True)
    infos = [f for f in report.findings if f.severity == "info"]
    assert infos and all(f"  [info] {f.code}: {f.message}" in out.splitlines() for f in infos)
    assert "layer 1, unit 1 was dead on 55 of 160 steps" in out


def test_a_relu_without_mask_is_one_root_cause_with_its_consequences_counted():
    report = parity.check(str(FIXTURES / "relu_without_mask.py"), plots=False)
    out = text(report)
    roots = [line for line in out.splitlines() if line.startswith("  [")]
    errors = [line for line in roots if line.startswith("  [error]")]
    assert len(errors) == 1 and "mask_mismatch: Relu:" in errors[0], out
    followers = [f for f in report.errors if f.consequence_of]
    assert followers and f"[+{len(followers)} findings that follow from it: " in errors[0], out
    assert "fix: ReLU's backward must zero dout" in errors[0]
    assert len(roots) == len({(f.code, f.message) for f in report.findings if f.severity != "info" and not f.consequence_of})
    assert len(out.splitlines()) <= 12, out
    assert all(line.startswith(STARTS) for line in out.splitlines()), out  # no value breaks a finding's line
    assert "zero_convention" not in out and "use mask = x <= 0" not in out  # its mask already is that


def test_a_failing_run_says_where_the_learners_relu_passed_gradient_that_keras_blocked():
    report = parity.check(str(FIXTURES / "relu_without_mask.py"), plots=False)
    lines = text(report).splitlines()
    keras = next(line for line in lines if line.startswith("dead while stepping"))
    assert keras.startswith("dead while stepping, on Keras's side: layer 1, unit 0 on 62 of 160 steps")  # not the pass's line
    probe = report.result.probe
    ours, theirs = probe.numpy.grads["W1"][:, 0, :], probe.keras.grads["W1"][:, 0, :]  # (samples, units)
    leaked = (ours != 0) & (theirs == 0)
    counts = [f"layer 1, unit {j} on {leaked[:, j].sum()}" for j in range(2)]
    firsts = [int(np.argmax(leaked[:, j])) for j in range(2)]
    assert all(0 < leaked[:, j].sum() == probe.dead_keras[1][:, j].sum() for j in range(2))
    ours_line = lines[lines.index(keras) + 1]
    assert ours_line == (f"on your side, gradient passed where Keras's ReLU blocked it: dW1 was not 0 where Keras's was "
                         f"exactly 0 for {counts[0]} of the 200 probed samples (first at sample {firsts[0]}), "
                         f"{counts[1]} (first at sample {firsts[1]})")


def test_a_run_failing_elsewhere_says_its_dW_was_0_wherever_keras_was():
    from parity.selfcheck.selftest import SignFlipLoss

    lines = text(parity.check(MeanSquaredError=SignFlipLoss, plots=False)).splitlines()
    assert lines[1].startswith("verdict: FAIL")
    assert ("on your side, dW was exactly 0 wherever Keras's was, on all 200 probed samples: the failure is not in "
            "the ReLU mask") in lines


def test_a_dW_that_cannot_be_compared_is_not_called_0_where_keras_is():
    from parity.selfcheck.selftest import AffineTransposedDW

    lines = text(parity.check(Affine=AffineTransposedDW, plots=False)).splitlines()
    assert ("on your side, dW could not be compared with Keras's on any of the 200 probed samples (not finite, or not "
            "of W's shape: see the findings above), so where gradient passed a dead unit is not known") in lines


def test_the_last_line_is_the_absolute_path_of_report_html():
    report = parity.run(plots=False)
    files = ["samples.csv", "steps.csv", "gradients.csv", "lesson.png", "fit.png", "report.html", "summary.json"]
    last = terminal_text(report.result, Path("reports/seed"), files).splitlines()[-1]
    html = Path("reports/seed").absolute() / "report.html"
    assert html.is_absolute() and last == (f"report: {html} (beside it: samples.csv, steps.csv, gradients.csv, "
                                           "summary.json, 2 plots)")


def test_an_error_only_in_a_class_the_scenario_never_uses_says_so_and_names_the_scenario_that_does(tmp_path):
    layers = tmp_path / "sigmoid.py"
    layers.write_text("from parity.book.layers import Sigmoid as Reference\n\n\nclass Sigmoid(Reference):\n"
                      "    def backward(self, dout):\n        return dout * self.out  # forgot (1 - out)\n")
    report = parity.check(str(layers), plots=False)
    out = text(report)
    assert report.verdict == "fail"
    verdict = out.splitlines()[1]
    assert verdict.startswith("verdict: FAIL, only from the layer probe of your Sigmoid, which the seed scenario never uses")
    assert "probe 200/200" in verdict and "--scenario sigmoid uses Sigmoid" in verdict, verdict


def test_a_difference_excused_as_a_convention_is_explained_and_never_called_beyond_the_tolerance():
    report = parity.check(str(FIXTURES / "book_softmax.py"), scenario="softmax", dtype="float64", plots=False)
    out = text(report)
    assert report.passed and report.result.summaries["probe"].verdicts["convention"] > 0, out
    assert "beyond the tolerance" not in out, out
    excused = [line for line in out.splitlines() if line.startswith("excused: the loss on")]
    assert excused and "the book's log(y + 1e-7)" in excused[0] and "a convention, not a bug" in excused[0], out
    assert "closest to the tolerance (excused rows aside): " in out


def test_values_in_messages_stay_on_one_line():
    assert one_line(np.arange(40.0).reshape(4, 10) / 3) == "[0, 0.333333, 0.666667, ..., 12.3333, 12.6667, 13]"
    assert one_line(np.array([[-0.11615, 0.025384]])) == "[-0.11615, 0.025384]"
    assert one_line(np.float32(0.5)) == "0.5"
