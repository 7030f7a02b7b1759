"""lesson.png: the seed notebook's discovery as a picture. For each hidden ReLU unit, sample by sample, its weight W
(not 0) above its gradient dW (exactly 0 wherever the unit is dead), on both sides: a dead ReLU zeroes dW, not W.

The samples are the probe's (each alone at the fitted weights), sorted by x (with more than one input, by the
unit's own pre-activation z, so its dead samples come first); a run whose probe came in chunks
(more than the largest chunk's samples) draws the stepping run instead, step by step. `lesson_data` is what is
drawn, as arrays, so a test can check the picture's claim on every sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from parity.compare.dead_units import params_before, unit_label, unit_name
from parity.compare.outcome import ParityResult
from parity.report.plot_style import new, panel_title
from parity.report.probe_curves import ProbeCurves

__all__ = ["UnitLesson", "lesson", "lesson_data", "LESSON_UNITS", "LESSON_ENTRIES", "LESSON_POINTS"]

LESSON_UNITS = 4  # units drawn at most: those dead on some samples and alive on others first
LESSON_ENTRIES = 2  # weights drawn per unit at most (a unit of a wide layer has one per input)
LESSON_POINTS = 2_000  # rows drawn at most, evenly spaced in the drawing order
SIDES = ("numpy", "keras")


@dataclass
class UnitLesson:
    """One ReLU unit over the rows of one phase, in drawing order (by x for the probe, by step for stepping)."""

    layer: int
    unit: int
    phase: str  # "probe" or "stepping"
    rows: np.ndarray  # (n,) the phase's rows, in drawing order
    along: np.ndarray  # (n,) where each row is drawn: its x (one input), else the unit's z (probe) or the step
    names: list[str]  # the weights drawn: "W1[0, 0]", ... (the unit's kernel column, at most LESSON_ENTRIES)
    W: dict[str, np.ndarray]  # side -> (n, entries): the weight on that row (probe: the fitted one; stepping: before the step)
    dW: dict[str, np.ndarray]  # side -> (n, entries): its gradient on that row
    dead: dict[str, np.ndarray]  # side -> (n,): the unit is dead there, its pre-activation z <= 0
    inputs: int  # the unit's weights in all (its layer's fan-in)

    @property
    def label(self) -> str:
        return unit_name(unit_label(self.layer, self.unit))


def _units(result: ParityResult, phase) -> list[tuple[int, int]]:
    """The ReLU units to draw: those dead on some rows and alive on others first (Keras's side), in order."""
    units = [(layer, j) for layer, dead in phase.dead_keras.items() for j in range(dead.shape[1])]
    mixed = [(l, j) for l, j in units if 0 < phase.dead_keras[l][:, j].mean() < 1]
    return (mixed + [u for u in units if u not in mixed])[:LESSON_UNITS]


def lesson_data(result: ParityResult) -> tuple[list[UnitLesson], int]:
    """(the units drawn, how many ReLU units the model has). Empty when the model has no ReLU layer."""
    phase = result.probe if result.probe is not None else result.stepping
    total = sum(d.shape[1] for d in phase.dead_keras.values())
    by_x = phase.phase == "probe" and result.spec.input_dim == 1
    if by_x:
        order = np.argsort(result.data.x[phase.rows, 0], kind="stable")
        along = result.data.x[phase.rows[order], 0]
    else:
        order, along = np.arange(len(phase.rows)), np.arange(len(phase.rows), dtype=np.float64)
    before = ({side: params_before(trace, result.fitted) for side, trace in zip(SIDES, (phase.numpy, phase.keras))}
              if phase.phase == "stepping" else None)
    out = []
    for layer, j in _units(result, phase):
        if phase.phase == "probe" and not by_x:  # wider input: samples sorted by the unit's own z, dead ones first
            order = np.argsort(phase.keras.z[layer][:, j], kind="stable")
            along = phase.keras.z[layer][order, j].astype(np.float64)
        name = f"W{layer}"
        inputs = result.fitted[name].shape[0]
        entries = list(range(min(inputs, LESSON_ENTRIES)))
        if before is None:  # the probe: both sides hold the fitted weights on every sample
            fitted = result.fitted[name][entries, j]
            W = {side: np.broadcast_to(fitted, (len(order), len(entries))) for side in SIDES}
        else:
            W = {side: before[side][name][order][:, entries, j] for side in SIDES}
        traces = dict(zip(SIDES, (phase.numpy, phase.keras)))
        dW = {side: traces[side].grads[name][order][:, entries, j] for side in SIDES}
        dead = {"numpy": phase.dead_numpy[layer][order, j], "keras": phase.dead_keras[layer][order, j]}
        out.append(UnitLesson(layer, j, phase.phase, phase.rows[order], along, [f"{name}[{i}, {j}]" for i in entries],
                              W, dW, dead, inputs))
    return out, total


def _shade(ax, along: np.ndarray, dead: np.ndarray) -> None:
    """Grey behind the rows where the unit is dead."""
    ax.fill_between(along, 0, 1, where=dead, transform=ax.get_xaxis_transform(), color="0.85", step="mid",
                    linewidth=0, zorder=0)


def _points(ax, unit: UnitLesson, values: dict[str, np.ndarray], shown: np.ndarray, leak: np.ndarray | None) -> None:
    """Keras an open circle, NumPy a dot inside it; NumPy's dots red where `leak`. Markers on lines, not scatter
    collections: a third of the time to draw."""
    for e in range(values["keras"].shape[1]):
        colour = f"C{e}"
        ax.plot(unit.along[shown], values["keras"][shown, e], linestyle="", marker="o", markersize=5.2,
                markerfacecolor="none", markeredgecolor=colour, markeredgewidth=0.8, gid="keras")
        ax.plot(unit.along[shown], values["numpy"][shown, e], linestyle="", marker="o", markersize=2.2,
                markerfacecolor=colour, markeredgewidth=0, gid="numpy")
        if leak is not None and leak[shown, e].any():
            bad = shown[leak[shown, e]]
            ax.plot(unit.along[bad], values["numpy"][bad, e], linestyle="", marker="o", markersize=3.8,
                    markerfacecolor="#d62728", markeredgewidth=0, gid="leak", zorder=3)


def _headroom(ax, values: list[np.ndarray], room: float) -> None:
    """Room above the points for the panel's note: `room` times their span."""
    finite = np.concatenate([v[np.isfinite(v)] for v in values] + [np.zeros(1)])
    low, high = float(finite.min()), float(finite.max())
    span = high - low or 1.0
    ax.set_ylim(low - 0.08 * span, high + room * span)


def _note(ax, text: str) -> None:
    ax.text(0.01, 0.97, text, transform=ax.transAxes, va="top", ha="left", fontsize=8,
            bbox={"boxstyle": "round,pad=0.25", "facecolor": "white", "alpha": 0.85, "linewidth": 0})


def _dead_text(unit: UnitLesson, what: str) -> str:
    dead = unit.dead["keras"]
    n, rows = int(dead.sum()), len(dead)
    if n == 0:
        return f"alive on all {rows:,} {what}: dW is not 0 anywhere"
    zero = {side: int((unit.dW[side][dead] == 0).all(axis=1).sum()) for side in SIDES}
    text = f"dead (grey) on {n:,} of {rows:,} {what}: "
    if zero["numpy"] == zero["keras"] == n:
        return text + f"dW exactly 0 on all {n:,}, both sides"
    return text + f"Keras's dW exactly 0 on {zero['keras']:,}, NumPy's on {zero['numpy']:,}"


_COLOUR_NAMES = ("blue", "orange")  # C0, C1: the weights drawn per unit (LESSON_ENTRIES)


def _w_text(unit: UnitLesson, narrow: bool) -> str:
    """What the W panel shows, in words: each weight drawn (by colour when there are two), and that it is not 0."""
    def value(e: int) -> str:
        w = unit.W["keras"][:, e]
        return f"= {w[0]:.3g}" if unit.phase == "probe" else f"from {w.min():.3g} to {w.max():.3g}"

    named = [(f"{_COLOUR_NAMES[e]} " if len(unit.names) > 1 else "") + f"{name} {value(e)}"
             for e, name in enumerate(unit.names)]
    where = "on every sample" if unit.phase == "probe" else "over the steps"
    extra = f" ({len(unit.names)} of its {unit.inputs} weights)" if unit.inputs > len(unit.names) else ""
    if narrow:
        return "\n".join(named) + f"\n{where}: not 0{extra}"
    return f"{', '.join(named)} {where}: not 0{extra}"


def lesson(result: ParityResult, curves: ProbeCurves | None = None) -> Figure | None:
    """Per ReLU unit (a column): its weights W on top, their gradient dW below, per sample, both sides, dead rows grey."""
    units, total = lesson_data(result)
    if not units:
        return None
    probe = units[0].phase == "probe"
    what = "samples" if probe else "steps"
    n = len(units[0].rows)
    shown = np.unique(np.linspace(0, n - 1, min(n, LESSON_POINTS)).astype(np.int64))  # (points,)
    narrow = len(units) > 2  # then each panel's title and notes take two lines
    width = 12 if not narrow else 3.9 * len(units)
    fig, axes = new(2, len(units), figsize=(width, 6.6), squeeze=False, sharex="col",
                    gridspec_kw={"height_ratios": [1, 1.6], "left": 0.95 / width, "right": 0.99, "bottom": 0.09,
                                 "top": 0.76 if narrow else 0.79, "wspace": 0.28 if narrow else 0.16, "hspace": 0.1})
    leaked = False
    for col, unit in enumerate(units):
        top, below = axes[0, col], axes[1, col]
        for ax in (top, below):
            _shade(ax, unit.along, unit.dead["keras"])
            ax.axhline(0, color="black", linewidth=0.7, zorder=1)
        _points(top, unit, unit.W, shown, None)
        low, high = min(0.0, float(unit.W["keras"].min())), max(0.0, float(unit.W["keras"].max()))
        lines = _w_text(unit, narrow).count("\n") + 1
        top.set_ylim(low - 0.3 * (high - low) - 1e-12, high + (0.2 + 0.3 * lines) * (high - low) + 1e-12)  # 0, W, note
        leak = np.isfinite(unit.dW["numpy"]) & (unit.dW["numpy"] != 0) & (unit.dW["keras"] == 0)
        leaked |= bool(leak.any())
        _points(below, unit, unit.dW, shown, leak)
        _headroom(below, [unit.dW[side][shown] for side in SIDES], 0.45 if narrow else 0.3)
        _note(top, _w_text(unit, narrow))
        _note(below, _dead_text(unit, what).replace(": ", ":\n", 1) if narrow else _dead_text(unit, what))
        title = unit.label
        w, b = float(result.fitted[f"W{unit.layer}"][0, unit.unit]), float(result.fitted[f"b{unit.layer}"][unit.unit])
        if probe and unit.layer == 1 and result.spec.input_dim == 1 and w != 0:
            title += ("\n" if narrow else "  ") + f"(kink x* = {-b / w:.3f}: dead {'right' if w < 0 else 'left'} of it)"
        panel_title(top, title, fontsize=10)
        below.set_xlabel("x (samples sorted by x)" if probe and result.spec.input_dim == 1
                         else f"z{unit.layer}: the unit's pre-activation (samples sorted by it)" if probe
                         else "step (one step per training sample, in order)", fontsize=9)
        for ax in (top, below):
            ax.tick_params(labelsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(5))  # few ticks: building tick labels is most of the drawing
            ax.yaxis.set_major_locator(MaxNLocator(4))
    axes[0, 0].set_ylabel("W: the unit's weight", fontsize=9)
    axes[1, 0].set_ylabel("dW: its gradient\nfor that sample" if probe else "dW: its gradient\nat that step", fontsize=9)
    from matplotlib.patches import Patch

    handles = [Line2D([], [], color="gray", marker="o", markersize=5, markerfacecolor="none", linestyle="",
                      label="Keras (circle)"),
               Line2D([], [], color="gray", marker="o", markersize=2.5, linestyle="",
                      label="NumPy (dot; inside the circle: the sides agree)"),
               Patch(color="0.85", label="the unit is dead there (z = xW + b <= 0)")]
    if leaked:
        handles.append(Line2D([], [], color="#d62728", marker="o", markersize=4, linestyle="",
                              label="NumPy's dW not 0 where Keras's is exactly 0"))
    fig.legend(handles=handles, loc="upper center", ncol=len(handles), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.875))
    scope = "" if len(units) == total else f" ({len(units)} of the {total} ReLU units: those dead on some {what} first)"
    how = ("Each sample alone through both sides, at the fitted weights" if probe
           else "One SGD step per training sample on both sides, W as it was before the step")
    fig.suptitle(f"A dead ReLU zeroes dW for that sample, not W{scope}\n{how}. Where a unit is dead (grey), its dW is "
                 "exactly 0; its W is not 0", fontsize=11)
    return fig
