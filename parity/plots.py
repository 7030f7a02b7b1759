"""The report's pictures (matplotlib, Agg): gradient differences, dead-ReLU map, stepping, the fit."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from parity.runner import ParityResult  # noqa: E402

__all__ = ["draw_all"]

NUMPY_STYLE = {"color": "tab:blue", "label": "numpy"}
KERAS_STYLE = {"color": "tab:orange", "label": "keras", "linestyle": "--"}


def _floor(tol) -> float:
    """Where exact zeros are drawn on a log axis: well under anything rounding produces."""
    return tol.atol * 1e-6


def _save(fig, folder: Path, name: str) -> str:
    # No timestamps in the metadata, so the same run gives the same bytes.
    fig.savefig(folder / name, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return name


def gradient_diffs(result: ParityResult, folder: Path) -> str:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
    floor = _floor(result.tolerance)
    for ax, phase in zip(axes, (result.probe, result.stepping)):
        by_x = result.spec.input_dim == 1 and phase.phase == "probe"
        xs = result.data.x[phase.rows, 0] if by_x else np.arange(len(phase.rows))
        for name, d in phase.diffs.items():
            if d.kind == "gradient":
                ax.scatter(xs, np.maximum(d.row_max(), floor), s=9, label=name, alpha=0.75)
        ax.axhline(result.tolerance.atol, color="red", linestyle=":", label=f"atol {result.tolerance.atol:g}")
        ax.axhline(floor, color="gray", linewidth=0.6)
        ax.set_yscale("log")
        ax.set_xlabel("x" if by_x else ("sample" if phase.phase == "probe" else "step"))
        ax.set_title(f"{phase.phase}: max |numpy - keras| per {'sample' if phase.phase == 'probe' else 'step'}")
    axes[0].set_ylabel(f"abs difference (exact 0 drawn at {floor:.0e})")
    axes[1].legend(fontsize=8, loc="upper right")
    fig.suptitle(f"Gradient differences, {result.config.dtype}; pass when <= atol + rtol|keras| "
                 f"(rtol {result.tolerance.rtol:g})")
    return _save(fig, folder, "gradient_diffs.png")


def dead_relu_map(result: ParityResult, folder: Path) -> str | None:
    probe = result.probe
    if not probe.dead_keras:
        return None
    one_d = result.spec.input_dim == 1
    if one_d:
        order, along = np.argsort(result.data.x[:, 0], kind="stable"), "x (samples sorted)"
    elif result.classifies:
        order, along = np.argsort(result.data.y[:, 0], kind="stable"), "samples sorted by class"
    else:
        order, along = np.argsort(probe.keras.pred[:, 0], kind="stable"), "samples sorted by Keras's prediction"
    layers = list(probe.dead_keras)
    fig, axes = plt.subplots(len(layers), 2, figsize=(12, 1.2 + 0.5 * sum(probe.dead_keras[k].shape[1] for k in layers)),
                             squeeze=False)
    for row, layer in enumerate(layers):
        for col, (side, dead) in enumerate((("numpy", probe.dead_numpy[layer]), ("keras", probe.dead_keras[layer]))):
            ax = axes[row, col]
            units = dead.shape[1]
            xs = result.data.x[order, 0] if one_d else np.arange(len(order))
            ax.pcolormesh(xs, np.arange(units), dead[order].T.astype(float), cmap="Greys", vmin=0, vmax=1.4,
                          shading="nearest")
            ax.set_yticks(range(units), [f"{layer}.{j}" for j in range(units)])
            ax.set_title(f"layer {layer}, {side}: dark = dead (pre-activation <= 0)", fontsize=9)
            ax.set_xlabel(along)
            if one_d and layer == 1:
                lo, hi = xs[0], xs[-1]
                W, b = result.fitted["W1"][0], result.fitted["b1"]
                for j in range(units):
                    if W[j] == 0:
                        continue
                    kink = -b[j] / W[j]
                    at = min(max(kink, lo), hi)  # a kink outside the data is drawn at the edge, labelled
                    ax.plot([at], [j], marker="|", color="red", markersize=18, mew=2)
                    note = "" if lo <= kink <= hi else " (outside the data)"
                    ax.annotate(f"x*={kink:.3f}{note}", (at, j), textcoords="offset points", xytext=(4, 6),
                                color="red", fontsize=8)
                ax.set_xlim(lo, hi)
    fig.suptitle("Dead-ReLU map at the fitted weights" + (" (red: each unit's kink x* = -b/w)" if one_d else ""))
    fig.tight_layout()
    return _save(fig, folder, "dead_relu_map.png")


def stepping(result: ParityResult, folder: Path) -> str:
    phase = result.stepping
    names = list(phase.numpy.params_after)
    fig, axes = plt.subplots(2, len(names), figsize=(3.2 * len(names), 6), squeeze=False, sharex=True)
    steps = np.arange(1, len(phase.rows) + 1)
    floor = _floor(result.tolerance)
    for k, name in enumerate(names):
        ours = phase.numpy.params_after[name].reshape(len(steps), -1)
        theirs = phase.keras.params_after[name].reshape(len(steps), -1)
        for e in range(min(ours.shape[1], 8)):
            axes[0, k].plot(steps, ours[:, e], **{**NUMPY_STYLE, "label": "numpy" if e == 0 else None})
            axes[0, k].plot(steps, theirs[:, e], **{**KERAS_STYLE, "label": "keras" if e == 0 else None})
        axes[0, k].set_title(name + ("" if ours.shape[1] <= 8 else " (first 8 entries)"))
        axes[1, k].plot(steps, np.maximum(phase.diffs[name].row_max(), floor), color="tab:red")
        axes[1, k].axhline(result.tolerance.atol, color="red", linestyle=":")
        axes[1, k].set_yscale("log")
        axes[1, k].set_xlabel("step")
    axes[0, 0].legend(fontsize=8)
    axes[0, 0].set_ylabel("value after the step")
    axes[1, 0].set_ylabel(f"max |numpy - keras| (0 at {floor:.0e})")
    fig.suptitle(f"Stepping: one SGD step per training sample (lr {result.config.lr:g}) on both sides")
    fig.tight_layout()
    return _save(fig, folder, "stepping.png")


def fit(result: ParityResult, folder: Path) -> str:
    data, probe = result.data, result.probe
    fig, ax = plt.subplots(figsize=(8, 5))
    if result.spec.input_dim == 1 and result.spec.output_dim == 1:
        x, split = data.x[:, 0], data.split()
        for name, marker in (("train", "o"), ("test", "x")):
            mask = split == name
            ax.scatter(x[mask], data.y[mask, 0], s=12, marker=marker, alpha=0.6, label=f"data ({name})")
        order = np.argsort(x, kind="stable")
        ax.plot(x[order], probe.numpy.pred[order, 0], **{**NUMPY_STYLE, "label": "numpy prediction"})
        ax.plot(x[order], probe.keras.pred[order, 0], **{**KERAS_STYLE, "label": "keras prediction"})
        if 1 in probe.dead_keras:
            for j in range(probe.dead_keras[1].shape[1]):
                alive = ~probe.dead_keras[1][order, j]
                ax.fill_between(x[order], 0, 1, where=alive, transform=ax.get_xaxis_transform(), alpha=0.08,
                                step="mid", label=f"unit 1.{j} active", color=f"C{j + 3}")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
    elif result.classifies and result.spec.input_dim == 2:
        labels = data.y.reshape(-1)
        ours, theirs = probe.numpy.pred.argmax(axis=1), probe.keras.pred.argmax(axis=1)
        for k in range(result.spec.output_dim):
            mask = labels == k
            ax.scatter(data.x[mask, 0], data.x[mask, 1], s=14, color=f"C{k}", alpha=0.7, label=f"class {k}")
        wrong = theirs != labels
        if wrong.any():
            ax.scatter(data.x[wrong, 0], data.x[wrong, 1], s=60, facecolors="none", edgecolors="black",
                       label="keras predicts another class")
        differ = ours != theirs
        if differ.any():
            ax.scatter(data.x[differ, 0], data.x[differ, 1], s=120, marker="x", color="red",
                       label="numpy and keras predict different classes")
        ax.set_xlabel("x0")
        ax.set_ylabel("x1")
    else:
        target = data.y if not result.classifies else np.eye(result.spec.output_dim)[data.y.reshape(-1)]
        ax.scatter(target.reshape(-1), probe.keras.pred.reshape(-1), s=8, label="keras")
        ax.scatter(target.reshape(-1), probe.numpy.pred.reshape(-1), s=3, label="numpy")
        ax.set_xlabel("target" + (" (one-hot)" if result.classifies else ""))
        ax.set_ylabel("prediction")
    ax.legend(fontsize=8)
    one_d = result.spec.input_dim == 1 and result.spec.output_dim == 1
    ax.set_title("Data and the fitted model" + ("; shaded: where each first-layer ReLU unit is active" if one_d else ""))
    return _save(fig, folder, "fit.png")


def draw_all(result: ParityResult, folder: Path) -> list[str]:
    drawn = [gradient_diffs(result, folder), dead_relu_map(result, folder), stepping(result, folder), fit(result, folder)]
    return [name for name in drawn if name]
