"""Name the traps of the book's chapter 7 by evidence: what a learner's Convolution, Pooling or tensor-input Affine
got wrong, from how its numbers relate to Keras's across probe cases chosen to expose each trap (NumPy only).

Each function takes the probe's results, `{case name: Run}`, and returns (code, severity, message, param) tuples for
what it can prove; nothing when the evidence is not there. Keras's numbers arrive computed by Keras (through the
callables passed in); nothing here re-derives them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parity.book.functions import col2im, im2col
from parity.settings.tolerances import within

__all__ = ["Run", "KERNEL_LAYOUTS", "other_kernels", "kernel_layout", "channels_last_rows", "col2im_overwrite",
           "hw_swapped", "bias_missing", "pool_routing", "flatten_order", "coverage", "window_totals", "agrees"]

RTOL, ATOL = 1e-10, 1e-12  # the layer probes' float64 tolerance: both sides compute the same formulas


@dataclass
class Run:
    """One probe case of a user's class: its inputs, its outputs (None where it raised) and Keras's."""

    case: str
    x: np.ndarray
    dout: np.ndarray
    window: tuple[int, int]
    stride: int
    pad: int
    ours: dict = field(default_factory=dict)  # forward, dx, dW, db: the user's, or None
    theirs: dict = field(default_factory=dict)  # the same, from Keras
    error: str | None = None  # the user's class raised or returned the wrong kind of thing: the guard's sentence
    W: np.ndarray | None = None  # a Convolution's or Affine's parameters in this case
    b: np.ndarray | None = None
    failure: object = None  # the UserCodeError behind `error`

    @property
    def square(self) -> bool:
        return self.x.shape[2] == self.x.shape[3]

    @property
    def overlapping(self) -> bool:
        return self.stride < max(self.window)


def agrees(ours, theirs) -> bool:
    return ours is not None and np.shape(ours) == np.shape(theirs) and bool(within(ours, theirs, RTOL, ATOL).all())


def _right(run: Run, *what: str) -> bool:
    return run.error is None and all(agrees(run.ours.get(w), run.theirs[w]) for w in what)


# Kernel layouts a learner's forward may effectively use instead of W (FN, C, FH, FW); each maps W to the kernel that,
# in the book's layout, computes what that code computes.
KERNEL_LAYOUTS = {
    "col_W = W.reshape(-1, FN): a reshape where a transpose belongs (the book: W.reshape(FN, -1).T)":
        lambda W: W.reshape(-1, W.shape[0]).T.reshape(W.shape),
    "W read as Keras's (FH, FW, C, FN) layout (the book's W is (FN, C, FH, FW))":
        lambda W: W.reshape(W.shape[2], W.shape[3], W.shape[1], W.shape[0]).transpose(3, 2, 0, 1),
    "FH and FW swapped in the kernel (W.transpose(0, 1, 3, 2))":
        lambda W: W.transpose(0, 1, 3, 2) if W.shape[2] == W.shape[3] else None,
}


def other_kernels(W: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(layout, kernel) for each of KERNEL_LAYOUTS that gives W another kernel: what kernel_layout asks Keras about
    (and so what a recording holds for it)."""
    kernels = [(what, layout(W)) for what, layout in KERNEL_LAYOUTS.items()]
    return [(what, k) for what, k in kernels if k is not None and not np.array_equal(k, W)]


def kernel_layout(runs: dict[str, Run], keras_forward) -> list[tuple]:
    """A forward that is Keras's Conv2D with another kernel: which layout of W it used, and the fix.
    `keras_forward(run, kernel)` is Keras's output for that case with `kernel` in the book's layout."""
    for run in runs.values():
        if run.error is None and run.ours.get("forward") is not None and not agrees(run.ours["forward"],
                                                                                    run.theirs["forward"]):
            for what, kernel in other_kernels(run.W):
                if agrees(run.ours["forward"], keras_forward(run, kernel)):
                    return [("kernel_layout", "error", f"forward equals Keras's Conv2D with the kernel laid out "
                             f"otherwise ({run.case}): {what}", "forward")]
            return []
    return []


def coverage(shape: tuple[int, ...], window: tuple[int, int], stride: int, pad: int) -> np.ndarray:
    """How many windows cover each input cell (N, C, H, W): col2im of ones."""
    cols = im2col(np.zeros(shape), *window, stride, pad)
    return col2im(np.ones(cols.shape), shape, *window, stride, pad)


def col2im_overwrite(runs: dict[str, Run]) -> list[tuple]:
    """dx right where windows do not overlap, wrong where they do, and only at cells more than one window covers:
    col2im assigns (`=`) where it must add (`+=`)."""
    separate = [r for r in runs.values() if not r.overlapping and r.error is None]
    overlapping = [r for r in runs.values() if r.overlapping and r.error is None and r.ours.get("dx") is not None
                   and np.shape(r.ours["dx"]) == np.shape(r.theirs["dx"])]
    if not separate or not all(_right(r, "dx") for r in separate):
        return []
    for run in overlapping:
        bad = ~within(run.ours["dx"], run.theirs["dx"], RTOL, ATOL)
        covered = coverage(run.x.shape, run.window, run.stride, run.pad)
        if bad.any() and (covered[bad] > 1).all():
            return [("col2im_overwrite", "error", f"dx is right where windows do not overlap and wrong at "
                     f"{int(bad.sum())} of the {int((covered > 1).sum())} cells several windows cover ({run.case}), "
                     "right at every cell one window covers: col2im assigns where it must add "
                     "(img[...] += col[...])", "dx")]
    return []


def hw_swapped(runs: dict[str, Run], what: tuple[str, ...]) -> list[tuple]:
    """Right on every square input, wrong (or failing) on an input with H != W: H and W swapped somewhere."""
    square = [r for r in runs.values() if r.square]
    other = [r for r in runs.values() if not r.square]
    if square and all(_right(r, *what) for r in square) and other and not any(_right(r, *what) for r in other):
        run = other[0]
        seen = run.error or "its numbers differ from Keras's"
        return [("hw_swapped", "error", f"right on a square input {square[0].x.shape[2]}x{square[0].x.shape[3]}, "
                 f"wrong on {run.x.shape[2]}x{run.x.shape[3]} (H x W): {seen}; H and W are swapped somewhere "
                 "(out_h comes from H and FH, out_w from W and FW; reshape(N, out_h, out_w, -1))", "forward")]
    return []


def bias_missing(runs: dict[str, Run]) -> list[tuple]:
    """A forward that is Keras's less the bias, on every case that ran."""
    ran = [r for r in runs.values() if r.error is None and r.ours.get("forward") is not None]
    for run in ran:
        ours, theirs = run.ours["forward"], run.theirs["forward"]
        bias = run.b.reshape(1, -1, 1, 1) if np.ndim(theirs) == 4 else run.b
        if agrees(ours, theirs) or not agrees(ours, theirs - bias):
            return []
    return [("bias_missing", "error", "forward equals Keras's without the bias: add + b (one per filter)",
             "forward")] if ran else []


def window_totals(dx: np.ndarray, run: Run) -> np.ndarray:
    """The gradient each pooling window passes back in total: dx summed over each window's cells (non-overlapping)."""
    return im2col(dx, *run.window, run.stride, run.pad).reshape(-1, dx.shape[1], run.window[0] * run.window[1]).sum(-1)


def pool_routing(runs: dict[str, Run]) -> list[tuple]:
    """Pooling's forward right and its dx wrong, with each window's total right: the gradient reaches the right
    window but the wrong cell (or is spread over it)."""
    for run in runs.values():
        if run.error is not None or run.overlapping or not _right(run, "forward") or _right(run, "dx"):
            continue
        ours = run.ours.get("dx")
        if ours is None or np.shape(ours) != np.shape(run.theirs["dx"]):
            continue
        if agrees(window_totals(ours, run), window_totals(run.theirs["dx"], run)):
            return [("pool_routing", "error", f"dx reaches each window in the right total but not at its maximal "
                     f"cell ({run.case}): route each window's dout to its argmax (dmax[np.arange(n), arg_max] = dout)",
                     "dx")]
    return []


def channels_last_rows(W: np.ndarray, x_shape: tuple) -> np.ndarray:
    """W's rows in the order an Affine that flattens (N, H, W, C) really uses them: x_cl @ W is x @ W[order]."""
    from parity.keras_side.transfer import flatten_order as order  # the one written-down Flatten orientation

    _, c, h, w = x_shape
    return W[order(c, h, w)]


def flatten_order(run: Run, keras_forward) -> list[tuple]:
    """A tensor-input Affine whose forward is Keras's once W's rows are put in channels-last order: it flattens
    (N, H, W, C) where the book flattens (N, C, H, W) (`x.reshape(N, -1)`)."""
    ours = run.ours.get("forward")
    if run.error is not None or ours is None or agrees(ours, run.theirs["forward"]):
        return []
    if agrees(ours, keras_forward(run, channels_last_rows(run.W, run.x.shape))):
        return [("flatten_order", "error", "forward flattens the (N, C, H, W) input channels-last; the book's "
                 "Affine flattens it as it comes, x.reshape(x.shape[0], -1), and Keras's Flatten order is mapped "
                 "onto that by the weight transfer", "forward")]
    return []
