"""Comparison tolerances, named per dtype, each with its reason. The only place they live.

A value passes when |numpy - keras| <= atol + rtol * |keras| and both are finite. A pre-activation
within atol of 0 sits at the ReLU kink, where rounding alone may put the two sides on either side.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Tolerance", "TOLERANCES", "tolerance_for", "within", "KEEP_RATE_DRAWS", "KEEP_RATE_SLACK"]


def within(ours, theirs, rtol: float, atol: float, abs_diff=None) -> np.ndarray:
    """The one rule, elementwise: |ours - theirs| <= atol + rtol * |theirs|. NaN or inf never passes (a comparison
    with NaN is False). `abs_diff`, when the caller has it, stands for |ours - theirs|."""
    with np.errstate(invalid="ignore", over="ignore"):
        if abs_diff is None:
            abs_diff = np.abs(ours - theirs)
        return abs_diff <= atol + rtol * np.abs(theirs)


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float
    reason: str

    def as_dict(self) -> dict:
        return asdict(self)

    def within(self, ours, theirs, abs_diff=None) -> np.ndarray:
        """Elementwise: ours within this tolerance of theirs (the module's `within`)."""
        return within(ours, theirs, self.rtol, self.atol, abs_diff)


TOLERANCES = {
    "float64": Tolerance(
        rtol=1e-12,
        atol=1e-12,
        reason=(
            "Both sides do the same float64 arithmetic and differ only in summation order and fused "
            "operations, a few units in the last place (about 1e-16 relative on O(1) values). 1e-12 "
            "leaves four orders of magnitude for longer sums and stepping drift, while a real bug "
            "(sign, factor, mask, transpose) shows at O(1) relative. Sweep (parity sweep --seeds 0-999 "
            "--scenario seed --dtype float64): no false alarm in 1,000 runs; largest share used over 1,000 "
            "seeds: 0.00145 (probe.dW2, seed 15); per quantity: probe dW1 0.0014, dW2 0.0015, db1 0.0014, "
            "db2 0.00089, dx 0.00093, loss 0.00034, pred 0.00017; batch at most 0.00049 (db1); stepping "
            "agreed exactly (0) on every seed. The deep scenario over 100 seeds (--seeds 0-99 --scenario "
            "deep): no false alarm; largest share 0.0024 (stepping.dW3, seed 45)."
        ),
    ),
    "float32": Tolerance(
        rtol=1e-5,
        atol=1e-5,
        reason=(
            "float32 has eps = 1.2e-7, and its absolute errors come from the magnitudes subtracted, not "
            "from the result: the residual y - t of predictions near -2 carries the ulps of 2 (2.4e-7 "
            "each) into every gradient, and stepping compounds them. Measured worst over the seed, "
            "sigmoid, softmax and deep scenarios at seeds 1-6: 1.04e-6 absolute (deep, stepping dW3). "
            "1e-5 relative and absolute leave about 10x headroom; real bugs (sign, factor, mask, "
            "transpose) show at O(1) relative. Data far larger than O(1) scale these errors up: set "
            "[compare] atol for such data. Sweep (parity sweep --seeds 0-999 --scenario seed --dtype "
            "float32): no false alarm in 1,000 runs; largest share used over 1,000 seeds: 0.0064 "
            "(batch.db2, seed 309); per quantity: batch dW1 0.0027, dW2 0.0047, db1 0.0048, db2 0.0064, "
            "dx 0.0021, loss 0.0027; the probe and stepping phases agreed exactly (0) on every seed. The "
            "deep scenario over 100 seeds (--seeds 0-99 --scenario deep): no false alarm; largest share "
            "0.134 (stepping.dW3, seed 84), then probe.dW3 0.117, probe.db1 0.102."
        ),
    ),
}


def tolerance_for(dtype: str) -> Tolerance:
    return TOLERANCES[dtype]


# A Dropout's keep rate, measured on the class's own draws: the share of KEEP_RATE_DRAWS units it keeps may differ
# from 1 - ratio by KEEP_RATE_SLACK. At ratio 0.3 the share's standard deviation is sqrt(0.7 * 0.3 / 20000) = 0.0032,
# so 0.02 is over 6 of them (a correct class fails it about once in 10^9 draws), while the bugs it is for are far
# outside it: a randn mask keeps 38% instead of 70%, a reversed comparison 30%.
KEEP_RATE_DRAWS = (200, 100)
KEEP_RATE_SLACK = 0.02
