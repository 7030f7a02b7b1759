"""`parity check` probes a learner's Dropout and BatchNormalization each alone against Keras's, in training and in
test mode: each bug the survey found is named on the class at fault by its evidence, the book's Dropout passes with
its convention named, an inverted one passes clean, and nothing a class does wrong becomes a traceback."""

import subprocess
import sys

import numpy as np
import pytest

import parity
from parity.book import regularization as ref
from parity.compare.layer_probes import probe_layers
from parity.compare.regularization_probes import probe_mode_layer
from parity.numpy_side.dropout_convention import InvertedView, inverted_view
from parity.selfcheck.planted_regularization import PLANTED_REGULARIZATION, DropoutWithoutTrainFlag
from parity.user_code.dropout_draw import drawn

from testkit import FIXTURES, ROOT, SCALED_COPY, assert_close, close


def probed(kit: dict, images: bool = True) -> list[dict]:
    found = [f for name, cls in kit.items() for f in probe_mode_layer(cls, name, images=images)]
    return [f.as_dict() for f in found]  # the JSON form: what summary.json says of each


@pytest.mark.parametrize("case,kit,expected,planted", PLANTED_REGULARIZATION, ids=[c[0] for c in PLANTED_REGULARIZATION])
def test_each_planted_chapter_6_bug_is_named_on_its_class_by_its_evidence(case, kit, expected, planted):
    found = probed(kit)
    errors = [f for f in found if f["severity"] == "error"]
    if expected:
        assert [f["code"] for f in errors] == [expected], found  # that code alone: no second guess beside it
        assert {f["layer"] for f in errors} == set(kit)
        assert all(f["phase"] == "layer probe" and f["fix"] for f in errors)
    else:
        assert errors == [], found


def test_the_books_dropout_is_a_convention_warning_naming_the_factor():
    (f,) = probed({"Dropout": ref.BookDropout})
    assert (f["code"], f["severity"], f["layer"]) == ("convention", "warning", "Dropout")
    assert "times (1 - ratio) = 0.7 in both modes" in f["message"] and "Keras's own mask" in f["message"]
    assert f["fix"].startswith("nothing to fix")


def test_an_inverted_dropout_and_the_books_batch_normalization_pass_clean():
    assert probed({"Dropout": ref.Dropout, "BatchNormalization": ref.BatchNormalization}, images=False) == []


def test_the_books_batch_normalization_on_a_map_is_per_activation_a_convention_keras_is_shown_by_reshaping():
    (f,) = probed({"Dropout": ref.Dropout, "BatchNormalization": ref.BatchNormalization}, images=True)
    assert (f["code"], f["severity"], f["layer"]) == ("convention", "warning", "BatchNormalization")
    assert "per activation (C * H * W features)" in f["message"] and "reshaped to (N, C * H * W)" in f["message"]


def test_a_randn_mask_is_measured_at_38_percent_not_70():
    (f,) = probed({"Dropout": PLANTED_REGULARIZATION[0][1]["Dropout"]})
    assert "keeps 3" in f["message"] and "where ratio 0.3 keeps 70%" in f["message"]
    kept = float(f["message"].split("keeps ")[1].split("%")[0])
    assert 36.0 < kept < 40.5  # P(Z > 0.3) = 38.2%
    assert "randn" in f["message"] and "its own output shows" in f["message"]  # the route: its draw was not driven
    assert probed({"Dropout": PLANTED_REGULARIZATION[0][1]["Dropout"]}) == [f]  # the same share on every check


def test_a_bug_is_blamed_on_the_users_file_and_line():
    cls = PLANTED_REGULARIZATION[6][1]["BatchNormalization"]  # the variance term dropped from backward
    (f,) = probed({"BatchNormalization": cls})
    assert f["method"] == "backward" and f["where"].endswith(f"planted_regularization.py:"
                                                            f"{cls.backward.__code__.co_firstlineno}")


class TrainingKeyword(ref.Dropout):
    def forward(self, x, training=False):
        return super().forward(x, training)


class PositionalFlag(ref.BatchNormalization):
    def forward(self, x, mode):
        return super().forward(x, mode)


def test_the_train_flag_is_driven_by_the_keyword_or_position_the_class_takes():
    assert probed({"Dropout": TrainingKeyword, "BatchNormalization": PositionalFlag}, images=False) == []
    assert [f["code"] for f in probed({"BatchNormalization": PositionalFlag})] == ["convention"]  # per activation


class RaisingDropout(ref.Dropout):
    def backward(self, dout):
        return dout * self.mask[0, 99]  # an index past the end


class NoneBatchNorm(ref.BatchNormalization):
    def forward(self, x, train_flg=True):
        super().forward(x, train_flg)  # forgets to return


class ListDropout(ref.Dropout):
    def forward(self, x, train_flg=True):
        return list(super().forward(x, train_flg))


@pytest.mark.parametrize("cls,name,said", [(RaisingDropout, "Dropout", "raised IndexError"),
                                          (NoneBatchNorm, "BatchNormalization", "returned None"),
                                          (ListDropout, "Dropout", "returned list")])
def test_a_class_that_raises_or_returns_the_wrong_thing_is_a_finding_not_a_traceback(cls, name, said):
    (f,) = probed({name: cls})
    assert (f["code"], f["layer"]) == ("layer_error", name) and said in f["message"]
    assert "test_regularization_probes.py:" in f["where"]


class FlatBatchNorm(ref.BatchNormalization):
    """Written for 2-D input only, as a Dense network feeds it (D = x.shape[1], no reshape)."""

    def forward(self, x, train_flg=True):
        if x.ndim != 2:
            raise ValueError(f"expected (N, D), got {x.shape}")
        return super().forward(x, train_flg)


def test_a_2d_only_batch_normalization_is_right_for_a_dense_run_and_named_where_the_model_has_convolutions():
    assert probed({"BatchNormalization": FlatBatchNorm}, images=False) == []
    (f,) = probed({"BatchNormalization": FlatBatchNorm}, images=True)
    assert f["code"] == "bn_layout" and "raised ValueError: expected (N, D)" in f["message"]


def test_the_layer_probes_dispatch_chapter_6_classes_by_their_book_names():
    found = probe_layers({"Dropout": ref.BookDropout}, ["Dropout"])
    assert [(f.code, f.layer) for f in found] == [("convention", "Dropout")]


def test_a_dropout_without_a_train_flag_is_refused_before_any_work_through_the_cli(tmp_path):
    done = subprocess.run([sys.executable, "-m", "parity.cli", "check", "--layers",
                           str(FIXTURES / "learner_dropout_no_flag.py"), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "class Dropout has forward(self, x)" in lines[0]
    assert "forward(x, train_flg=True)" in lines[0]
    assert not (tmp_path / "out").exists()


def test_the_books_module_passes_check_with_the_convention_named_and_a_randn_one_fails():
    book = parity.check(str(FIXTURES / "learner_dropout_book.py"), dtype="float64", plots=False)
    assert book.passed and [(f.code, f.layer) for f in book.warnings] == [("convention", "Dropout")]
    randn = parity.check(str(FIXTURES / "learner_dropout_randn.py"), dtype="float64", plots=False)
    assert not randn.passed and [(f.code, f.layer) for f in randn.errors] == [("keep_rate", "Dropout")]
    assert randn.errors[0].where.endswith("learner_dropout_randn.py:19")


def test_a_recorded_check_of_a_dropout_equals_the_live_one():
    module = str(FIXTURES / "learner_dropout_book.py")
    live = parity.check(module, dtype="float64", plots=False)
    recorded = parity.check(module, dtype="float64", plots=False, reference="seed-float64")
    assert [f.as_dict() for f in recorded.findings] == [f.as_dict() for f in live.findings]


def test_the_adapter_shows_the_books_dropout_in_keras_convention_in_both_modes():
    x, dout = np.random.default_rng(1).normal(size=(2, 3, 4)), np.random.default_rng(2).normal(size=(2, 3, 4))
    keep = np.random.default_rng(3).random(x.shape) > 0.3
    book, inverted = InvertedView(ref.BookDropout(0.3), 0.3), ref.Dropout(0.3)
    for layer in (book, inverted):
        with drawn(keep):
            layer.out = layer.forward(x, True)
        layer.dx = layer.backward(dout)
    assert_close(book.out, inverted.out, SCALED_COPY)
    assert_close(book.dx, inverted.dx, SCALED_COPY)
    assert_close(book.forward(x, False), x, SCALED_COPY)
    assert book.dropout_ratio == 0.3 and np.array_equal(book.mask, keep)  # the wrapped object's own attributes


class BookTraining(ref.BookDropout):
    def forward(self, x, training=True):
        return super().forward(x, training)


def test_the_adapter_takes_the_flag_as_the_wrapped_class_does_and_refuses_a_ratio_of_one():
    view = inverted_view(0.5)(BookTraining(0.5))
    assert np.array_equal(view.forward(np.ones(3), False), np.ones(3))  # told test mode by its own keyword
    with pytest.raises(ValueError, match=r"in \[0, 1\) \(received: 1\)"):
        InvertedView(ref.BookDropout(1), 1)


def test_the_planted_class_without_a_flag_is_the_one_the_refusal_names():
    from parity.user_code.train_flag import train_flag_problem

    assert "forward(self, x)" in train_flag_problem(DropoutWithoutTrainFlag, "Dropout")


class InPlaceDropout(ref.Dropout):
    """Correct numbers, written into the array it is given (as the book's Relu does)."""

    def forward(self, x, train_flg=True):
        if not train_flg:
            return x
        self.mask = np.random.rand(*x.shape) > self.dropout_ratio
        x *= self.mask / (1.0 - self.dropout_ratio)
        return x


def test_a_dropout_that_writes_into_its_input_is_a_warning_and_its_numbers_still_pass():
    found = probed({"Dropout": InPlaceDropout})
    assert [(f["code"], f["severity"], f["param"], f["method"]) for f in found] == [
        ("input_mutation", "warning", "x", "forward")]


def test_a_returned_mask_says_it_is_boolean():
    (f,) = probed({"Dropout": PLANTED_REGULARIZATION[2][1]["Dropout"]})
    assert "forward returns the mask itself (a boolean array where a unit is kept" in f["message"]


class HeldRngBookDropout(ref.BookDropout):
    """The book's convention, drawing from a generator it holds since its constructor."""

    def __init__(self, dropout_ratio=0.5):
        super().__init__(dropout_ratio)
        self.rng = np.random.default_rng(0)

    def forward(self, x, train_flg=True):
        if not train_flg:
            return x * (1.0 - self.dropout_ratio)
        self.mask = self.rng.random(x.shape) > self.dropout_ratio
        return x * self.mask


def test_the_adapter_reads_each_layers_own_ratio_and_its_held_generator_is_still_driven():
    from parity.user_code.dropout_draw import DRIVEN, drive

    view = inverted_view()(HeldRngBookDropout(0.25))
    assert view.ratio == 0.25
    x = np.random.default_rng(4).normal(size=(3, 5))
    keep = np.random.default_rng(5).random(x.shape) > 0.25
    out, _, route = drive(lambda a: view.forward(a, True), x, keep, holder=view)
    assert route == DRIVEN and close(out, x * keep / 0.75, SCALED_COPY)
    with pytest.raises(ValueError, match="holds no dropout ratio"):
        inverted_view()(object())


def test_only_the_proven_book_convention_is_wrapped_for_the_network():
    from parity.compare.findings import Finding
    from parity.numpy_side.dropout_convention import wrappers_for

    book = probe_mode_layer(ref.BookDropout, "Dropout")
    assert list(wrappers_for(book)) == ["Dropout"]
    assert isinstance(wrappers_for(book)["Dropout"](ref.BookDropout(0.3)), InvertedView)
    assert wrappers_for(probe_mode_layer(ref.Dropout, "Dropout")) == {}
    other = Finding("convention", "warning", "layer probe", "SoftmaxWithLoss: the book's log", layer="SoftmaxWithLoss")
    assert wrappers_for([other]) == {}


class NaNBatchNorm(ref.BatchNormalization):
    def backward(self, dout):
        return super().backward(dout) * np.nan


class SizedBatchNorm:
    """Another library's protocol: built from a feature count, not from gamma and beta."""

    def __init__(self, num_features: int):
        self.gamma = np.ones(num_features)

    def forward(self, x, train_flg=True):
        return x

    def backward(self, dout):
        return dout


def test_nan_from_a_batch_normalization_never_passes():
    found = probed({"BatchNormalization": NaNBatchNorm})
    assert [(f["code"], f["param"]) for f in found] == [("nan", "dx")]


def test_a_batch_normalization_built_otherwise_is_a_finding_at_its_constructor():
    (f,) = probed({"BatchNormalization": SizedBatchNorm})
    assert (f["code"], f["method"]) == ("layer_error", "__init__") and "raised TypeError" in f["message"]


def test_the_books_dropout_passes_the_regularized_scenario_through_the_adapter_and_fails_without(monkeypatch):
    from parity.compare import run

    module = str(FIXTURES / "learner_dropout_book.py")
    report = parity.check(module, scenario="regularized", dtype="float64", plots=False)
    assert report.passed and [(f.code, f.layer) for f in report.warnings] == [("convention", "Dropout")]
    assert max(report.result.max_abs_diff().values()) <= 1e-12
    monkeypatch.setattr(run, "wrappers_for", lambda found: {})  # the stack without the adapter: the factor shows
    unwrapped = parity.check(module, scenario="regularized", dtype="float64", plots=False)
    assert not unwrapped.passed and unwrapped.result.summaries["batch"].verdicts["fail"] > 0
