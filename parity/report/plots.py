"""The report's pictures (matplotlib Figures, never pyplot): gradient differences, gradient flow per ReLU unit, stepping, the fit.

Each picture is drawn for a learner who knows nothing beforehand: units are named as units
("layer 1, unit 0"), every mark is in a legend, and exact zeros are drawn on a labelled floor. The
probe arrives reduced by ProbeCurves (parity.report.probe_curves), so a run of any size plots in bounded time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure  # object-oriented: no pyplot state, no backend switched under a notebook
from matplotlib.lines import Line2D

from parity.compare.dead_units import unit_label, unit_name
from parity.compare.outcome import ParityResult
from parity.report.pictures import BY_COST, PICTURE_NAMES
from parity.report.plot_lesson import lesson
from parity.report.plot_pooling import pool_routing
from parity.report.plot_regularization import regularization
from parity.report.plot_stepping import stepping
from parity.report.plot_style import (KERAS_STYLE, NUMPY_STYLE, along, floor_and_atol, log_axis, new, panel_title, png,
                                      zero_floor)
from parity.report.probe_curves import EXACT_LIMIT, ProbeCurves  # noqa: F401  (re-exported)

__all__ = ["BY_COST", "EXACT_LIMIT", "PICTURES", "PROBE_PICTURES", "ProbeCurves", "draw", "draw_all", "figure", "hand_over",
           "hand_over_probe", "png"]

# A PlotWorker draws the pictures that read the probe alone (with the fitted weights and the data) while the run steps,
# handed over as soon as the probe is whole (hand_over_probe), and the rest once the batch and stepping phases are
# final (hand_over), while the run settles its findings and writes its tables. It draws the most costly first
# (BY_COST), and the run takes the cheapest it has not started back (draw_all), so the two end together.
PROBE_PICTURES = ("lesson", "pool_routing", "dead_relu_map", "fit")


def gradient_diffs(result: ParityResult, curves: ProbeCurves) -> Figure:
    """One panel per phase (probe, batch, stepping): each gradient's largest |numpy - keras| per row."""
    panels = [("probe", along(curves, result), "per " + ("sample" if curves.exact else "bin"), None)]
    if result.batch is not None:
        panels.append(("batch", f"batch (of {result.config.batch_size} samples, at the fitted weights)", "per batch",
                       result.batch))
    optimizer = result.config.optimizer.info.book_class
    panels.append(("stepping", f"step (one {optimizer} step per training sample)", "per step", result.stepping))
    fig, axes = new(1, len(panels), figsize=(5 * len(panels), 4.6), sharey=True, squeeze=False,
                             gridspec_kw={"left": 0.07, "right": 0.99, "bottom": 0.12, "top": 0.76, "wspace": 0.06})
    floor = zero_floor(result.tolerance)
    colours = {}
    for ax, (phase, xlabel, per, found) in zip(axes[0], panels):
        if found is None:
            keep = curves.filled()
            series = [(name, curves.centre[keep], acc[keep]) for name, acc in curves.grad_max.items()]
        else:
            series = [(name, np.arange(len(d.max_abs)), d.max_abs) for name, d in found.diffs.items()
                      if d.kind == "gradient"]
        for name, x, worst in series:
            colour = colours.setdefault(name, f"C{len(colours)}")
            # Line markers, not a scatter: a scatter re-runs the shared axes' autoscaling each time one is added.
            # 3 points across with a 1-point edge of its own colour: what scatter drew for s=9 (pixel for pixel).
            ax.plot(x, np.maximum(worst, floor), linestyle="none", marker="o", markersize=3, markeredgewidth=1,
                    color=colour, alpha=0.75, label=name, zorder=1)
        ax.set_xlabel(xlabel)
        panel_title(ax, f"{phase}: {per}", fontsize=10)
        floor_and_atol(ax, result, floor)
        log_axis(ax)
    axes[0, 0].set_ylabel("max |numpy - keras| (log scale)")
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=n) for n, c in colours.items()]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, bbox_to_anchor=(0.5, 0.87),
               frameon=False)
    fig.suptitle(f"How far apart the gradients are ({result.config.dtype}): a point passes when it is at or under "
                 f"atol + rtol|keras| (rtol {result.tolerance.rtol:g});\npoints on the grey floor are exactly equal "
                 f"(drawn at {floor:.0e} because a log axis has no 0)", fontsize=10)
    return fig


# Dead-map colours: per side, a unit is dead where its pre-activation z <= 0 (grey) and alive elsewhere (blue); red
# where it is dead and yet its dW is not 0 (the backward did not apply the mask), pink where it is alive and its
# dW is 0. A bin of many samples blends the four by their shares.
_ALIVE, _DEAD = np.array([0.23, 0.46, 0.69]), np.array([0.8, 0.8, 0.8])
_LEAK, _BLOCKED = np.array([0.84, 0.15, 0.16]), np.array([1.0, 0.72, 0.72])


def _cell_colours(dead: np.ndarray, leak: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """(units, bins, 3) RGB from (bins, units) shares in [0, 1]: dead, dead with dW != 0, alive with dW == 0."""
    dead, leak, blocked = (a.T[..., None] for a in (dead, leak, blocked))
    return (_DEAD * (dead - leak) + _LEAK * leak + _ALIVE * (1 - dead - blocked) + _BLOCKED * blocked)


def dead_relu_map(result: ParityResult, curves: ProbeCurves) -> Figure | None:
    """Per ReLU layer and side: where each unit is dead (z <= 0), and where its dW disagrees with that, in red."""
    from matplotlib.patches import Patch

    layers = sorted({layer for layer, _ in curves.leak})
    if not layers:
        return None
    keep = curves.filled()
    xs, count = curves.centre[keep], curves.count[keep, None]
    units = [curves.dead[(layer, "keras")].shape[1] for layer in layers]
    rows_in = 0.3 * sum(units) + 0.75 * len(layers)  # inches of panels
    top_in, bottom_in = 1.25, 0.5
    height = rows_in + top_in + bottom_in
    fig, axes = new(len(layers), 2, figsize=(13, height), squeeze=False, sharex=True,
                    gridspec_kw={"height_ratios": [u + 2.5 for u in units], "left": 0.12, "right": 0.99,
                                 "top": 1 - top_in / height, "bottom": bottom_in / height,
                                 "wspace": 0.12, "hspace": 0.75 * len(layers) / rows_in})
    blocked_seen = False
    for row, layer in enumerate(layers):
        for col, (side, who) in enumerate((("numpy", "NumPy side (the layers checked)"), ("keras", "Keras side"))):
            ax = axes[row, col]
            shares = [getattr(curves, kind)[(layer, side)][keep] / count for kind in ("dead", "leak", "blocked")]
            blocked_seen |= bool(shares[2].any())
            ax.pcolormesh(xs, np.arange(units[row]), _cell_colours(*shares), shading="nearest")
            ax.set_yticks(range(units[row]), [unit_name(unit_label(layer, j)) if col == 0 else ""
                                              for j in range(units[row])], fontsize=8)
            ax.invert_yaxis()  # unit 0 on top, as read
            panel_title(ax, f"layer {layer}, {who}", fontsize=9)
            if curves.one_d and layer == 1:
                _kinks(ax, result, units[row], xs[0], xs[-1])
    axes[-1, 0].set_xlabel(along(curves, result).replace("; per bin: max", "; shade: share of the bin"))
    axes[-1, 1].set_xlabel(axes[-1, 0].get_xlabel())
    handles = [Patch(color=_ALIVE, label="alive (z > 0): dW flowed"),
               Patch(color=_DEAD, label="dead (z <= 0): dW exactly 0"),
               Patch(color=_LEAK, label="dead, yet dW is not 0: the backward ignored the mask"),
               Patch(color=_BLOCKED, label="alive, yet dW is 0")][:4 if blocked_seen else 3]
    if curves.one_d and 1 in layers:
        handles.append(Line2D([], [], marker="|", color="black", linestyle="", markersize=10, mew=2,
                              label="kink x* = -b/w: the unit is dead on one side of it"))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.55 / height))
    fig.suptitle("Where each ReLU unit is dead, per sample, at the fitted weights: z = xW + b <= 0 there, so its dW "
                 "(the gradient of the weights into it) is exactly 0 for that sample; W itself is not",
                 fontsize=10, y=1 - 0.12 / height)
    return fig


def _kinks(ax, result: ParityResult, units: int, lo: float, hi: float) -> None:
    W, b = result.fitted["W1"][0], result.fitted["b1"]
    for j in range(units):
        if W[j] == 0:
            continue
        kink = -b[j] / W[j]
        at = min(max(kink, lo), hi)  # a kink outside the data is drawn at the edge, labelled
        ax.plot([at], [j], marker="|", color="black", markersize=14, mew=2)
        note = "" if lo <= kink <= hi else " (outside the data)"
        right = at > (lo + hi) / 2  # label towards the middle, so a kink at the right edge stays in its panel
        ax.annotate(f"x*={kink:.3f}{note}", (at, j), textcoords="offset points", xytext=(-4 if right else 4, 4),
                    ha="right" if right else "left", fontsize=8,
                    bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "alpha": 0.7, "linewidth": 0})
    ax.set_xlim(lo, hi)


def fit(result: ParityResult, curves: ProbeCurves) -> Figure:
    data = result.data
    fig, ax = new(figsize=(8, 5), gridspec_kw={"left": 0.1, "right": 0.97, "bottom": 0.1, "top": 0.92})
    keep = curves.filled()
    points = curves.points
    if curves.one_d and result.spec.output_dim == 1:
        split = data.split(points)
        for name, marker in (("train", "o"), ("test", "x")):
            mask = split == name
            ax.scatter(data.x[points[mask], 0], data.y[points[mask], 0], s=12, marker=marker, alpha=0.6,
                       label=f"data ({name})" + ("" if curves.exact else f", {len(points):,} of {len(data):,}"))
        for side, style in (("numpy", NUMPY_STYLE), ("keras", KERAS_STYLE)):
            mean = curves.pred[side][keep, 0] / curves.count[keep]
            ax.plot(curves.centre[keep], mean, **{**style, "label": f"{side} prediction"})
        if (1, "keras") in curves.dead:
            alive = 1 - curves.dead[(1, "keras")][keep] / curves.count[keep, None]
            for j in range(alive.shape[1]):
                ax.fill_between(curves.centre[keep], 0, 1, where=alive[:, j] > 0.5, transform=ax.get_xaxis_transform(),
                                alpha=0.08, step="mid", label=f"{unit_name(unit_label(1, j))} active",
                                color=f"C{j + 3}")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    elif result.classifies and result.spec.input_dim == 2:
        labels = data.y[points, 0]
        ours, theirs = curves.point_class["numpy"], curves.point_class["keras"]
        for k in range(result.spec.output_dim):
            mask = labels == k
            ax.scatter(data.x[points[mask], 0], data.x[points[mask], 1], s=14, color=f"C{k}", alpha=0.7, label=f"class {k}")
        wrong = theirs != labels
        if wrong.any():
            ax.scatter(data.x[points[wrong], 0], data.x[points[wrong], 1], s=60, facecolors="none", edgecolors="black",
                       label="keras predicts another class")
        differ = ours != theirs
        if differ.any():
            ax.scatter(data.x[points[differ], 0], data.x[points[differ], 1], s=120, marker="x", color="red",
                       label="numpy and keras predict different classes")
        ax.set_xlabel("x0")
        ax.set_ylabel("x1")
    else:
        for side, style in (("keras", {"s": 8}), ("numpy", {"s": 3})):
            mean = curves.pred[side][keep] / curves.count[keep, None]
            ax.scatter(np.repeat(curves.centre[keep], mean.shape[1]), mean.reshape(-1), label=side, **style)
        ax.set_xlabel(along(curves, result).replace("; per bin: max", "; per bin: mean"))
        ax.set_ylabel("prediction")
    ax.legend(fontsize=8)
    one_d = curves.one_d and result.spec.output_dim == 1
    panel_title(ax, "Data and the fitted model" + ("; shaded: where each first-layer ReLU unit is active" if one_d else ""))
    return fig


PICTURES = {name: globals()[name] for name in PICTURE_NAMES}  # each picture's drawing function bears its name


def figure(name: str, result: ParityResult, curves: ProbeCurves) -> Figure | None:
    """One picture as a Figure (PICTURE_NAMES); None where it does not apply: no ReLU layer has no dead-ReLU map, no
    pooling no pool_routing, no Dropout or BatchNormalization no regularization; a model with Dropout or
    BatchNormalization has no lesson nor stepping picture (its probe runs forward only, its steps go batch-wise)."""
    if name in ("lesson", "stepping") and result.modes:  # Dropout or BatchNormalization (parity.compare.modes):
        return None  # no per-sample dW in a test-mode probe; batch-wise steps have no per-sample dead units to halo
    return PICTURES[name](result, curves)


def draw(names, result: ParityResult, curves: ProbeCurves) -> dict[str, bytes | None]:
    """PNG bytes of each named picture; None for one that does not apply."""
    out = {}
    for name in names:
        fig = figure(name, result, curves)
        out[name] = None if fig is None else png(fig)
    return out


def hand_over_probe(worker, result: ParityResult, curves: ProbeCurves) -> None:
    """Give a PlotWorker (parity.report.plot_worker) the pictures that read the probe alone, from a result that holds
    only the probe (parity.compare.outcome.ParityResult.so_far), to draw while the run steps. The lesson reads
    the stepping phase where the probe came in chunks (parity.report.plot_lesson): it waits for the end then."""
    if worker is not None:
        worker.draw([name for name in PROBE_PICTURES if name != "lesson" or result.probe is not None], result, curves)


def hand_over(worker, result: ParityResult, curves: ProbeCurves) -> None:
    """Give a PlotWorker every picture it was not given yet, most costly first; draw_all collects them."""
    if worker is not None:
        worker.draw([name for name in BY_COST if name not in worker.handed], result, curves)


def draw_all(result: ParityResult, curves: ProbeCurves, folder: Path, worker=None) -> dict[str, bytes]:
    """Write every picture that applies into `folder`, in PICTURES' order; returns {file name: PNG bytes}.

    With a `worker` that was handed pictures (hand_over), this process takes back the cheapest picture the worker
    has not started and draws it, while the worker draws on, most costly first; it waits for the worker only where
    taking its last one would leave it idle. Whatever the worker fails to deliver, or delivers past
    ANSWER_TIMEOUT_S, is drawn here too, so the pictures never depend on it."""
    drawn: dict[str, bytes | None] = {}
    while worker is not None and worker.owed():
        waiting, drawing = worker.waiting(), worker.drawing()
        if len(waiting) > 1 or (waiting and drawing):
            if worker.claim(waiting[-1]):
                drawn |= draw([waiting[-1]], result, curves)
        elif not worker.wait():  # PlotWorker.wait's limit: parity.report.plot_worker.ANSWER_TIMEOUT_S
            break
    if worker is not None:
        drawn |= {name: png for name, png in worker.delivered().items() if name not in drawn}
    drawn |= draw([name for name in PICTURES if name not in drawn], result, curves)  # the worker's failures
    files = {f"{name}.png": drawn[name] for name in PICTURES if drawn[name] is not None}
    for file, picture in files.items():
        (folder / file).write_bytes(picture)
    return files
