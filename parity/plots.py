"""The report's pictures (matplotlib, Agg): gradient differences, dead-ReLU map, stepping, the fit.

Up to EXACT_LIMIT probed samples are drawn one by one; above it the probe is aggregated as it
streams in (ProbeCurves): BINS bins along x (or along the sample order), each holding its largest
gradient difference, its dead fraction per unit and its mean predictions, plus a fixed sample of
points for scatter plots. Ten million samples then plot as fast, and as readably, as ten thousand.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from parity.runner import ParityResult  # noqa: E402

__all__ = ["EXACT_LIMIT", "ProbeCurves", "draw_all"]

EXACT_LIMIT = 10_000
BINS = 500
SCATTER_POINTS = 5_000
NUMPY_STYLE = {"color": "tab:blue", "label": "numpy"}
KERAS_STYLE = {"color": "tab:orange", "label": "keras", "linestyle": "--"}


class ProbeCurves:
    """The probe, reduced to what the plots draw, accumulated chunk by chunk in bounded memory."""

    def __init__(self, data, spec):
        n = len(data)
        self.one_d = spec.input_dim == 1
        self.exact = n <= EXACT_LIMIT
        key = data.x[:, 0] if self.one_d else np.arange(n, dtype=np.float64)
        if self.exact:  # one bin per sample, in order of x
            self.bin = np.empty(n, dtype=np.int64)
            self.bin[np.argsort(key, kind="stable")] = np.arange(n)
            bins = n
        else:
            edges = np.linspace(key.min(), key.max(), BINS + 1)
            self.bin = np.clip(np.searchsorted(edges, key, side="right") - 1, 0, BINS - 1)
            bins = BINS
        self.key = key
        self.count = np.bincount(self.bin, minlength=bins).astype(np.float64)
        self.centre = np.bincount(self.bin, weights=key, minlength=bins) / np.maximum(self.count, 1)
        self.bins = bins
        self.grad_max: dict[str, np.ndarray] = {}
        self.dead: dict[tuple[int, str], np.ndarray] = {}  # (layer, side) -> (bins, units) dead counts
        self.pred: dict[str, np.ndarray] = {}  # side -> (bins, outputs) sums
        self.points = np.unique(np.linspace(0, n - 1, min(n, SCATTER_POINTS)).astype(np.int64))
        self.point_class: dict[str, np.ndarray] = {}

    def add(self, part) -> None:
        b = self.bin[part.rows]
        order = np.argsort(b, kind="stable")  # per-bin maxima by reduceat over rows sorted by bin
        present, starts = np.unique(b[order], return_index=True)
        for name, d in part.diffs.items():
            if d.kind == "gradient":
                acc = self.grad_max.setdefault(name, np.zeros(self.bins))
                acc[present] = np.maximum(acc[present], np.maximum.reduceat(d.max_abs[order], starts))
        for layer, dead in part.dead_keras.items():
            for side, mask in (("numpy", part.dead_numpy[layer]), ("keras", dead)):
                acc = self.dead.setdefault((layer, side), np.zeros((self.bins, mask.shape[1])))
                for j in range(mask.shape[1]):
                    acc[:, j] += np.bincount(b, weights=mask[:, j], minlength=self.bins)
        picked = np.isin(part.rows, self.points)
        for side, trace in (("numpy", part.numpy), ("keras", part.keras)):
            acc = self.pred.setdefault(side, np.zeros((self.bins, trace.pred.shape[1])))
            for k in range(trace.pred.shape[1]):
                acc[:, k] += np.bincount(b, weights=trace.pred[:, k].astype(np.float64), minlength=self.bins)
            cls = self.point_class.setdefault(side, np.full(len(self.points), -1))
            cls[np.searchsorted(self.points, part.rows[picked])] = trace.pred[picked].argmax(axis=1)

    def filled(self) -> np.ndarray:
        return self.count > 0


def _floor(tol) -> float:
    """Where exact zeros are drawn on a log axis: well under anything rounding produces."""
    return tol.atol * 1e-6


def _log_axis(ax) -> None:
    """A log y axis labelled 1e-12, 1e-09, ...: plain text, as mathtext tick labels cost most of a plot's time."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(numticks=8))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0e}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _save(fig, folder: Path, name: str) -> str:
    # No timestamps in the metadata, so the same run gives the same bytes. Margins are set by hand:
    # a layout engine (constrained, tight) costs more than drawing.
    fig.savefig(folder / name, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return name


def _along(curves: ProbeCurves, result: ParityResult) -> str:
    what = "x" if curves.one_d else "sample"
    return what + ("" if curves.exact else f" ({BINS} bins of {len(result.data):,} samples; per bin: max)")


def gradient_diffs(result: ParityResult, curves: ProbeCurves, folder: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True,
                             gridspec_kw={"left": 0.08, "right": 0.98, "bottom": 0.13, "top": 0.86, "wspace": 0.08})
    floor = _floor(result.tolerance)
    keep = curves.filled()
    for name, acc in curves.grad_max.items():
        axes[0].scatter(curves.centre[keep], np.maximum(acc[keep], floor), s=9, label=name, alpha=0.75)
    axes[0].set_xlabel(_along(curves, result))
    axes[0].set_title("probe: max |numpy - keras| per " + ("sample" if curves.exact else "bin"))
    steps = np.arange(len(result.stepping.rows))
    for name, d in result.stepping.diffs.items():
        if d.kind == "gradient":
            axes[1].scatter(steps, np.maximum(d.max_abs, floor), s=9, label=name, alpha=0.75)
    axes[1].set_xlabel("step")
    axes[1].set_title("stepping: max |numpy - keras| per step")
    for ax in axes:
        ax.axhline(result.tolerance.atol, color="red", linestyle=":", label=f"atol {result.tolerance.atol:g}")
        ax.axhline(floor, color="gray", linewidth=0.6)
        _log_axis(ax)
    axes[0].set_ylabel(f"abs difference (exact 0 drawn at {floor:.0e})")
    axes[1].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Gradient differences, {result.config.dtype}; pass when <= atol + rtol|keras| "
                 f"(rtol {result.tolerance.rtol:g})")
    return _save(fig, folder, "gradient_diffs.png")


def dead_relu_map(result: ParityResult, curves: ProbeCurves, folder: Path) -> str | None:
    layers = sorted({layer for layer, _ in curves.dead})
    if not layers:
        return None
    keep = curves.filled()
    xs = curves.centre[keep]
    heights = sum(curves.dead[(layer, "keras")].shape[1] for layer in layers)
    fig, axes = plt.subplots(len(layers), 2, figsize=(12, 1.4 + 0.5 * heights), squeeze=False, layout="constrained")
    for row, layer in enumerate(layers):
        for col, side in enumerate(("numpy", "keras")):
            ax = axes[row, col]
            fraction = curves.dead[(layer, side)][keep] / curves.count[keep, None]  # (bins, units)
            units = fraction.shape[1]
            ax.pcolormesh(xs, np.arange(units), fraction.T, cmap="Greys", vmin=0, vmax=1.4, shading="nearest")
            ax.set_yticks(range(units), [f"{layer}.{j}" for j in range(units)])
            ax.set_title(f"layer {layer}, {side}: dark = dead (pre-activation <= 0)"
                         + ("" if curves.exact else ", shade = share dead in the bin"), fontsize=9)
            ax.set_xlabel(_along(curves, result).replace("; per bin: max", ""))
            if curves.one_d and layer == 1:
                _kinks(ax, result, units, xs[0], xs[-1])
    fig.suptitle("Dead-ReLU map at the fitted weights" + (" (red: each unit's kink x* = -b/w)" if curves.one_d else ""))
    return _save(fig, folder, "dead_relu_map.png")


def _kinks(ax, result: ParityResult, units: int, lo: float, hi: float) -> None:
    W, b = result.fitted["W1"][0], result.fitted["b1"]
    for j in range(units):
        if W[j] == 0:
            continue
        kink = -b[j] / W[j]
        at = min(max(kink, lo), hi)  # a kink outside the data is drawn at the edge, labelled
        ax.plot([at], [j], marker="|", color="red", markersize=18, mew=2)
        note = "" if lo <= kink <= hi else " (outside the data)"
        ax.annotate(f"x*={kink:.3f}{note}", (at, j), textcoords="offset points", xytext=(4, 6), color="red", fontsize=8)
    ax.set_xlim(lo, hi)


def stepping(result: ParityResult, folder: Path) -> str:
    phase = result.stepping
    names = list(phase.numpy.params_after)
    fig, axes = plt.subplots(2, len(names), figsize=(3.2 * len(names), 6), squeeze=False, sharex=True,
                             gridspec_kw={"left": 0.07, "right": 0.98, "bottom": 0.08, "top": 0.9, "wspace": 0.35})
    steps = np.arange(1, len(phase.rows) + 1)
    floor = _floor(result.tolerance)
    for k, name in enumerate(names):
        ours = phase.numpy.params_after[name].reshape(len(steps), -1)
        theirs = phase.keras.params_after[name].reshape(len(steps), -1)
        for e in range(min(ours.shape[1], 8)):
            axes[0, k].plot(steps, ours[:, e], **{**NUMPY_STYLE, "label": "numpy" if e == 0 else None})
            axes[0, k].plot(steps, theirs[:, e], **{**KERAS_STYLE, "label": "keras" if e == 0 else None})
        axes[0, k].set_title(name + ("" if ours.shape[1] <= 8 else " (first 8 entries)"))
        axes[1, k].plot(steps, np.maximum(phase.diffs[name].max_abs, floor), color="tab:red")
        axes[1, k].axhline(result.tolerance.atol, color="red", linestyle=":")
        _log_axis(axes[1, k])
        axes[1, k].set_xlabel("step")
    axes[0, 0].legend(fontsize=8)
    axes[0, 0].set_ylabel("value after the step")
    axes[1, 0].set_ylabel(f"max |numpy - keras| (0 at {floor:.0e})")
    fig.suptitle(f"Stepping: one SGD step per training sample (lr {result.config.lr:g}) on both sides")
    return _save(fig, folder, "stepping.png")


def fit(result: ParityResult, curves: ProbeCurves, folder: Path) -> str:
    data = result.data
    fig, ax = plt.subplots(figsize=(8, 5), gridspec_kw={"left": 0.1, "right": 0.97, "bottom": 0.1, "top": 0.92})
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
                                alpha=0.08, step="mid", label=f"unit 1.{j} active", color=f"C{j + 3}")
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
    ax.set_title("Data and the fitted model" + ("; shaded: where each first-layer ReLU unit is active" if one_d else ""))
    return _save(fig, folder, "fit.png")


def draw_all(result: ParityResult, curves: ProbeCurves, folder: Path) -> list[str]:
    drawn = [gradient_diffs(result, curves, folder), dead_relu_map(result, curves, folder),
             stepping(result, folder), fit(result, curves, folder)]
    return [name for name in drawn if name]
