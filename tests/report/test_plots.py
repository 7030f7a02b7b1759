"""The plots' data and marks: gradient flow per side (a missing mask shows), every phase, dead steps, unit names."""

from types import SimpleNamespace

import numpy as np
import pytest

from parity.settings.config import resolve
from parity.prepare import prepare
from parity.settings.spec import DenseSpec, ModelSpec
from parity.compare.run import compare_numpy
from parity.keras_side.reference import keras_reference
from parity.selfcheck.selftest import ReluWithoutMask

SAMPLES = 3000


@pytest.fixture(scope="module")
def runs(request):
    """The seed model (float64, seed 1334, one epoch: both units dead on some samples) with correct layers and with a Relu
    that forgets its mask, each run in one chunk and in chunks of 512; and the missing mask binned (500 bins)."""
    from parity.report import probe_curves
    from parity.report.probe_curves import ProbeCurves

    # Seed 1334: after one epoch each unit is dead on some samples and steps, alive on others.
    prepared = prepare(resolve({"samples": SAMPLES, "train": 100, "epochs": 1, "dtype": "float64", "seed": 1334}))
    reference = keras_reference(prepared)
    out = {}
    for name, kit in (("correct", None), ("no mask", {"Relu": ReluWithoutMask})):
        for chunk in (None, 512):
            curves = ProbeCurves(prepared.data, prepared.spec)
            result = compare_numpy(prepared, reference, kit, chunk=chunk, on_chunk=curves.add)
            out[(name, chunk)] = (result, curves)
    exact, probe_curves.EXACT_LIMIT = probe_curves.EXACT_LIMIT, 1000  # above it: bins
    try:
        curves = ProbeCurves(prepared.data, prepared.spec)
        out[("no mask", "binned")] = (compare_numpy(prepared, reference, {"Relu": ReluWithoutMask}, chunk=512,
                                                    on_chunk=curves.add), curves)
    finally:
        probe_curves.EXACT_LIMIT = exact
    return out


def test_map_colours_blend_dead_and_alive_and_turn_red_where_a_dead_units_dW_is_not_0():
    from parity.report.plots import _ALIVE, _BLOCKED, _DEAD, _LEAK, _cell_colours

    dead = np.array([[0.0, 1.0, 1.0, 0.0, 0.5]])  # (bins, units) with one bin, five units
    leak = np.array([[0.0, 0.0, 1.0, 0.0, 0.0]])
    blocked = np.array([[0.0, 0.0, 0.0, 1.0, 0.0]])
    rgb = _cell_colours(dead, leak, blocked)[:, 0]  # (units, 3)
    np.testing.assert_allclose(rgb[:4], [_ALIVE, _DEAD, _LEAK, _BLOCKED])
    np.testing.assert_allclose(rgb[4], (_DEAD + _ALIVE) / 2)


def test_the_map_decides_dead_by_z_and_shows_a_missing_mask_as_numpy_dW_where_keras_is_dead(runs):
    from parity.report.plots import _ALIVE, _DEAD, _LEAK, dead_relu_map

    result, curves = runs[("no mask", None)]
    numpy_ax, keras_ax = dead_relu_map(result, curves).axes[:2]
    assert [t.get_text() for t in numpy_ax.get_yticklabels()] == ["layer 1, unit 0", "layer 1, unit 1"]
    ours, theirs = (np.asarray(ax.collections[0].get_array()) for ax in (numpy_ax, keras_ax))  # (units, samples, 3)
    order = np.argsort(result.data.x[:, 0], kind="stable")  # the map's columns: samples sorted by x
    dead = (result.probe.keras.z[1][order] <= 0).T  # (units, samples): dead by the pre-activation
    assert dead.any() and (~dead).any()
    np.testing.assert_array_equal(dead, (curves.dead[(1, "keras")] > 0).T)
    np.testing.assert_allclose(ours[dead], np.broadcast_to(_LEAK, ours[dead].shape))  # dW1 flowed: the mask ignored
    np.testing.assert_allclose(theirs[dead], np.broadcast_to(_DEAD, theirs[dead].shape))
    np.testing.assert_allclose(theirs[~dead], np.broadcast_to(_ALIVE, theirs[~dead].shape))
    legend = [t.get_text() for t in dead_relu_map(*runs[("correct", None)]).legends[0].get_texts()]
    assert legend[:3] == ["alive (z > 0): dW flowed", "dead (z <= 0): dW exactly 0",
                          "dead, yet dW is not 0: the backward ignored the mask"]


def test_binned_the_map_shades_each_bin_by_its_dead_share_and_a_missing_mask_leaks_in_all_of_them(runs):
    from parity.report.plots import _ALIVE, _LEAK, dead_relu_map

    result, curves = runs[("no mask", "binned")]
    keep = curves.filled()
    assert keep.sum() == 500 < len(result.data)  # bins, not samples
    count = curves.count[keep, None]
    dead = {side: curves.dead[(1, side)][keep] / count for side in ("numpy", "keras")}
    assert ((0 < dead["keras"]) & (dead["keras"] < 1)).any()  # some bins straddle a kink
    np.testing.assert_array_equal(curves.leak[(1, "numpy")][keep], curves.dead[(1, "numpy")][keep])  # every dead one
    assert not curves.leak[(1, "keras")].any() and not curves.blocked[(1, "keras")].any()
    ours = np.asarray(dead_relu_map(result, curves).axes[0].collections[0].get_array())  # (units, bins, 3)
    share = dead["numpy"].T[..., None]
    np.testing.assert_allclose(ours, share * _LEAK + (1 - share) * _ALIVE)


def test_the_lesson_of_a_chunked_probe_is_drawn_from_the_steps_with_the_leaks_in_red(runs):
    from parity.report.plot_lesson import lesson, lesson_data

    result, _ = runs[("no mask", 512)]
    assert result.probe is None
    units, total = lesson_data(result)
    assert total == 2 and [u.phase for u in units] == ["stepping", "stepping"]
    dead = result.stepping.dead_keras[1]
    fig = lesson(result)
    for col, unit in enumerate(units):
        np.testing.assert_array_equal(unit.dead["keras"], dead[:, unit.unit])  # by step, in order
        assert (unit.dW["keras"][dead[:, unit.unit]] == 0).all()
        leak = (unit.dW["numpy"][:, 0] != 0) & (unit.dW["keras"][:, 0] == 0)
        assert leak.any()
        red = [line.get_xydata() for line in fig.axes[len(units) + col].lines if line.get_gid() == "leak"]
        np.testing.assert_array_equal(red[0][:, 0], np.flatnonzero(leak))  # steps drawn from 0
    assert "One SGD step per training sample" in fig._suptitle.get_text()


def test_gradient_differences_are_drawn_for_the_probe_the_batches_and_the_steps(runs):
    from parity.report.plot_style import zero_floor as _floor
    from parity.report.plots import gradient_diffs

    result, curves = runs[("correct", None)]
    axes = gradient_diffs(result, curves).axes
    assert [ax.get_title() for ax in axes] == ["probe: per sample", "batch: per batch", "stepping: per step"]
    batch = {line.get_label(): line.get_xydata() for line in axes[1].lines if not line.get_label().startswith("_")}
    assert set(batch) == {"dW1", "db1", "dW2", "db2", "dx"}
    floor = _floor(result.tolerance)
    np.testing.assert_allclose(batch["db1"][:, 1], np.maximum(result.batch.diffs["db1"].max_abs, floor))


def _marks(ax, gid: str) -> list[np.ndarray]:
    """The points (step, y) of each series of one kind in a stepping panel: "halo", "keras" or "numpy"."""
    return [np.asarray(line.get_xydata()) for line in ax.lines if line.get_gid() == gid]


def test_stepping_shows_how_far_each_step_moved_each_units_weights_and_haloes_its_dead_steps(runs):
    from parity.report.plots import stepping

    result, _ = runs[("correct", None)]
    fig = stepping(result)
    w1, b1, w2, b2 = fig.axes[:4]
    assert [t.get_text() for t in w1.get_legend().get_texts()] == ["layer 1, unit 0", "layer 1, unit 1"]
    assert [t.get_text() for t in w2.get_legend().get_texts()] == ["from layer 1, unit 0", "from layer 1, unit 1"]
    phase, dead = result.stepping, result.stepping.dead_keras[1]  # (steps, units)
    zero = w1.get_ylim()[0] * 3  # where "did not move" is drawn
    assert "0" in [t.get_text() for t in w1.get_yticklabels()]
    keras_w1 = phase.keras.params_after["W1"][:, 0, :]  # (steps, units)
    moved = np.abs(np.diff(np.concatenate([result.fitted["W1"][0][None], keras_w1]), axis=0))
    for j, offsets in enumerate(_marks(w1, "keras")):
        np.testing.assert_array_equal(offsets[:, 1], np.maximum(moved[:, j], zero))
        assert (offsets[dead[:, j], 1] == zero).all() and (offsets[~dead[:, j], 1] > zero).all()
    for ax in (w1, b1, w2):
        halos = _marks(ax, "halo")
        assert len(halos) == 2
        for j, offsets in enumerate(halos):
            np.testing.assert_array_equal(offsets[:, 0], np.flatnonzero(dead[:, j]) + 1)  # steps count from 1
            assert (offsets[:, 1] == zero).all()  # plain SGD: a dead unit's weights did not move
    assert not _marks(b2, "halo")  # the output bias belongs to no ReLU unit
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "its dW is exactly 0, so a dead unit's W does not move (the 0 line)" in legend


def test_a_long_stepping_phase_draws_evenly_spaced_steps_and_says_how_many(runs, monkeypatch):
    from parity.report import plot_stepping as plots

    monkeypatch.setattr(plots, "STEP_POINTS", 10)
    result, _ = runs[("correct", None)]
    w1 = plots.stepping(result).axes[0]
    n = len(result.stepping.rows)
    shown = np.unique(np.linspace(0, n - 1, 10).astype(np.int64))
    assert w1.get_xlabel() == f"step (10 of {n} drawn)"
    for j, offsets in enumerate(_marks(w1, "keras")):
        np.testing.assert_array_equal(offsets[:, 0], shown + 1)
    dead = result.stepping.dead_keras[1]
    for j, offsets in enumerate(_marks(w1, "halo")):
        np.testing.assert_array_equal(offsets[:, 0], shown[dead[shown, j]] + 1)


def test_stepping_shows_a_missing_mask_as_numpy_moving_weights_on_keras_dead_steps(runs):
    from parity.report.plots import stepping

    result, _ = runs[("no mask", None)]
    w1 = stepping(result).axes[0]
    zero = w1.get_ylim()[0] * 3
    dead = result.stepping.dead_keras[1]
    for j, (ours, theirs) in enumerate(zip(_marks(w1, "numpy"), _marks(w1, "keras"))):
        assert (theirs[dead[:, j], 1] == zero).all()
        assert (ours[dead[:, j], 1] > zero).any()  # the dot leaves Keras's circle on the 0 line


def test_stepping_with_momentum_says_the_velocity_still_moves_a_dead_units_weights():
    import parity
    from parity.report.plots import stepping

    result = parity.run(optimizer="momentum", dtype="float32", epochs=4, plots=False).result
    fig = stepping(result)
    assert fig._suptitle.get_text().startswith("Stepping: one Momentum step per training sample")
    legend = " ".join(t.get_text() for t in fig.legends[0].get_texts())
    assert "its dW is exactly 0, yet Momentum's state still moved W on some of them" in legend


def test_kernel_entries_are_named_by_the_units_they_join():
    from parity.report.plot_stepping import _entries

    spec = ModelSpec(2, (DenseSpec(8, "relu"), DenseSpec(16, "relu"), DenseSpec(3, "softmax")),
                     "sparse_categorical_crossentropy")
    result = SimpleNamespace(spec=spec)
    assert _entries(result, "W1")[:2] == [("x0 -> unit 0", [(1, 0)]), ("x0 -> unit 1", [(1, 1)])]
    assert _entries(result, "W2")[17] == ("unit 1 -> unit 1", [(2, 1), (1, 1)])
    assert _entries(result, "W3")[0] == ("unit 0 -> output 0", [(2, 0)])
    assert _entries(result, "b3") == [("output 0", []), ("output 1", []), ("output 2", [])]
    assert _entries(result, "b2")[15] == ("layer 2, unit 15", [(2, 15)])


# -- the plot worker: pictures drawn in a second process, never at the report's expense ---------------------------------
def worker_drawn(worker, names, result, curves) -> dict:
    """What the worker answers for `names`, waited for."""
    assert worker.draw(names, result, curves)
    while worker.owed():
        assert worker.wait(120)
    return worker.delivered()


def test_the_plot_worker_draws_the_same_bytes_as_this_process(runs):
    from parity.report.plot_worker import PlotWorker
    from parity.report.plots import draw

    result, curves = runs[("no mask", None)]
    names = ["lesson", "stepping", "regularization"]
    worker = PlotWorker.start()
    assert worker is not None
    try:
        theirs = worker_drawn(worker, names, result, curves)
    finally:
        worker.close()
    assert set(theirs) == set(names)
    assert theirs == draw(names, result, curves)
    assert theirs["lesson"].startswith(b"\x89PNG") and theirs["stepping"].startswith(b"\x89PNG")
    assert theirs["regularization"] is None  # no Dropout nor BatchNormalization in this model


def test_a_picture_the_run_claims_back_is_not_delivered_by_the_worker(runs):
    from parity.report.plot_worker import PlotWorker

    result, curves = runs[("correct", None)]
    worker = PlotWorker.start()
    try:
        assert worker.draw(["stepping", "lesson", "fit"], result, curves)
        assert worker.claim("fit")  # the last of three: the worker is on the first, or still starting
        assert worker.owed() == ["stepping", "lesson"]
        while worker.owed():
            assert worker.wait(120)
        delivered = worker.delivered()
    finally:
        worker.close()
    assert set(delivered) == {"stepping", "lesson"}
    assert not worker.draw(["stepping"], result, curves)  # handed once: nothing more to hand, and it is closed


def test_the_worker_draws_the_most_costly_first_and_says_when_it_starts_each(runs):
    from parity.report.plot_worker import PlotWorker

    result, curves = runs[("correct", None)]
    worker = PlotWorker.start()
    try:
        assert worker.draw(["fit", "lesson", "stepping"], result, curves)
        while worker.owed():
            assert worker.wait(120)
        assert worker.waiting() == worker.drawing() == []
    finally:
        worker.close()
    assert worker._started == ["stepping", "lesson", "fit"]  # parity.report.pictures.BY_COST
    assert set(worker.delivered()) == {"stepping", "lesson", "fit"}


def test_the_run_and_the_worker_share_the_pictures_and_the_report_is_the_same_bytes(runs, tmp_path):
    """draw_all takes back from the end what the worker still owes: whoever drew a picture, its bytes are the same."""
    from parity.report.plot_worker import PlotWorker
    from parity.report.plots import BY_COST, PICTURES, draw, draw_all, hand_over

    result, curves = runs[("no mask", None)]
    worker = PlotWorker.start()
    try:
        hand_over(worker, result, curves)
        handed = worker.handed
        files = draw_all(result, curves, tmp_path, worker)
    finally:
        worker.close()
    assert handed == list(BY_COST)  # the most costly first; those that do not apply are answered None at once
    expected = {f"{name}.png": png for name, png in draw(list(PICTURES), result, curves).items() if png is not None}
    assert files == expected
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == expected


def test_pictures_a_dead_plot_worker_owed_are_drawn_by_the_run_itself(runs, tmp_path):
    from parity.report.plot_worker import PlotWorker
    from parity.report.plots import draw, draw_all, hand_over

    result, curves = runs[("correct", None)]
    worker = PlotWorker.start()
    worker._process.kill()
    worker._process.wait()
    try:
        hand_over(worker, result, curves)
        files = draw_all(result, curves, tmp_path, worker)
    finally:
        worker.close()
    assert list(files) == ["lesson.png", "gradient_diffs.png", "dead_relu_map.png", "stepping.png", "fit.png"]
    for name, png in draw(["lesson", "stepping", "regularization"], result, curves).items():
        if png is None:  # a picture that does not apply to this model (regularization): no file
            assert not (tmp_path / f"{name}.png").exists() and f"{name}.png" not in files
        else:
            assert (tmp_path / f"{name}.png").read_bytes() == files[f"{name}.png"] == png


def test_a_result_that_does_not_pickle_is_drawn_by_the_run_and_an_idle_worker_exits_at_end_of_input(runs, tmp_path):
    from dataclasses import replace

    from parity.report.plot_worker import PlotWorker
    from parity.report.plots import draw_all, hand_over

    result, curves = runs[("correct", None)]
    odd = replace(result, environment={**result.environment, "hook": lambda: None})  # a lambda does not pickle
    worker = PlotWorker.start()
    try:
        assert not worker.draw(["stepping"], odd, curves)
        hand_over(worker, odd, curves)
        assert worker.handed == [] and worker.owed() == []
        assert list(draw_all(odd, curves, tmp_path, worker))[-2:] == ["stepping.png", "fit.png"]
        worker._process.stdin.close()  # no job: the worker ends by itself, and cleanly
        assert worker._process.wait(timeout=60) == 0
    finally:
        worker.close()


def test_the_pictures_handed_over_early_read_only_what_is_final_then(runs, cached_run):
    """What a worker draws while the run steps (PROBE_PICTURES, from ParityResult.so_far) and while it settles its
    findings (every picture, from the phases) is what the whole result draws: on the seed model and on the cnn run,
    whose pool_routing reads Keras's autodiff at the fitted weights."""
    from parity.compare.outcome import ParityResult
    from dataclasses import replace

    from parity.report.plots import PICTURES, PROBE_PICTURES, draw
    from parity.report.probe_curves import ProbeCurves

    cnn = cached_run({"scenario": "cnn"})
    cnn_curves = ProbeCurves(cnn.data, cnn.spec)
    cnn_curves.add(cnn.probe)
    for result, curves in (runs[("no mask", None)], (cnn, cnn_curves)):
        alone = ParityResult.so_far(result.config, result.spec, result.data, result.tolerance, result.fitted,
                                    result.probe, result.summaries, result.kinks, result.environment, result.layers,
                                    keras_side=result.keras_side, modes=result.modes, pool_routing=result.pool_routing)
        assert alone.stepping is None and alone.batch is None and alone.findings == []
        early = draw(PROBE_PICTURES, alone, curves)
        assert early == draw(PROBE_PICTURES, result, curves)
        drawn = {"lesson", "dead_relu_map", "fit"} | ({"pool_routing"} if result.spec.features else set())
        assert {name for name, png in early.items() if png is not None} == drawn
        # once the phases are final, before any finding: every picture is the whole result's
        phases = replace(alone, batch=result.batch, stepping=result.stepping)
        assert draw(list(PICTURES), phases, curves) == draw(list(PICTURES), result, curves)


def test_stepping_draws_every_point_it_is_given_on_both_sides_of_a_convolutional_model(cached_run):
    """Each top panel of the cnn run's stepping picture (six parameters, a convolution's among them): for each of its
    first 8 entries, one Keras circle and one NumPy dot per step, at |after - before| of that side's trace."""
    from parity.report.plots import stepping

    result = cached_run({"scenario": "cnn"})
    phase = result.stepping
    names = list(phase.numpy.params_after)
    assert names == ["W1", "b1", "W2", "b2", "W3", "b3"]
    fig = stepping(result)
    steps = np.arange(1, len(phase.rows) + 1)
    zero = fig.axes[0].get_ylim()[0] * 3  # where "did not move" is drawn
    for ax, name in zip(fig.axes, names):
        assert ax.get_title().startswith(name)
        for side, trace in (("keras", phase.keras), ("numpy", phase.numpy)):
            after = trace.params_after[name]  # (steps, *shape)
            before = np.concatenate([result.fitted[name][None].astype(after.dtype), after[:-1]])
            moved = np.abs(after - before).reshape(len(steps), -1)  # (steps, entries)
            drawn = _marks(ax, side)
            assert len(drawn) == min(moved.shape[1], 8)
            for e, points in enumerate(drawn):
                np.testing.assert_array_equal(points[:, 0], steps)
                np.testing.assert_array_equal(points[:, 1], np.maximum(moved[:, e], zero))
            assert any((points[:, 1] > zero).any() for points in drawn)  # the steps moved something


@pytest.mark.parametrize("transparent", [False, True])
def test_png_holds_the_pixels_of_matplotlibs_own_png(transparent):
    """png() writes what matplotlib's PNG holds, pixel for pixel: as RGB where every pixel is opaque (a report
    picture), as RGBA where some are not; with its dpi and no timestamp."""
    import io

    from PIL import Image

    from parity.report.plot_style import new, png

    # 206.6 pixels high: matplotlib cuts it to 206; the default run's lesson is 4.6 inches high, 459.99999999999994
    # pixels as 4.6 x 100 and 460 as matplotlib scales it
    fig, ax = new(1, 1, figsize=(3.1, 2.066))
    ax.plot([0, 1, 2], [1, 0, 2], label="a line")
    ax.legend()
    ax.set_title("a title")
    if transparent:
        fig.patch.set_alpha(0)
    ours = png(fig)
    theirs = io.BytesIO()
    fig.savefig(theirs, format="png", dpi=100, metadata={"Software": None})
    ours_image, theirs_image = Image.open(io.BytesIO(ours)), Image.open(theirs)
    assert ours_image.mode == ("RGBA" if transparent else "RGB")
    assert ours_image.size == theirs_image.size == (310, 206)
    np.testing.assert_array_equal(np.asarray(ours_image.convert("RGBA")), np.asarray(theirs_image.convert("RGBA")))
    assert ours_image.info["dpi"] == pytest.approx((100, 100), abs=1e-3)
    assert png(fig) == ours  # the same figure, the same bytes
    fig.set_size_inches(15, 4.6)
    assert Image.open(io.BytesIO(png(fig))).size == (1500, 460)
    fig.set_dpi(72)  # a notebook's figure dpi: the PNG is still drawn at 100 dpi, and the figure keeps its own
    assert Image.open(io.BytesIO(png(fig))).size == (1500, 460) and fig.dpi == 72
