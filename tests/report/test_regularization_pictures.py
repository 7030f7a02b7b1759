"""regularization.png, the chapter-6 picture: per BatchNormalization feature the batch and running statistics on both
sides step by step, per Dropout one sample's mask on both sides. What it draws is checked against the values the
two sides recorded, against Keras's own convention, and on planted classes whose one bug it must show in red."""

import numpy as np
import pytest

from parity.book.regularization import BatchNormalization as BookBatchNormalization
from parity.book.regularization import Dropout as InvertedDropout
from parity.report.plot_regularization import RED, dropout_cells, norm_series, regularization
from parity.result import Report

from testkit import BATCH_STATISTICS, MOMENTUM_RULE, assert_close

REGULARIZED = {"scenario": "regularized", "dtype": "float64"}


class RunningStatisticsNeverUpdated(BookBatchNormalization):
    """The book's BatchNormalization whose training forward never assigns its running statistics."""

    def forward(self, x, train_flg=True):
        kept = self.running_mean, self.running_var
        out = super().forward(x, train_flg)
        self.running_mean, self.running_var = kept
        return out


class DropoutBackwardWithoutMask(InvertedDropout):
    """Inverted dropout whose backward scales dout but forgets the mask."""

    def backward(self, dout):
        return dout / (1.0 - self.dropout_ratio)


@pytest.fixture(scope="module")
def passing(cached_run):
    return cached_run(REGULARIZED)


def _feature_axes(fig, word: str) -> dict[int, object]:
    """{feature: its panel} of the panels titled "feature j: <word>"."""
    out = {}
    for ax in fig.axes:
        title = ax.get_title()
        if title.startswith("feature ") and title.endswith(f": {word}"):
            out[int(title.split()[1].rstrip(":"))] = ax
    return out


def _red_marks(ax) -> int:
    return sum(len(c.get_offsets()) for c in ax.collections
               if len(c.get_facecolors()) and np.allclose(c.get_facecolors()[0][:3], _rgb(RED)))


def _rgb(colour: str) -> tuple:
    from matplotlib.colors import to_rgb

    return to_rgb(colour)


def test_the_picture_draws_kerass_moving_statistics_and_batch_moments_as_keras_recorded_them(passing):
    steps = passing.stepping
    series = norm_series(passing, 1)
    assert set(series) == {"batch_mean", "batch_var", "running_mean", "running_var"}
    np.testing.assert_array_equal(series["running_mean"][1], steps.keras.params_after["running_mean1"])
    np.testing.assert_array_equal(series["running_var"][1], steps.keras.params_after["running_var1"])
    # Keras's batch moments are the ones its layer normalized with: its moving statistics move by them, in Keras's
    # momentum convention (moving = 0.9 moving + 0.1 batch), from the fitted value on the first step
    before = np.vstack([passing.fitted["running_mean1"][None], steps.keras.params_after["running_mean1"][:-1]])
    assert_close(0.9 * before + 0.1 * series["batch_mean"][1], series["running_mean"][1], MOMENTUM_RULE)
    # the NumPy side's batch statistics, of the input its class received, equal Keras's own within the run's tolerance
    assert_close(series["batch_var"][0], series["batch_var"][1], BATCH_STATISTICS)
    fig = regularization(passing)
    means = _feature_axes(fig, "mean")
    assert sorted(means) == list(range(8))
    keras_line, numpy_line = means[3].get_lines()[:2]
    np.testing.assert_array_equal(keras_line.get_ydata(), steps.keras.params_after["running_mean1"][:, 3])
    np.testing.assert_array_equal(numpy_line.get_ydata(), steps.numpy.params_after["running_mean1"][:, 3])
    assert all(_red_marks(ax) == 0 for ax in fig.axes)  # a passing run has nothing in red


def test_the_dropout_row_is_kerass_mask_of_that_sample_and_both_sides_agree(passing):
    cells = dropout_cells(passing, 1)
    keras = passing.stepping.keras.masks[1].reshape(len(passing.stepping.rows), passing.config.batch_size, -1)
    assert (cells["step"], cells["sample"]) == (0, 0)  # nothing differs: the first sample of the first step
    np.testing.assert_array_equal(cells["keras"], keras[0, 0])
    np.testing.assert_array_equal(cells["kept"], keras[0, 0])
    np.testing.assert_array_equal(cells["passed"], keras[0, 0])
    assert 0 < cells["keras"].sum() < len(cells["keras"])  # some kept and some dropped: a mask worth drawing
    assert cells["kept_share"] == keras.mean() and 0.7 < cells["kept_share"] < 0.9  # about 1 - rate = 0.8
    assert (cells["samples_differ"], cells["samples"]) == (0, keras.shape[0] * keras.shape[1])
    fig = regularization(passing)
    mask_ax = next(ax for ax in fig.axes if ax.get_title().startswith("Dropout"))
    drawn = np.asarray(mask_ax.collections[0].get_array()).reshape(3, -1)  # rows: Keras, NumPy forward, backward
    np.testing.assert_array_equal(drawn, np.tile(keras[0, 0].astype(float), (3, 1)))
    assert "both sides agree on every unit" in mask_ax.get_title()


def test_running_statistics_that_never_update_are_drawn_flat_and_red_beside_kerass(cached_run, passing):
    result = cached_run(REGULARIZED, {"BatchNormalization": RunningStatisticsNeverUpdated})
    assert result.verdict == "fail"
    ours, theirs = norm_series(result, 1)["running_mean"]
    np.testing.assert_array_equal(ours, np.broadcast_to(result.fitted["running_mean1"], ours.shape))  # never moved
    assert not np.allclose(theirs[0], theirs[-1])  # Keras's did
    fig = regularization(result)
    assert all(_red_marks(ax) > 0 for ax in _feature_axes(fig, "mean").values())
    diff_ax = next(ax for ax in fig.axes if ax.get_title().startswith("BatchNormalization"))
    running = next(line for line in diff_ax.get_lines() if line.get_label().startswith("running mean"))
    assert running.get_ydata().max() > 1e3 * result.tolerance.atol


def test_a_dropout_backward_without_the_mask_shows_red_where_keras_dropped(cached_run):
    result = cached_run(REGULARIZED, {"Dropout": DropoutBackwardWithoutMask})
    assert result.verdict == "fail"
    cells = dropout_cells(result, 1)
    np.testing.assert_array_equal(cells["kept"], cells["keras"])  # its forward kept what Keras kept
    assert cells["passed"].all() and not cells["keras"].all()  # its backward let dout through every unit
    keras = result.stepping.keras.masks[1].reshape(len(result.stepping.rows), result.config.batch_size, -1)
    assert cells["samples_differ"] == int((~keras).any(axis=2).sum()) > 0  # every sample on which Keras dropped a unit
    fig = regularization(result)
    mask_ax = next(ax for ax in fig.axes if ax.get_title().startswith("Dropout"))
    drawn = np.asarray(mask_ax.collections[0].get_array()).reshape(3, -1)
    np.testing.assert_array_equal(drawn[2] == 2, ~cells["keras"])  # red exactly where Keras dropped
    assert not (drawn[:2] == 2).any()


def test_the_picture_is_in_the_report_html_and_the_reports_figures_and_nowhere_else(passing, seed_run, tmp_path):
    report = Report(passing, passing.data)
    assert report.figure("regularization") is report.figure("regularization.png") is not None
    assert report.figure("lesson") is None and report.figure("stepping") is None
    assert 'alt="regularization.png"' in report._repr_html_()
    report.save(tmp_path / "out")
    html = (tmp_path / "out" / "report.html").read_text()
    assert 'alt="regularization.png"' in html and "running = momentum * running" in html
    assert (tmp_path / "out" / "regularization.png").read_bytes().startswith(b"\x89PNG")
    assert Report(seed_run("float64"), seed_run("float64").data).figure("regularization") is None


def test_the_plot_worker_draws_the_chapter_6_picture_byte_for_byte(passing):
    from parity.report.plot_worker import PlotWorker
    from parity.report.plots import draw

    worker = PlotWorker.start()
    if worker is None:
        pytest.skip("one core or PARITY_PLOT_WORKER=0: no plot worker here")
    try:
        assert worker.draw(["regularization"], passing, None)
        while worker.owed():
            assert worker.wait(120)
        theirs = worker.delivered()
    finally:
        worker.close()
    assert theirs == draw(["regularization"], passing, None)
    assert theirs["regularization"].startswith(b"\x89PNG")
