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

from parity.compare.dead_units import params_before, unit_label, unit_name  # noqa: E402
from parity.report.probe_curves import BINS, EXACT_LIMIT, SCATTER_POINTS, ProbeCurves  # noqa: E402,F401  (re-exported)
from parity.compare.outcome import ParityResult  # noqa: E402

__all__ = ["EXACT_LIMIT", "PICTURES", "ProbeCurves", "draw", "draw_all", "figure", "hand_over", "png"]

# What a PlotWorker draws while this process draws the rest. Measured on the default run (drawing, warm):
# stepping 0.30 s, against gradient differences 0.19 s, the map 0.12 s and the fit 0.09 s here; with its
# pickled job the worker's share ends as this process's three do (the report 0.43-0.46 s), where stepping
# and fit kept this process waiting 0.13 s for the worker (0.47-0.50 s).
WORKER_SHARE = ("stepping",)

NUMPY_STYLE = {"color": "tab:blue", "label": "numpy"}
KERAS_STYLE = {"color": "tab:orange", "label": "keras", "linestyle": "--"}


def _floor(tol) -> float:
    """Where exact zeros are drawn on a log axis: well under anything rounding produces."""
    return tol.atol * 1e-6


def _log_axis(ax, zero: float | None = None, top: float | None = None) -> None:
    """A log y axis labelled 1e-12, 1e-09, ...: plain text, as mathtext tick labels cost most of a plot's time.
    With `zero`, a power of ten where exact zeros are drawn, the axis runs from under it to `top`, ticked
    on powers of ten from it up, and its tick reads 0."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

    ax.set_yscale("log")
    if zero is None:
        ax.yaxis.set_major_locator(LogLocator(numticks=8))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}"))
    else:
        ax.set_ylim(zero / 3, top)
        decades = int(np.ceil(np.log10(top / zero)))
        ax.yaxis.set_major_locator(FixedLocator(zero * 10.0 ** np.arange(0, decades + 1, -(-decades // 7))))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: "0" if np.isclose(v, zero, rtol=1e-6, atol=0)
                                                   else f"{v:.0e}"))
    ax.yaxis.set_minor_locator(NullLocator())  # unlabelled minor ticks cost a third of the plots' time


def _new(*grid, figsize, **kw):
    """A Figure and its axes, made without pyplot: drawing here never touches the caller's pyplot state."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*grid, **kw)


def _panel_title(ax, text: str, **kw) -> None:
    """A panel title at a fixed height: left to itself, matplotlib measures every tick label of the
    panel to place it, a sixth of a plot's time, and no panel here has labels above it."""
    ax.set_title(text, y=1.0, **kw)


def png(fig: Figure) -> bytes:
    """The picture as PNG bytes. No timestamps in the metadata, so the same run gives the same bytes.
    Margins are set by hand: a layout engine (constrained, tight) costs more than drawing."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _along(curves: ProbeCurves, result: ParityResult) -> str:
    what = "x" if curves.one_d else "sample"
    return what + ("" if curves.exact else f" ({BINS} bins of {len(result.data):,} samples; per bin: max)")


def _floor_and_atol(ax, result: ParityResult, floor: float) -> None:
    """The two reference lines every difference panel needs, labelled where they are drawn."""
    atol = result.tolerance.atol
    ax.axhline(atol, color="red", linestyle=":")
    ax.axhline(floor, color="gray", linewidth=0.6)
    ax.text(0.01, atol, f" atol {atol:g}", color="red", fontsize=7, va="bottom", transform=ax.get_yaxis_transform())
    ax.text(0.01, floor, " exactly equal", color="gray", fontsize=7, va="bottom", transform=ax.get_yaxis_transform())


def gradient_diffs(result: ParityResult, curves: ProbeCurves) -> Figure:
    """One panel per phase (probe, batch, stepping): each gradient's largest |numpy - keras| per row."""
    panels = [("probe", _along(curves, result), "per " + ("sample" if curves.exact else "bin"), None)]
    if result.batch is not None:
        panels.append(("batch", f"batch (of {result.config.batch_size} samples, at the fitted weights)", "per batch",
                       result.batch))
    optimizer = result.config.optimizer.info.book_class
    panels.append(("stepping", f"step (one {optimizer} step per training sample)", "per step", result.stepping))
    fig, axes = _new(1, len(panels), figsize=(5 * len(panels), 4.6), sharey=True, squeeze=False,
                             gridspec_kw={"left": 0.07, "right": 0.99, "bottom": 0.12, "top": 0.76, "wspace": 0.06})
    floor = _floor(result.tolerance)
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
            ax.scatter(x, np.maximum(worst, floor), s=9, color=colour, alpha=0.75, label=name)
        ax.set_xlabel(xlabel)
        _panel_title(ax, f"{phase}: {per}", fontsize=10)
        _floor_and_atol(ax, result, floor)
        _log_axis(ax)
    axes[0, 0].set_ylabel("max |numpy - keras| (log scale)")
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=n) for n, c in colours.items()]
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, bbox_to_anchor=(0.5, 0.87),
               frameon=False)
    fig.suptitle(f"How far apart the gradients are ({result.config.dtype}): a point passes when it is at or under "
                 f"atol + rtol|keras| (rtol {result.tolerance.rtol:g});\npoints on the grey floor are exactly equal "
                 f"(drawn at {floor:.0e} because a log axis has no 0)", fontsize=10)
    return fig


# Gradient-flow map colours: a cell blends "no gradient" to "flowed" by the share of its samples
# that got gradient, then towards red by the share where the two sides disagree.
_NONE, _FLOWED = np.array([0.94, 0.94, 0.94]), np.array([0.23, 0.46, 0.69])
_NONE_DIFFER, _FLOWED_DIFFER = np.array([1.0, 0.72, 0.72]), np.array([0.84, 0.15, 0.16])


def _flow_colours(flowed: np.ndarray, differ: np.ndarray) -> np.ndarray:
    """(units, bins, 3) RGB from (bins, units) shares in [0, 1]."""
    f, d = flowed.T[..., None], differ.T[..., None]
    agree = _NONE + f * (_FLOWED - _NONE)
    disagree = _NONE_DIFFER + f * (_FLOWED_DIFFER - _NONE_DIFFER)
    return agree + d * (disagree - agree)


def dead_relu_map(result: ParityResult, curves: ProbeCurves) -> Figure | None:
    """Per ReLU layer and side: where gradient flowed through each unit (db != 0), disagreements in red."""
    from matplotlib.patches import Patch

    layers = sorted({layer for layer, _ in curves.flow})
    if not layers:
        return None
    keep = curves.filled()
    xs, count = curves.centre[keep], curves.count[keep, None]
    units = [curves.flow[(layer, "keras")].shape[1] for layer in layers]
    rows_in = 0.3 * sum(units) + 0.75 * len(layers)  # inches of panels
    top_in, bottom_in = 1.25, 0.5
    height = rows_in + top_in + bottom_in
    fig, axes = _new(len(layers), 2, figsize=(13, height), squeeze=False, sharex=True,
                             gridspec_kw={"height_ratios": [u + 2.5 for u in units], "left": 0.12, "right": 0.99,
                                          "top": 1 - top_in / height, "bottom": bottom_in / height,
                                          "wspace": 0.12, "hspace": 0.75 * len(layers) / rows_in})
    for row, layer in enumerate(layers):
        differ = curves.flow_differ[layer][keep] / count  # (bins, units)
        for col, (side, who) in enumerate((("numpy", "NumPy side (the layers checked)"), ("keras", "Keras side"))):
            ax = axes[row, col]
            flowed = curves.flow[(layer, side)][keep] / count
            ax.pcolormesh(xs, np.arange(units[row]), _flow_colours(flowed, differ), shading="nearest")
            ax.set_yticks(range(units[row]), [unit_name(unit_label(layer, j)) if col == 0 else ""
                                              for j in range(units[row])], fontsize=8)
            ax.invert_yaxis()  # unit 0 on top, as read
            _panel_title(ax, f"layer {layer}, {who}", fontsize=9)
            if curves.one_d and layer == 1:
                _kinks(ax, result, units[row], xs[0], xs[-1])
    axes[-1, 0].set_xlabel(_along(curves, result).replace("; per bin: max", "; shade: share of the bin"))
    axes[-1, 1].set_xlabel(axes[-1, 0].get_xlabel())
    handles = [Patch(color=_FLOWED, label="gradient flowed (db != 0)"),
               Patch(color=_NONE, label="no gradient (db = 0)"),
               Patch(color=_FLOWED_DIFFER, label="flowed here, but not on the other side"),
               Patch(color=_NONE_DIFFER, label="none here, but flowed on the other side")]
    if curves.one_d and 1 in layers:
        handles.append(Line2D([], [], marker="|", color="black", linestyle="", markersize=10, mew=2,
                                  label="kink x* = -b/w: the unit is dead on one side of it"))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.55 / height))
    fig.suptitle("Where gradient flowed back through each ReLU unit, per sample, at the fitted weights: "
                 "a unit passes gradient only where it is alive (z > 0)", fontsize=10, y=1 - 0.12 / height)
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


def _entries(result: ParityResult, name: str) -> list[tuple[str, list[tuple[int, int]]]]:
    """Per flat entry of parameter `name`: a label a learner can read, and the ReLU units (layer, j) it belongs to.

    A kernel entry W_l[i, j] belongs to unit j of layer l and to unit i of layer l - 1; a bias entry
    b_l[j] to unit j of layer l. It cannot move on a step where any ReLU unit it belongs to is dead.
    """
    layer, spec = int(name[1:]), result.spec
    last = len(spec.layers)
    relu = {i for i, s in spec.hidden() if s.activation == "relu"}

    def unit(l, j):
        return f"output {j}" if l == last else unit_name(unit_label(l, j))

    def short(l, j):  # within a panel titled by its layers, an arrow's ends need only the index
        return (f"x{j}" if l == 0 else "output" if l == last and spec.layers[-1].units == 1
                else f"output {j}" if l == last else f"unit {j}")

    if name.startswith("b"):
        return [(unit(layer, j), [(layer, j)] if layer in relu else []) for j in range(spec.layers[layer - 1].units)]
    fan_in, fan_out = spec.shapes()[name]
    out = []
    for i in range(fan_in):
        for j in range(fan_out):
            label = unit(layer, j) if fan_in == 1 else (f"from {unit(layer - 1, i)}" if fan_out == 1 and layer > 1
                                                        else f"{short(layer - 1, i)} -> {short(layer, j)}")
            out.append((label, [(layer, j)] * (layer in relu) + [(layer - 1, i)] * (layer - 1 in relu)))
    return out


def _title(result: ParityResult, name: str, entries: int) -> str:
    """"W2: layer 1 -> layer 2": which layers a kernel joins, so its entries' labels can be short."""
    layer, last = int(name[1:]), len(result.spec.layers)

    def called(l):
        return "x" if l == 0 else "output" if l == last else f"layer {l}"

    joins = f" ({called(layer - 1)} -> {called(layer)})" if name.startswith("W") else f" ({called(layer)})"
    return name + joins + ("" if entries <= 8 else ", first 8")


def _moved(result: ParityResult) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per parameter, (numpy, keras) |value after - value before| of each entry at each step: (steps, entries)."""
    phase = result.stepping
    sides = [(trace.params_after, params_before(trace, result.fitted)) for trace in (phase.numpy, phase.keras)]
    return {name: tuple(np.abs(after[name] - before[name]).reshape(len(phase.rows), -1) for after, before in sides)
            for name in phase.numpy.params_after}


def _decade_below(values: np.ndarray, default: float) -> float:
    """A floor for a log axis: two decades under the smallest positive value, on a power of ten."""
    positive = values[np.isfinite(values) & (values > 0)]
    return default if positive.size == 0 else float(10.0 ** (np.floor(np.log10(positive.min())) - 2))


STEP_POINTS = 2_000  # the most steps drawn as points per entry: 100,000 steps drew in 5.8 s, 2,000 in 0.4 s


def stepping(result: ParityResult, curves: ProbeCurves | None = None) -> Figure:
    """Top: how far each step moved each parameter entry, on both sides, its dead steps haloed: a dead unit's
    dW is exactly 0, so under SGD its W does not move and the point sits on the 0 line.
    Below: one panel of how far apart each parameter is after each step."""
    phase = result.stepping
    names = list(phase.numpy.params_after)
    fig = Figure(figsize=(3.4 * len(names), 6.8))
    grid = fig.add_gridspec(2, len(names), left=0.08, right=0.99, bottom=0.08, top=0.8, wspace=0.3, hspace=0.32)
    top = [fig.add_subplot(grid[0, 0])]
    top += [fig.add_subplot(grid[0, k], sharey=top[0]) for k in range(1, len(names))]  # moves compare across panels
    below = fig.add_subplot(grid[1, :])  # one panel for every parameter: a quarter of the drawing time
    steps = np.arange(1, len(phase.rows) + 1)
    floor = _floor(result.tolerance)
    moves = _moved(result)
    every = np.concatenate([m.ravel() for pair in moves.values() for m in pair])
    still = _decade_below(every, floor)
    highest = float(every[np.isfinite(every)].max(initial=still))
    entries = {name: _entries(result, name)[:8] for name in names}
    shown = np.unique(np.linspace(0, len(steps) - 1, min(len(steps), STEP_POINTS)).astype(np.int64))  # (points,)
    halos, dead_moved = False, False
    for k, name in enumerate(names):
        ours, theirs = moves[name]
        marks = []
        for e, (label, owners) in enumerate(entries[name]):
            colour = f"C{e}"
            dead = np.zeros(len(steps), dtype=bool)
            for layer, j in owners:
                dead |= phase.dead_keras[layer][:, j]
            dead_moved = dead_moved or bool((theirs[dead, e] != 0).any())  # over every step, drawn or not
            halo = shown[dead[shown]]
            if halo.size:  # a translucent halo in the entry's own colour, under its points
                top[k].scatter(steps[halo], np.maximum(theirs[halo, e], still), s=60, color=colour, alpha=0.25,
                               linewidths=0, gid="halo")
                halos = True
            marks.append(top[k].scatter(steps[shown], np.maximum(theirs[shown, e], still), s=22, facecolors="none",
                                        edgecolors=colour, linewidths=0.8, label=label, gid="keras"))
            top[k].scatter(steps[shown], np.maximum(ours[shown, e], still), s=4, color=colour, linewidths=0,
                           gid="numpy")
        top[k].axhline(still, color="gray", linewidth=0.6)
        top[k].legend(handles=marks, fontsize=7, loc="upper center", ncol=2, columnspacing=0.8, handletextpad=0.2)
        _panel_title(top[k], _title(result, name, ours.shape[1]), fontsize=10)
        top[k].set_xlabel("step" if len(shown) == len(steps) else f"step ({len(shown):,} of {len(steps):,} drawn)")
        below.plot(steps, np.maximum(phase.diffs[name].max_abs, floor), color=f"C{k}", label=name)
    rows = -(-max(map(len, entries.values())) // 2)  # the tallest legend's rows of two
    _log_axis(top[0], zero=still, top=highest * 10 ** (1 + 1.2 * rows))  # headroom above the points for it
    _floor_and_atol(below, result, floor)
    _log_axis(below)
    below.set_xlabel("step")
    below.legend(fontsize=8, loc="center right", title="parameter", title_fontsize=8)
    top[0].set_ylabel("how far the step moved it,\n|after - before| (0: not at all)")
    below.set_ylabel("max |numpy - keras|")
    optimizer = result.config.optimizer.info.book_class
    dead_note = ("halo: the unit was dead on this step (Keras's z <= 0): its dW is exactly 0, "
                 + (f"yet {optimizer}'s state still moved W on some of them" if dead_moved
                    else "so a dead unit's W does not move (the 0 line), though W itself is not 0"))
    style = [Line2D([], [], color="gray", marker="o", markersize=5, markerfacecolor="none", linestyle="",
                    label="keras (circle)"),
             Line2D([], [], color="gray", marker="o", markersize=2.5, linestyle="",
                    label="numpy (dot; in the circle: they agree)"),
             Line2D([], [], color="gray", marker="o", markersize=8, alpha=0.35, linestyle="", label=dead_note)]
    fig.legend(handles=style[:3 if halos else 2], loc="upper center", ncol=3, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.9))
    fig.suptitle(f"Stepping: one {optimizer} step per training sample (lr {result.config.lr:g}), the same steps on "
                 "both sides\ntop: how far each step moved each weight; below: how far apart the sides are after "
                 "each step")
    return fig


def fit(result: ParityResult, curves: ProbeCurves) -> Figure:
    data = result.data
    fig, ax = _new(figsize=(8, 5), gridspec_kw={"left": 0.1, "right": 0.97, "bottom": 0.1, "top": 0.92})
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
        ax.set_xlabel(_along(curves, result).replace("; per bin: max", "; per bin: mean"))
        ax.set_ylabel("prediction")
    ax.legend(fontsize=8)
    one_d = curves.one_d and result.spec.output_dim == 1
    _panel_title(ax, "Data and the fitted model" + ("; shaded: where each first-layer ReLU unit is active" if one_d else ""))
    return fig


PICTURES = {"gradient_diffs": gradient_diffs, "dead_relu_map": dead_relu_map, "stepping": stepping, "fit": fit}


def figure(name: str, result: ParityResult, curves: ProbeCurves) -> Figure | None:
    """One picture as a Figure (gradient_diffs, dead_relu_map, stepping, fit); None where it does not
    apply (no ReLU layer has no dead-ReLU map)."""
    return PICTURES[name](result, curves)


def draw(names, result: ParityResult, curves: ProbeCurves) -> dict[str, bytes | None]:
    """PNG bytes of each named picture; None for one that does not apply."""
    out = {}
    for name in names:
        fig = figure(name, result, curves)
        out[name] = None if fig is None else png(fig)
    return out


def hand_over(worker, result: ParityResult, curves: ProbeCurves):
    """Give a PlotWorker (parity.report.plot_worker) its share, WORKER_SHARE, to draw while this process goes
    on; draw_all collects it. None without a worker."""
    return None if worker is None else worker.draw(list(WORKER_SHARE), result, curves)


def draw_all(result: ParityResult, curves: ProbeCurves, folder: Path, handed=None) -> dict[str, bytes]:
    """Write every picture that applies into `folder`, in PICTURES' order; returns {file name: PNG bytes}.

    `handed` is what hand_over returned: those pictures come from the worker, the rest are drawn here,
    and whatever it fails to deliver is drawn here too, so the pictures never depend on it."""
    drawn = draw([name for name in PICTURES if handed is None or name not in WORKER_SHARE], result, curves)
    if handed is not None:
        drawn |= handed.result()
    drawn |= draw([name for name in PICTURES if name not in drawn], result, curves)  # the worker's failures
    files = {f"{name}.png": drawn[name] for name in PICTURES if drawn[name] is not None}
    for file, png in files.items():
        (folder / file).write_bytes(png)
    return files
