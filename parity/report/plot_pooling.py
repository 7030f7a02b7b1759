"""pool_routing.png: the chapter-7 lesson as a picture. Max pooling passes each window's gradient back to one cell,
the one that held the window's maximum; the other cells get exactly 0. For one sample, per channel: the pooling's
input with the cell each side chose in each window (Keras an orange square, NumPy a blue dot, red where they differ),
the learned filter that made the channel, and how far the sides' dW for that filter are apart on that sample.

The data are parity.compare.pool_routing's: Keras's choice is where Keras's autodiff put the gradient.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from parity.compare.outcome import ParityResult
from parity.report.plot_style import new, panel_title
from parity.report.probe_curves import ProbeCurves

__all__ = ["pool_routing", "CHANNELS"]

CHANNELS = 8  # channels drawn at most, one column each
_RED, _KERAS, _NUMPY = "#d62728", "tab:orange", "tab:blue"


def _cells(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.nonzero(mask)
    return cols, rows  # imshow's x is the column


def _map(ax, routing, c: int, top: float) -> None:
    """Channel c's pooling input, its windows, and each side's chosen cells."""
    ax.imshow(routing.values[c], cmap="Greys", vmin=0, vmax=top, interpolation="nearest")
    h, w = routing.values[c].shape
    if routing.stride == routing.window[0] == routing.window[1]:  # windows that tile the map: their borders
        for edge in range(0, max(h, w) + 1, routing.stride):
            ax.axhline(edge - 0.5, color="#8fb8de", linewidth=0.8)
            ax.axvline(edge - 0.5, color="#8fb8de", linewidth=0.8)
    differs = routing.differs[c]
    if differs.any():
        ax.plot(*_cells(differs), linestyle="", marker="s", markersize=11, markerfacecolor=_RED, alpha=0.75,
                markeredgewidth=0, gid="differs")
    ax.plot(*_cells(routing.keras[c] != 0), linestyle="", marker="s", markersize=9, markerfacecolor="none",
            markeredgecolor=_KERAS, markeredgewidth=1.6, gid="keras")
    ax.plot(*_cells(routing.numpy[c] != 0), linestyle="", marker="o", markersize=3.5, markerfacecolor=_NUMPY,
            markeredgewidth=0, gid="numpy")
    tie = routing.tie[c]
    if tie.any():
        ax.plot(*_cells(tie), linestyle="", marker="x", markersize=4, color="0.45", markeredgewidth=0.8, gid="tie")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)


def pool_routing(result: ParityResult, curves: ProbeCurves | None = None) -> Figure | None:
    """Per channel (a column): the filter, the pooling input with each side's chosen cells, and dW's difference."""
    routing = result.pool_routing
    if routing is None:
        return None
    channels = min(routing.values.shape[0], CHANNELS)
    filters = routing.filters is not None
    rows = 3 if filters else 1
    width = max(7.0, 1.55 * channels + 1.3)
    height = 1.35 + 1.75 * rows
    ratios = [1, 1.5, 1][:rows] if filters else [1]
    fig, axes = new(rows, channels, figsize=(width, height), squeeze=False,
                    gridspec_kw={"height_ratios": ratios, "left": 1.15 / width, "right": 0.99, "bottom": 0.03,
                                 "top": 1 - 1.3 / height, "wspace": 0.12, "hspace": 0.3})
    top = float(np.nanmax(routing.values[:channels], initial=0.0)) * 1.4 or 1.0
    mapped = 1 if filters else 0
    if filters:
        drawn = routing.filters[:channels, 0]  # (channels, FH, FW): input channel 0
        scale = float(np.abs(drawn).max()) or 1.0
        diff = routing.dW["numpy"][:channels, 0] - routing.dW["keras"][:channels, 0]
        spread = float(np.nanmax(np.abs(diff), initial=0.0))
        limit = max(spread, result.tolerance.atol)  # differences within the tolerance stay pale
    for c in range(channels):
        _map(axes[mapped, c], routing, c, top)
        panel_title(axes[mapped, c], f"map {c}: {int((routing.differs[c]).sum())} differ" if routing.differs[c].any()
                    else f"map {c}", fontsize=8, color=_RED if routing.differs[c].any() else "black")
        if filters:
            axes[0, c].imshow(drawn[c], cmap="gray", vmin=-scale, vmax=scale, interpolation="nearest")
            panel_title(axes[0, c], f"filter {c}", fontsize=8)
            worst = float(np.nanmax(np.abs(diff[c]), initial=0.0)) if np.isfinite(diff[c]).any() else float("nan")
            over = not worst <= result.tolerance.atol
            axes[2, c].imshow(diff[c], cmap="PuOr", vmin=-limit, vmax=limit, interpolation="nearest")
            panel_title(axes[2, c], f"max |diff| {worst:.1e}", fontsize=8, color=_RED if over else "black")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    cin = "" if not filters or routing.filters.shape[1] == 1 else f", input channel 0 of {routing.filters.shape[1]}"
    labels = ([f"W{routing.conv}: the learned\nfilter (Keras's fit){cin}"] if filters else []) + \
        ["pooling input\n(Keras's values)"] + ([f"dW{routing.conv}, this sample:\nNumPy - Keras"] if filters else [])
    for ax, label in zip(axes[:, 0], labels):
        ax.set_ylabel(label, fontsize=8)
    handles = [Line2D([], [], linestyle="", marker="s", markersize=8, markerfacecolor="none", markeredgecolor=_KERAS,
                      markeredgewidth=1.6, label="Keras sent the gradient here"),
               Line2D([], [], linestyle="", marker="o", markersize=4, markerfacecolor=_NUMPY, markeredgewidth=0,
                      label="NumPy sent it here (inside the square: they agree)"),
               Patch(color=_RED, alpha=0.75, label="only one side sent gradient to this cell"),
               Line2D([], [], linestyle="", marker="x", markersize=5, color="0.45",
                      label="tie: equal maxima, either cell is right")]
    shown = [h for h, seen in zip(handles, (True, True, routing.differs.any(), routing.tie[:channels].any())) if seen]
    fig.legend(handles=shown, loc="upper center", ncol=2, fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.55 / height))
    count = int(routing.differs.sum())
    verdict = (f"{count} cell{'s' * (count != 1)} where only one side sent gradient" if count
               else "every window's gradient went to the same cell on both sides")
    scope = "" if channels == routing.values.shape[0] else f" (first {channels} of {routing.values.shape[0]} maps)"
    fig.suptitle(f"Max pooling sends each {routing.window[0]}x{routing.window[1]} window's gradient to the cell that "
                 f"held its maximum, 0 to the others: sample {routing.sample}{scope}\n{routing.why}; {verdict}",
                 fontsize=10, y=1 - 0.08 / height, va="top")
    return fig
