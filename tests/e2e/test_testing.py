"""parity.testing.assert_parity and the pytest plugin's keras_parity fixture, run by pytest itself (pytester)."""

import re
from importlib.metadata import entry_points

import pytest

import parity
from parity.testing import assert_parity
from testkit import FIXTURES


def test_the_plugin_is_registered_under_pytest11():
    names = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert names.get("keras_parity") == "parity.pytest_plugin"


def test_assert_parity_returns_the_report_when_it_passes():
    report = assert_parity(str(FIXTURES / "book_layers.py"), dtype="float64")
    assert isinstance(report, parity.Report) and report.passed


def test_assert_parity_names_each_root_error_its_stage_and_fix():
    with pytest.raises(AssertionError) as info:
        assert_parity(str(FIXTURES / "relu_without_mask.py"), dtype="float64")
    message = str(info.value)
    first = message.splitlines()[0]
    assert first.startswith("keras-parity: FAIL with ") and "float64" in first
    assert re.search(r"mask_mismatch \[layer probe, [^\]]*Relu\]: Relu: ", message), message
    assert "fix to try: " in message
    # the consequences in the probe, batch and stepping phases, counted under their root as the terminal counts them
    assert re.search(r"\n      \d+ findings that follow from it: \d+ in probe, \d+ in batch, \d+ in stepping$", message), message


USER_TESTS = '''
from pathlib import Path

FIXTURES = Path(r"{fixtures}")


def test_my_layers_match_keras(keras_parity):
    report = keras_parity(str(FIXTURES / "book_layers.py"), dtype="float64")
    assert report.passed


def test_my_buggy_relu(keras_parity):
    keras_parity.assert_parity(str(FIXTURES / "relu_without_mask.py"), dtype="float64")
'''


def test_the_fixture_passes_a_good_test_and_fails_a_buggy_one_naming_the_code(pytester):
    """In this process (a fresh pytest session, its plugins loaded from their entry points): a process of its own
    would spend its time importing TensorFlow and refitting the Keras side this session already holds."""
    pytester.makepyfile(test_user=USER_TESTS.format(fixtures=FIXTURES))
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: keras-parity: FAIL with *", "*mask_mismatch*"])
    # assert_parity hides its own frames (__tracebackhide__), as numpy.testing does: the traceback ends in the test
    out = result.stdout.str()
    assert "raise AssertionError(failure_message(report))" not in out, out
    assert "parity/testing.py" not in out and "parity/pytest_plugin.py" not in out, out
