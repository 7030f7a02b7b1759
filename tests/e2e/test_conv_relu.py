"""Every Relu trap the Dense stack names holds on the conv stack (Convolution -> Relu -> Pooling -> Affine -> Relu ->
Affine): the same code, on the Relu class, with its file and line; never a forward_mismatch on z1, never the
Convolution or Pooling blamed. A Relu whose mask is wrong on a convolution's map only is named there, at its first
(filter, row, col); one that writes into the map it is given is a warning, as it is after a Dense layer."""

import inspect

import numpy as np
import pytest

from parity.book import layers as ref
from parity.compare.root_causes import root_causes
from parity.pipeline import check
from parity.report.terminal import terminal_text
from parity.selfcheck.planted_conv import ReluMaskChannelsLast, ReluWritesIntoInput
from parity.selfcheck.selftest import (BookRelu, ReluConstructorRaises, ReluForgetsReturn, ReluInvertedMask, ReluNaN,
                                       ReluRaises, ReluWithoutMask)
from parity.settings.config import resolve
from parity.user_code.loader import load

CNN = {"scenario": "cnn", "dtype": "float64"}


class ReluPassingAtZero(ref.Relu):
    """Right away from 0; at exactly 0 it passes gradient (mask = x < 0), where TensorFlow's ReLU passes none."""

    def forward(self, x):
        self.mask = x < 0
        return np.where(self.mask, 0, x)


class ReluLoopingOverTwoAxes:
    """A loop over rows and units, as for a Dense layer's (N, units): on a map x[i, j] is an array."""

    def forward(self, x):
        self.mask = np.zeros(x.shape, dtype=bool)
        out = x.copy()
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                if x[i, j] <= 0:
                    self.mask[i, j], out[i, j] = True, 0
        return out

    def backward(self, dout):
        return np.where(self.mask, 0, dout)


# (id, the planted Relu, the error it must earn on Relu ("" for a correct class: the run passes), warnings it must earn)
CASES = [
    ("missing-mask", ReluWithoutMask, "mask_mismatch", set()),
    ("inverted-mask", ReluInvertedMask, "mask_mismatch", set()),
    ("mask-channels-last-on-maps", ReluMaskChannelsLast, "mask_mismatch", set()),
    ("nan", ReluNaN, "nan", set()),
    ("raises", ReluRaises, "layer_error", set()),
    ("returns-none", ReluForgetsReturn, "layer_error", set()),
    ("constructor-raises", ReluConstructorRaises, "layer_error", set()),
    ("loop-over-two-axes", ReluLoopingOverTwoAxes, "layer_error", set()),
    ("passes-gradient-at-zero", ReluPassingAtZero, "", {"zero_convention"}),
    ("writes-into-dout", BookRelu, "", {"input_mutation"}),
    ("writes-into-its-input", ReluWritesIntoInput, "", {"input_mutation"}),
]


def _in_class(where: str, cls) -> bool:
    """`where` ("file:line") lies in the source of cls."""
    path, _, line = where.rpartition(":")
    lines, first = inspect.getsourcelines(cls)
    return path == inspect.getsourcefile(cls) and first <= int(line) < first + len(lines)


@pytest.mark.parametrize("name,cls,expected,warned", CASES, ids=[c[0] for c in CASES])
def test_a_planted_relu_on_the_conv_stack_is_named_on_relu_as_on_the_dense_stack(name, cls, expected, warned):
    report = check(load(named={"Relu": cls}), resolve(CNN))
    blamed = {f.layer for f in report.findings if f.layer is not None}
    assert blamed <= {"Relu"}, blamed  # never the Convolution, the Pooling or the Affine
    assert {f.code for f in report.warnings if f.layer == "Relu"} >= warned
    if not expected:
        assert report.verdict == "pass", [f.message for f in report.errors]
        return
    roots = [root for root, _ in root_causes(report.findings) if root.severity == "error"]
    assert [(r.code, r.layer, r.phase) for r in roots] == [(expected, "Relu", "layer probe")], \
        [r.message for r in roots]
    assert roots[0].where and _in_class(roots[0].where, cls), roots[0].where
    # whatever the whole run found follows from it; a z1 that differs is never a root of its own
    assert all(f.consequence_of == "layer probe" and f.layer == "Relu" for f in report.errors if f is not roots[0])


def test_a_mask_wrong_on_maps_only_is_named_at_its_filter_row_and_col_in_the_probe_and_the_run():
    report = check(load(named={"Relu": ReluMaskChannelsLast}), resolve(CNN))
    [probe] = [f for f in report.errors if f.phase == "layer probe"]
    assert probe.message.startswith("Relu: dx on an (N, C, H, W) map of 2 x 3 x 4 x 5: gradient flows at ")
    assert "; first at sample 0, filter 0 (row 0, col 4); central differences of your forward agree with Keras" \
        in probe.message
    on_maps = [f for f in report.errors if f.code == "mask_mismatch" and f.details.get("convolution") == 1]
    assert on_maps and all(f.consequence_of == "layer probe" and f.layer == "Relu" for f in on_maps)
    cell = on_maps[0].details["map_cell"]
    assert set(cell) == {"filter", "row", "col"} and 0 <= cell["filter"] < 6 and max(cell["row"], cell["col"]) < 8
    assert f"filter {cell['filter']} (row {cell['row']}, col {cell['col']})" in on_maps[0].message
    # dW is judged per Dense unit only: the terminal does not clear the map's mask of a bug it has
    text = terminal_text(report.result, None, [])
    assert "the failure is not in a Dense ReLU unit's mask" in text and "not in the ReLU mask" not in text


def test_the_reference_relu_given_as_the_users_passes_the_conv_stack_clean():
    report = check(load(named={"Relu": ref.Relu}), resolve(CNN))
    assert report.verdict == "pass" and report.errors == [] and report.warnings == []


def test_a_relu_writing_into_its_input_passes_the_dense_stack_with_the_same_warning():
    """The run records z before the activation runs: the zeroed z1 it was handed is no forward_mismatch there either."""
    report = check(load(named={"Relu": ReluWritesIntoInput}), resolve({"scenario": "softmax", "dtype": "float64"}))
    assert report.verdict == "pass", [f.message for f in report.errors]
    assert [(f.code, f.layer, f.param) for f in report.warnings] == [("input_mutation", "Relu", "x")]
