"""pool_routing.png, the chapter-7 picture: the cells it draws are where each side's gradient went (Keras's by its own
autodiff), a planted routing bug shows red cells, ties are never red, and Dense runs have no such picture."""

import numpy as np
import pytest

from parity.compare.pool_routing import window_ties
from parity.report.plots import figure
from parity.selfcheck.planted_conv import PoolingRoutesToFirstCell


@pytest.fixture(scope="module")
def cnn(cached_run):
    return cached_run({"scenario": "cnn"})


@pytest.fixture(scope="module")
def routed_to_first_cell(cached_run):
    return cached_run({"scenario": "cnn"}, kit={"Pooling": PoolingRoutesToFirstCell})


def _marks(fig, gid: str) -> list[set[tuple[int, int]]]:
    """Per map panel (the middle row), the (row, column) cells marked with `gid`."""
    maps = [ax for ax in fig.axes if ax.get_title().startswith("map ")]
    out = []
    for ax in maps:
        cells = set()
        for line in ax.get_lines():
            if line.get_gid() == gid:
                cells |= {(int(y), int(x)) for x, y in zip(line.get_xdata(), line.get_ydata())}
        out.append(cells)
    return out


def _cells(mask: np.ndarray) -> list[set[tuple[int, int]]]:
    return [set(zip(*map(lambda a: a.tolist(), np.nonzero(m)))) for m in mask]


def test_kerass_cells_are_where_kerass_own_max_pooling_autodiff_is_not_zero(cnn):
    from parity.keras_side.backend import keras, tf

    routing = cnn.pool_routing
    values = tf.constant(routing.values.transpose(1, 2, 0)[None])  # (1, H, W, C), Keras's layout
    with tf.GradientTape() as tape:
        tape.watch(values)
        total = tf.reduce_sum(keras.layers.MaxPooling2D(routing.window, strides=routing.stride)(values))
    alone = tape.gradient(total, values).numpy()[0].transpose(2, 0, 1)  # a fresh MaxPooling2D on the same input
    np.testing.assert_array_equal(routing.keras != 0, alone != 0)
    assert (routing.keras != 0).sum() == 6 * 4 * 4  # one cell per 2x2 window of the 6 maps of 8x8
    fig = figure("pool_routing", cnn, None)
    assert _marks(fig, "keras") == _cells(routing.keras != 0)
    assert _marks(fig, "numpy") == _cells(routing.numpy != 0)


def test_the_reference_pooling_routes_as_keras_does_and_no_cell_is_red(cnn):
    routing = cnn.pool_routing
    assert not routing.differs.any()
    outside_ties = ~routing.tie
    np.testing.assert_array_equal((routing.numpy != 0) & outside_ties, (routing.keras != 0) & outside_ties)
    assert routing.why.startswith("a typical sample")  # nothing fails, so Keras's median-loss sample
    loss = cnn.probe.keras.loss
    assert loss[routing.sample] == np.sort(loss)[len(loss) // 2]
    fig = figure("pool_routing", cnn, None)
    assert all(not cells for cells in _marks(fig, "differs"))
    np.testing.assert_array_equal(routing.filters, cnn.fitted["W1"])
    at = int(np.flatnonzero(cnn.probe.rows == routing.sample)[0])
    np.testing.assert_array_equal(routing.dW["keras"], cnn.probe.keras.grads["W1"][at])


def test_a_pooling_that_routes_to_each_windows_first_cell_shows_red_cells(routed_to_first_cell):
    result = routed_to_first_cell
    routing = result.pool_routing
    assert result.verdict == "fail" and routing.why == "the routing differs on this sample"
    first = np.zeros(routing.numpy.shape, dtype=bool)
    first[:, ::2, ::2] = True  # each 2x2 window's top-left cell
    np.testing.assert_array_equal(routing.numpy != 0, first)
    assert routing.differs.sum() > 0
    fig = figure("pool_routing", result, None)
    assert _marks(fig, "differs") == _cells(routing.differs)
    assert "cells where only one side sent gradient" in fig.get_suptitle()


def test_a_tie_is_every_maximal_cell_of_a_window_whose_maximum_repeats():
    values = np.array([[[0.0, 0.0, 1.0, 2.0],
                        [0.0, 0.0, 3.0, 0.5],
                        [5.0, 5.0, 0.1, 0.2],
                        [1.0, 5.0, 0.3, 0.4]]])
    expected = np.array([[[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0]]], dtype=bool)
    np.testing.assert_array_equal(window_ties(values, (2, 2), 2), expected)


def test_dense_runs_have_no_pool_routing_picture(seed_run):
    result = seed_run("float32")
    assert result.pool_routing is None and figure("pool_routing", result, None) is None


def test_report_html_and_the_notebook_display_show_the_picture_with_its_caption(cnn):
    from parity.report.html import CAPTIONS, render_html
    from parity.report.summary_json import summary
    from parity.result import Report

    page = Report(cnn, cnn.data)._repr_html_()
    assert 'alt="pool_routing.png"' in page and "Where max pooling sent the gradient" in page
    assert page.index('alt="lesson.png"') < page.index('alt="pool_routing.png"') < page.index('alt="dead_relu_map.png"')
    assert "pool_routing.png" in CAPTIONS
    page = render_html(summary(cnn, []), {"pool_routing.png": b"png"})
    assert "a tie is never red" in page
