"""stepping.png: how far each stepping step moved each weight on both sides (a dead unit's steps sit at 0), and
how far apart the two sides' weights are after each step, against the tolerance."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from parity.compare.dead_units import params_before, unit_label, unit_name
from parity.compare.outcome import ParityResult
from parity.report.plot_style import ReportFigure, floor_and_atol, log_axis, panel_title, zero_floor
from parity.report.probe_curves import ProbeCurves

__all__ = ["stepping", "STEP_POINTS"]


def _entries(result: ParityResult, name: str) -> list[tuple[str, list[tuple[int, int]]]]:
    """Per flat entry of parameter `name`: a label a learner can read, and the ReLU units (layer, j) it belongs to.

    A kernel entry W_l[i, j] belongs to unit j of layer l and to unit i of layer l - 1; a bias entry
    b_l[j] to unit j of layer l. It cannot move on a step where any ReLU unit it belongs to is dead.
    """
    layer, spec = int(name[1:]), result.spec
    last = spec.dense_number(len(spec.layers))
    relu = {i for i, s in spec.hidden() if s.activation == "relu"}
    if spec.dense(layer) is None:  # a convolution: its entries by filter; a filter is no unit that dies whole
        return [(f"filter {idx[0]}" if name.startswith("b") else f"filter {idx[0]}, c{idx[1]} ({idx[2]}, {idx[3]})", [])
                for idx in np.ndindex(*spec.shapes()[name])]

    def unit(l, j):
        return f"output {j}" if l == last else unit_name(unit_label(l, j))

    def short(l, j):  # within a panel titled by its layers, an arrow's ends need only the index
        return (f"x{j}" if l == 0 else f"map {j}" if spec.dense(l) is None else "output"
                if l == last and spec.layers[-1].units == 1 else f"output {j}" if l == last else f"unit {j}")

    if name.startswith("b"):
        return [(unit(layer, j), [(layer, j)] if layer in relu else []) for j in range(spec.dense(layer).units)]
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
    layer, last = int(name[1:]), result.spec.dense_number(len(result.spec.layers))

    def called(l):
        return "x" if l == 0 else "output" if l == last else f"layer {l}" if result.spec.dense(l) is not None \
            else f"convolution {l}"

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


# Points as line markers, not scatter collections: a scatter re-runs the autoscaling of all six panels that share
# the y axis each time one is added (18 per panel on cnn) and draws slower. Diameters in points, as scatter's
# s=60, 22, 4 (areas in points squared) drew them; zorder 1, a collection's, keeps the 0 line drawn over them.
_HALO, _CIRCLE, _DOT = np.sqrt(60), np.sqrt(22), 2.0
_POINTS = {"linestyle": "none", "marker": "o", "zorder": 1}

STEP_POINTS = 2_000  # the most steps drawn as points per entry: 100,000 steps drew in 5.8 s, 2,000 in 0.4 s


def stepping(result: ParityResult, curves: ProbeCurves | None = None) -> Figure:
    """Top: how far each step moved each parameter entry, on both sides, its dead steps haloed: a dead unit's
    dW is exactly 0, so under SGD its W does not move and the point sits on the 0 line.
    Below: one panel of how far apart each parameter is after each step."""
    phase = result.stepping
    names = list(phase.numpy.params_after)
    fig = ReportFigure(figsize=(3.4 * len(names), 6.8))
    grid = fig.add_gridspec(2, len(names), left=0.08, right=0.99, bottom=0.08, top=0.8, wspace=0.3, hspace=0.32)
    top = [fig.add_subplot(grid[0, 0])]
    top += [fig.add_subplot(grid[0, k], sharey=top[0]) for k in range(1, len(names))]  # moves compare across panels
    below = fig.add_subplot(grid[1, :])  # one panel for every parameter: a quarter of the drawing time
    steps = np.arange(1, len(phase.rows) + 1)
    floor = zero_floor(result.tolerance)
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
                top[k].plot(steps[halo], np.maximum(theirs[halo, e], still), markersize=_HALO, color=colour,
                            alpha=0.25, markeredgewidth=0, gid="halo", **_POINTS)
                halos = True
            marks += top[k].plot(steps[shown], np.maximum(theirs[shown, e], still), markersize=_CIRCLE,
                                 markerfacecolor="none", markeredgecolor=colour, markeredgewidth=0.8, label=label,
                                 gid="keras", **_POINTS)
            top[k].plot(steps[shown], np.maximum(ours[shown, e], still), markersize=_DOT, color=colour,
                        markeredgewidth=0, gid="numpy", **_POINTS)
        top[k].axhline(still, color="gray", linewidth=0.6)
        top[k].legend(handles=marks, fontsize=7, loc="upper center", ncol=2, columnspacing=0.8, handletextpad=0.2)
        panel_title(top[k], _title(result, name, ours.shape[1]), fontsize=10)
        top[k].set_xlabel("step" if len(shown) == len(steps) else f"step ({len(shown):,} of {len(steps):,} drawn)")
        below.plot(steps, np.maximum(phase.diffs[name].max_abs, floor), color=f"C{k}", label=name)
    rows = -(-max(map(len, entries.values())) // 2)  # the tallest legend's rows of two
    log_axis(top[0], zero=still, top=highest * 10 ** (1 + 1.2 * rows))  # headroom above the points for it
    floor_and_atol(below, result, floor)
    log_axis(below)
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
