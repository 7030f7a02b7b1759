"""regularization.png: the book's chapter 6 on both sides, step by step (the batch-wise training steps of stepping).

Per BatchNormalization feature: the batch mean and variance each step normalized with, and the running mean and
variance after it; per Dropout: the units one sample kept. Keras's numbers are Keras's own (the moments its layer
computed, its moving statistics as read after each step, the mask its autodiff shows), never recomputed here; a
value further from Keras's than the run's tolerance is drawn in red, and the bottom panel of each BatchNormalization
shows how far apart the sides are on a log axis, as stepping.png does.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from parity.compare.outcome import ParityResult
from parity.report.plot_style import ReportFigure, floor_and_atol, log_axis, panel_title, zero_floor
from parity.report.probe_curves import ProbeCurves

__all__ = ["regularization", "norm_series", "dropout_cells", "FEATURES_SHOWN", "UNITS_SHOWN"]

FEATURES_SHOWN = 8  # per BatchNormalization: the features whose statistics differ most (the first ones, when all agree)
UNITS_SHOWN = 48  # per Dropout row: a wider layer shows its first units, and says so
STATISTICS = (("mean", "mean"), ("var", "variance"))
RED = "#d62728"


def _apart(result: ParityResult, numpy: np.ndarray, keras: np.ndarray) -> np.ndarray:
    """Entries further apart than the run's tolerance (atol + rtol |keras|), or not finite on either side."""
    tol = result.tolerance
    with np.errstate(invalid="ignore"):
        close = np.abs(numpy - keras) <= tol.atol + tol.rtol * np.abs(keras)
    return ~(close & np.isfinite(numpy) & np.isfinite(keras))


def norm_series(result: ParityResult, number: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{batch_mean, batch_var, running_mean, running_var: (numpy, keras), each (steps, features)} of the
    BatchNormalization after Dense layer `number`, as stepping recorded them; a series a side did not record is left
    out (a Keras without BatchNormalization._moments records no batch statistics)."""
    steps, out = result.stepping, {}
    for kind, _ in STATISTICS:
        name = f"batch_{kind}{number}"
        if name in steps.numpy.observed and name in steps.keras.observed:
            out[f"batch_{kind}"] = (steps.numpy.observed[name], steps.keras.observed[name])
        name = f"running_{kind}{number}"
        if name in steps.numpy.params_after and name in steps.keras.params_after:
            out[f"running_{kind}"] = (steps.numpy.params_after[name], steps.keras.params_after[name])
    as_rows = lambda a: np.asarray(a, dtype=np.float64).reshape(len(a), -1)  # noqa: E731  (steps, features)
    return {name: (as_rows(ours), as_rows(theirs)) for name, (ours, theirs) in out.items()}


def dropout_cells(result: ParityResult, number: int) -> dict | None:
    """One sample's Dropout cells on both sides: {"step", "sample" (its place in the batch), "keras" (kept, from
    Keras's autodiff), "kept" (the NumPy side's, from its output), "passed" (its backward let dout through)}, each
    (units,) bool; the sample is the first whose cells differ anywhere, else the first. Over every step's samples:
    "kept_share" (of Keras's units), "samples_differ" of "samples". None without Keras's masks."""
    steps = result.stepping
    if number not in steps.keras.masks:
        return None
    keras = np.asarray(steps.keras.masks[number], dtype=bool)
    batch = result.config.batch_size
    keras = keras.reshape(len(keras), batch, -1)  # (steps, batch, units)
    sides = {}
    for name in ("kept", "passed"):
        seen = steps.numpy.observed.get(f"{name}{number}")
        if seen is not None and np.shape(seen)[0] == len(keras):
            seen = np.asarray(seen, dtype=float).reshape(keras.shape)
            sides[name] = np.where(np.isnan(seen), np.nan, seen != 0)  # NaN: a step on which the NumPy side raised
    differ = np.zeros(keras.shape[:2], dtype=bool)
    for seen in sides.values():
        differ |= (seen != keras).any(axis=2)  # NaN != anything: a failed step counts as differing
    step, sample = np.argwhere(differ)[0] if differ.any() else (0, 0)
    return {"step": int(step), "sample": int(sample), "keras": keras[step, sample],
            **{name: seen[step, sample] for name, seen in sides.items()},
            "kept_share": float(keras.mean()), "samples_differ": int(differ.sum()), "samples": int(differ.size)}


def _feature_order(result: ParityResult, series: dict) -> np.ndarray:
    """Features, the ones with the most entries out of tolerance first (stable: ties keep their order)."""
    apart = np.sum([_apart(result, n, k).sum(axis=0) for n, k in series.values()], axis=0)  # (features,)
    return np.argsort(-apart, kind="stable")


def _norm_rows(fig, grid, result: ParityResult, number: int, series: dict) -> None:
    """Two rows of panels (mean, variance) per shown feature, then the differences on a log axis."""
    order = _feature_order(result, series)
    shown = order[:FEATURES_SHOWN]
    width = len(order)
    rows = grid.subgridspec(3, len(shown), hspace=0.45, wspace=0.32, height_ratios=(1, 1, 1.1))
    steps = np.arange(1, len(next(iter(series.values()))[0]) + 1)
    for r, (kind, word) in enumerate(STATISTICS):
        for c, j in enumerate(shown):
            ax = fig.add_subplot(rows[r, c])
            for source, marker, line in (("batch", "o", ""), ("running", "", "-")):
                if f"{source}_{kind}" not in series:
                    continue
                ours, theirs = (a[:, j] for a in series[f"{source}_{kind}"])
                if source == "batch":
                    ax.scatter(steps, theirs, s=28, facecolors="none", edgecolors="tab:orange", linewidths=1)
                    ax.scatter(steps, ours, s=7, color="tab:blue")
                else:
                    ax.plot(steps, theirs, color="tab:orange", linewidth=2.6, alpha=0.55)
                    ax.plot(steps, ours, color="tab:blue", linewidth=1)
                bad = _apart(result, ours, theirs)
                if bad.any():
                    ax.scatter(steps[bad], np.where(np.isfinite(ours[bad]), ours[bad], theirs[bad]), s=34, marker="x",
                               color=RED, zorder=5)
            ax.tick_params(labelsize=7)
            panel_title(ax, f"feature {j}: {word}", fontsize=8)
    ax = fig.add_subplot(rows[2, :])
    floor = zero_floor(result.tolerance)
    for k, (name, (ours, theirs)) in enumerate(series.items()):
        with np.errstate(invalid="ignore"):
            worst = np.nanmax(np.where(np.isfinite(ours) & np.isfinite(theirs), np.abs(ours - theirs), np.inf), axis=1)
        ax.plot(steps, np.maximum(worst, floor), marker="o", markersize=3, color=f"C{(2, 4, 5, 8)[k % 4]}",
                label=f"{name.replace('_', ' ')}: max over all {width} features")
    floor_and_atol(ax, result, floor)
    log_axis(ax)
    ax.set_xlabel("training step (one batch each); the values drawn are those after the step, the batch's on it")
    ax.set_ylabel("|numpy - keras|", fontsize=8)
    ax.legend(fontsize=7, loc="best", ncol=2)
    more = f"; {len(shown)} of its {width} features shown, those that differ most first" if width > len(shown) else ""
    panel_title(ax, f"BatchNormalization after Dense layer {number}: how far apart the sides are after each step{more}",
                fontsize=9)


def _dropout_row(fig, grid, result: ParityResult, number: int, rate: float, cells: dict) -> None:
    """One sample's units as cells: kept (blue) or dropped (light grey); red where the NumPy side differs from
    Keras's mask."""
    from matplotlib.colors import ListedColormap

    keras = cells["keras"]
    rows = [("Keras", keras)] + [(label, cells[key]) for key, label in
                                 (("kept", "NumPy forward"), ("passed", "NumPy backward")) if key in cells]
    units = min(len(keras), UNITS_SHOWN)
    codes = np.array([np.where(np.isnan(np.asarray(row, dtype=float)) | (np.asarray(row, dtype=float) != keras),
                               2, np.asarray(row, dtype=float))[:units] for _, row in rows])  # 0 dropped, 1 kept, 2 red
    ax = fig.add_subplot(grid)
    ax.pcolormesh(np.arange(units + 1) - 0.5, np.arange(len(rows) + 1) - 0.5, codes, vmin=0, vmax=2,
                  cmap=ListedColormap(["#e3e3e3", "#3b75af", RED]), edgecolors="white", linewidth=1)
    ax.set_yticks(range(len(rows)), [label for label, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xticks(range(0, units, max(1, units // 16)))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("unit" + ("" if units == len(keras) else f" (first {units} of {len(keras)})") + ": blue kept, grey "
                  "dropped, red where NumPy differs from Keras (Keras's from its autodiff; NumPy's forward from its "
                  "output, its backward from where it let dout through)", fontsize=8)
    differ = int((codes == 2).sum())
    overall = (f"over all {cells['samples']} samples of the steps Keras kept {cells['kept_share']:.0%} of the units "
               f"(1 - rate = {1 - rate:.0%}); NumPy differs on {cells['samples_differ']} of them")
    panel_title(ax, f"Dropout (rate {rate:g}) after Dense layer {number}: sample {cells['sample']} of step "
                    f"{cells['step'] + 1}'s batch; Keras kept {int(keras.sum())} of {len(keras)} units"
                    + (f"; {differ} cells differ" if differ else "; both sides agree on every unit") + "\n" + overall,
                fontsize=9)


def regularization(result: ParityResult, curves: ProbeCurves | None = None) -> Figure | None:
    """The chapter-6 picture of a run with BatchNormalization or Dropout (None for any other run)."""
    if not result.modes or not result.spec.regularized:
        return None
    norms = [(k, s) for k, _ in result.spec.batch_norms() if (s := norm_series(result, k))]
    drops = [(k, rate, c) for k, rate in result.spec.dropouts() if (c := dropout_cells(result, k)) is not None]
    if not norms and not drops:
        return None
    heights = [7.2] * len(norms) + [0.6 + 0.3 * sum(key in c for key in ("keras", "kept", "passed"))
                                    for *_, c in drops]  # inches per block
    top, bottom = (1.8 if norms else 1.0), 0.45
    fig = ReportFigure(figsize=(13, sum(heights) + top + bottom + 0.55 * (len(heights) - 1)))
    tall = fig.get_figheight()
    grid = fig.add_gridspec(len(heights), 1, height_ratios=heights, left=0.13, right=0.98, bottom=bottom / tall,
                            top=1 - top / tall, hspace=1.1 * len(heights) / sum(heights))
    for row, (number, series) in enumerate(norms):
        _norm_rows(fig, grid[row], result, number, series)
    for row, (number, rate, cells) in enumerate(drops, start=len(norms)):
        _dropout_row(fig, grid[row], result, number, rate, cells)
    handles = [Line2D([], [], marker="o", linestyle="", markerfacecolor="none", color="tab:orange",
                      label="Keras batch statistic (its layer's own)"),
               Line2D([], [], marker="o", linestyle="", markersize=4, color="tab:blue", label="NumPy batch statistic"),
               Line2D([], [], color="tab:orange", linewidth=2.6, alpha=0.55, label="Keras running (moving) statistic"),
               Line2D([], [], color="tab:blue", label="NumPy running statistic"),
               Line2D([], [], marker="x", linestyle="", color=RED,
                      label="NumPy differs from Keras beyond the tolerance")]
    if norms:
        fig.legend(handles=handles, loc="upper center", ncol=5, fontsize=8, frameon=False,
                   bbox_to_anchor=(0.5, 1 - 1.08 / tall))
    said = [("BatchNormalization normalizes with the batch's statistics and keeps running ones that follow them\n"
             "(running = momentum * running + (1 - momentum) * batch)") if norms else "",
            ("Dropout keeps a random share of the units, and its backward must let dout through exactly where its "
             "forward kept a unit") if drops else ""]
    fig.suptitle(f"Chapter 6 on both sides, step by step ({result.config.dtype}, one training step per batch of "
                 f"{result.config.batch_size})\n" + ";\n".join(text for text in said if text),
                 fontsize=10, y=1 - 0.1 / tall, va="top")
    return fig
