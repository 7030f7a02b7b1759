"""`parity check` drives a learner's Convolution, Pooling and tensor-input Affine: each alone against Keras at the
shapes that expose the chapter's traps, each trap named by its evidence, and the whole cnn run with the book's own
chapter-7 code."""

import numpy as np
import pytest

from parity.book import layers as ref
from parity.book.functions import col2im, im2col
from parity.compare.layer_probes import probe_layers
from parity.selfcheck.planted_conv import PLANTED_CONV, PoolingStride1
from parity.user_code.loader import LAYER_NAMES, load
from parity.user_code.protocol import construct, kit_from_namespace
from parity.errors import ParityInputError

FIXTURES = "tests/fixtures"


def probed(kit: dict) -> list[dict]:
    full = {**{n: getattr(ref, n) for n in LAYER_NAMES}, **kit}
    found = probe_layers(full, list(kit), "sparse_categorical_crossentropy", images=True)
    return [f.as_dict() for f in found]  # the JSON form: what summary.json says of each


@pytest.mark.parametrize("case,kit,expected,planted", PLANTED_CONV, ids=[c[0] for c in PLANTED_CONV])
def test_each_planted_chapter_7_bug_is_named_by_its_evidence(case, kit, expected, planted):
    found = probed(kit)
    errors = {f["code"] for f in found if f["severity"] == "error"}
    if expected:
        assert expected in errors, found
        blamed = {f["layer"] for f in found if f["code"] == expected}
        assert blamed == set(kit), blamed
    else:
        assert errors == set(), found


def test_col2im_overwrite_is_wrong_only_where_windows_overlap():
    found = probed({"Convolution": PLANTED_CONV[0][1]["Convolution"]})
    (f,) = [f for f in found if f["code"] == "col2im_overwrite"]
    assert "right where windows do not overlap" in f["message"] and "+=" in f["message"]
    assert f["phase"] == "layer probe" and f["param"] == "dx"


def test_a_swapped_h_and_w_is_named_from_the_square_case_not_as_a_bare_shape_error():
    found = probed({"Convolution": PLANTED_CONV[1][1]["Convolution"]})
    assert [f["code"] for f in found if f["severity"] == "error"] == ["hw_swapped"]
    assert "right on a square input 6x6, wrong on 7x5" in found[0]["message"]


def test_the_2016_pooling_stride_default_is_a_convention_warning_and_the_run_passes_stride():
    found = probed({"Pooling": PoolingStride1})
    (f,) = found
    assert (f["code"], f["severity"], f["param"]) == ("convention", "warning", "stride")
    assert "2016 printing" in f["message"]


class LastMaxPooling(ref.Pooling):
    """Correct, with the other tie convention: a tie's gradient to the last maximal cell."""

    def forward(self, x):
        out = super().forward(x)
        n = self.pool_h * self.pool_w
        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad).reshape(-1, n)
        self.arg_max = n - 1 - np.argmax(col[:, ::-1], axis=1)
        return out


class CopyingPooling(ref.Pooling):
    """Wrong at ties only: every tied cell gets the window's whole gradient."""

    def backward(self, dout):
        n = self.pool_h * self.pool_w
        col = im2col(self.x, self.pool_h, self.pool_w, self.stride, self.pad).reshape(-1, n)  # (N*OH*OW*C, n)
        d = dout.transpose(0, 2, 3, 1).reshape(-1, 1)
        dmax = np.where(col == col.max(axis=1, keepdims=True), d, 0.0)
        N, _, oh, ow = dout.shape
        return col2im(dmax.reshape(N * oh * ow, -1), self.x.shape, self.pool_h, self.pool_w, self.stride, self.pad)


def test_a_tie_sent_to_another_cell_is_a_warning_never_an_error():
    found = probed({"Pooling": LastMaxPooling})
    assert [(f["code"], f["severity"]) for f in found] == [("pool_tie", "warning")]
    assert "each window's total agrees" in found[0]["message"]


def test_a_tie_whose_gradient_is_copied_to_every_tied_cell_is_an_error():
    found = probed({"Pooling": CopyingPooling})
    assert [(f["code"], f["severity"]) for f in found] == [("pool_routing", "error")]
    assert "in total differs from dout" in found[0]["message"]


def test_reference_layers_route_ties_as_tensorflow_does():
    assert probed({"Pooling": ref.Pooling}) == []


class KeywordPooling:
    """Stride and pad in another order: driven by name."""

    def __init__(self, pool_h, pool_w, pad=0, stride=2):
        self.inner = ref.Pooling(pool_h, pool_w, stride, pad)

    def forward(self, x):
        return self.inner.forward(x)

    def backward(self, dout):
        return self.inner.backward(dout)


def test_an_image_layers_stride_and_pad_go_by_name_where_it_names_them():
    assert construct(KeywordPooling, "Pooling", 2, 3, 2, 0) == ((2, 3), {"stride": 2, "pad": 0})
    assert construct(ref.Convolution, "Convolution", "W", "b", 1, 0) == (("W", "b"), {"stride": 1, "pad": 0})
    assert probed({"Pooling": KeywordPooling}) == []


def test_a_convolution_that_takes_sizes_is_refused_before_any_work():
    class Convolution:
        def __init__(self, filter_num, filter_size, stride=1, pad=0):
            pass

        def forward(self, x):
            return x

        def backward(self, dout):
            return dout

    with pytest.raises(ParityInputError, match=r"takes sizes and makes its own weights; the harness hands Convolution "
                                               r"the weights to use: Convolution\(W, b, stride, pad\) with W \(FN, C, FH, FW\)"):
        kit_from_namespace({"Convolution": Convolution}, "--layers x.py")


def test_the_tensor_input_affine_is_probed_only_where_the_model_has_convolutions():
    flat = PLANTED_CONV[6][1]["Affine"]
    full = {**{n: getattr(ref, n) for n in LAYER_NAMES}, "Affine": flat}
    assert probe_layers(full, ["Affine"], "mean_squared_error", images=False) == []
    assert any(f.code == "layer_error" for f in probe_layers(full, ["Affine"], "mean_squared_error", images=True))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_books_own_chapter_7_code_passes_the_cnn_scenario(cached_run, dtype):
    from parity.pipeline import check
    from parity.settings.config import resolve

    report = check(load(f"{FIXTURES}/book_conv_layers.py"), resolve({"scenario": "cnn", "dtype": dtype}))
    assert report.verdict == "pass", [f.message for f in report.errors]
    assert {f.code for f in report.warnings} <= {"input_mutation", "kink", "pool_tie"}  # the book's in-place Relu
    assert {n for n, w in report.result.layers.items() if w != "reference"} == {"Affine", "Relu", "Convolution",
                                                                                 "Pooling"}


def test_a_planted_col2im_bug_fails_the_cnn_run_with_its_root_cause(cached_run):
    from parity.pipeline import check
    from parity.settings.config import resolve

    report = check(load(named={"Convolution": PLANTED_CONV[0][1]["Convolution"]}),
                   resolve({"scenario": "cnn", "dtype": "float64"}))
    assert report.verdict == "fail"
    roots = [f for f in report.errors if not f.consequence_of]
    assert [(f.code, f.layer) for f in roots] == [("col2im_overwrite", "Convolution")]
    assert all(f.consequence_of == "layer probe" for f in report.errors if f is not roots[0])


def test_a_dense_run_lists_no_chapter_7_layer():
    from parity.pipeline import check
    from parity.settings.config import resolve

    report = check(load(named={"Relu": ref.Relu}), resolve({"dtype": "float64"}))
    assert "Convolution" not in report.result.layers and "Pooling" not in report.summary["layers"]
