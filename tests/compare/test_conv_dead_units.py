"""A convolution followed by a ReLU gets what a Dense ReLU layer gets: its dead positions, per filter, decided by
Keras's recorded pre-activation map, in summary.json, the terminal and report.html; Dense runs get no such key."""

from dataclasses import replace

import numpy as np
import pytest

from parity.compare.stats import PhaseSummary
from parity.report.html import render_html
from parity.report.summary_json import summary
from parity.report.terminal import terminal_text

CONV = 1  # the cnn scenario's convolution: parameter number 1 (W1), its output map (6, 8, 8)


@pytest.fixture(scope="module")
def cnn(cached_run):
    return cached_run({"scenario": "cnn"})


def _keras_dead(result) -> np.ndarray:
    """(n, FN, OH, OW) where Keras's recorded pre-activation map is <= 0, from the probe's Keras trace."""
    assert result.probe is not None, "the cnn probe fits one chunk: its whole Keras trace is kept"
    fn, oh, ow = result.spec.convolutions()[0][3]
    return result.probe.keras.maps[CONV].reshape(-1, fn, oh, ow) <= 0


def test_each_filters_dead_share_is_what_keras_recorded_maps_say(cnn):
    dead = _keras_dead(cnn)  # (200, 6, 8, 8)
    conv = cnn.dead_filters[str(CONV)]
    assert conv["map"] == [6, 8, 8] and len(dead) == cnn.summaries["probe"].rows == 200
    np.testing.assert_array_equal(np.array(conv["fraction_dead"]["keras"]), dead.mean(axis=0))
    for j, f in enumerate(conv["filters"]):
        assert f["filter"] == j and f["positions"] == 64
        assert f["share_dead"]["keras"] == pytest.approx(dead[:, j].mean(), abs=1e-15)
        assert f["dead_on_every_sample"] == int(dead[:, j].all(axis=0).sum())
        assert f["dead_on_no_sample"] == int((~dead[:, j]).all(axis=0).sum())
    # the fitted filters are neither all dead nor all alive: the shares say something
    shares = [f["share_dead"]["keras"] for f in conv["filters"]]
    assert 0 < min(shares) < max(shares) < 1


def test_a_passing_run_shows_the_sides_masks_agreeing(cnn):
    conv = cnn.dead_filters[str(CONV)]
    assert cnn.verdict == "pass"
    assert all(f["mask_differs"] == 0 for f in conv["filters"])
    assert conv["fraction_dead"]["numpy"] == conv["fraction_dead"]["keras"]


def test_a_numpy_map_that_flips_one_filters_sign_shows_as_disagreeing_masks(cnn):
    probe = cnn.probe
    fn, oh, ow = cnn.spec.convolutions()[0][3]
    ours = probe.numpy.maps[CONV].reshape(-1, fn, oh, ow).copy()
    ours[:3, 2] *= -1  # filter 2 on the first three samples: every nonzero position flips
    flipped = replace(probe, numpy=replace(probe.numpy, maps={CONV: ours.reshape(len(ours), -1)}))
    s = PhaseSummary.of(flipped, True, {CONV: (fn, oh, ow)}).dead_filters()[str(CONV)]
    assert s["filters"][2]["mask_differs"] == int((probe.keras.maps[CONV].reshape(-1, fn, oh, ow)[:3, 2] != 0).sum())
    assert [f["mask_differs"] for k, f in enumerate(s["filters"]) if k != 2] == [0] * (fn - 1)
    assert s["filters"][2]["share_dead"]["numpy"] != s["filters"][2]["share_dead"]["keras"]


def test_chunks_merge_to_the_whole_probes_counts(cnn):
    probe, shape = cnn.probe, cnn.spec.convolutions()[0][3]

    def part(rows):
        return replace(probe, rows=probe.rows[rows],
                       keras=replace(probe.keras, maps={CONV: probe.keras.maps[CONV][rows]}),
                       numpy=replace(probe.numpy, maps={CONV: probe.numpy.maps[CONV][rows]}),
                       dead_keras={}, dead_numpy={}, saturated_keras={}, saturated_numpy={}, diffs={},
                       verdicts=probe.verdicts[rows])

    merged = PhaseSummary.of(part(slice(0, 70)), relu_maps={CONV: shape}).merge(
        PhaseSummary.of(part(slice(70, None)), relu_maps={CONV: shape}))
    assert merged.dead_filters() == PhaseSummary.of(part(slice(None)), relu_maps={CONV: shape}).dead_filters()


def test_the_terminal_and_report_name_each_filter_of_the_convolution(cnn, tmp_path):
    text = terminal_text(cnn, tmp_path, [])
    line = next(row for row in text.splitlines() if row.startswith("dead ReLU filter positions"))
    assert line.startswith("dead ReLU filter positions (mean share of the 200 probed samples): conv 1, 6 filters "
                           "of 8x8 positions: filter 0 ")
    filters = cnn.dead_filters[str(CONV)]["filters"]
    assert f"filter 4 {round(filters[4]['share_dead']['keras'] * 100)}%" in line
    page = render_html(summary(cnn, []), {})
    assert "conv 1: 6 filters of 8x8 positions" in page and page.count("<td class=unit>filter ") == 6


def test_a_dense_run_has_no_dead_filters(seed_run, tmp_path):
    result = seed_run("float32")
    assert result.dead_filters == {}
    assert "dead_filters" not in summary(result, [])
    assert "filter positions" not in terminal_text(result, tmp_path, [])
    assert result.dead_units["fraction_dead"]  # the Dense ReLU units are still reported
