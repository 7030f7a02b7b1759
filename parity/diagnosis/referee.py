"""The finite-difference referee: when a user's backward disagrees with Keras, central differences of the
user's own forward say which side is off, or that the point is a kink (NumPy only, float64)."""

from __future__ import annotations

import numpy as np

from parity.settings.tolerances import within

__all__ = ["referee", "numerical"]

FD_STEP, FD_RTOL, FD_ATOL = 1e-6, 1e-5, 1e-7  # central differences: truncation ~h**2, rounding ~eps/h


def numerical(f, x: np.ndarray, one_sided: int = 0) -> np.ndarray:
    """Central (or forward/backward, one_sided=+1/-1) differences of the scalar f at x."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + FD_STEP if one_sided >= 0 else old
        up = f()
        x[idx] = old - FD_STEP if one_sided <= 0 else old
        down = f()
        x[idx] = old
        grad[idx] = (up - down) / (FD_STEP * (2 if one_sided == 0 else 1))
    return grad


def referee(f, x: np.ndarray, ours: np.ndarray, theirs: np.ndarray, bad: np.ndarray) -> str:
    """Three-way verdict from central differences of the user's forward at the disagreeing entries.

    Only entries where the forward is smooth decide: where one-sided differences disagree (a kink,
    where either answer may hold) an entry is set aside, so a kink beside a real error cannot excuse it.
    """
    try:  # x is the very array f reads: perturbed in place, entry by entry, and restored
        central = numerical(f, x)
        right, left = numerical(f, x, +1), numerical(f, x, -1)
    except Exception:
        return "central differences could not be taken (the forward raised)"
    near = lambda a, b: within(a, b, FD_RTOL, FD_ATOL)  # noqa: E731
    judged = bad & near(right, left)
    if not judged.any():
        return "one-sided differences of your forward disagree there: a kink, where either answer may hold"
    if near(central, theirs)[judged].all():
        return "central differences of your forward agree with Keras: your backward is wrong"
    if near(central, np.zeros_like(central))[judged].all():  # a forward that returns a constant agrees with a zero dx
        return ("central differences of your forward are 0 there: your forward does not change with its input (it "
                "returns a constant, such as all zeros), so they cannot judge your backward; fix the forward first")
    if np.shape(ours) == np.shape(central) and near(central, ours)[judged].all():
        return "central differences of your forward agree with your backward: your forward follows another convention"
    return "central differences of your forward agree with neither side: forward and backward are both off"
