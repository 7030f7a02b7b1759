"""A bias that feeds a BatchNormalization in training mode: the batch mean cancels it, so its gradient is 0 in exact
arithmetic and what each side computes for it is rounding. Plain SGD moves it by lr times that rounding (nothing to
see); an optimizer that divides by the gradient's size (Adam, AdaGrad, RMSprop) turns rounding into steps of about
lr, different on each side, and the running mean carries them. Such a mismatch is rounding only when the evidence
says so: the same layers, stepped again with Keras's value of that bias after every step, match Keras on every
step. Then that run is the stepping compared, and a warning names the bias, the pin and the unpinned worst.
"""

from __future__ import annotations

import numpy as np

from parity.compare.diff import WARNING
from parity.compare.findings import Finding
from parity.settings.spec import ModelSpec

__all__ = ["cancelled_biases", "Pinned", "pinned_finding"]


def cancelled_biases(spec: ModelSpec) -> list[str]:
    """The biases whose layer's output goes straight into a BatchNormalization (b1 in MultiLayerNetExtend)."""
    return [f"b{i}" for i, _ in spec.batch_norms()]


class Pinned:
    """An optimizer driver whose update is followed by Keras's value of the pinned parameters after that step."""

    def __init__(self, driver, keras_after: dict[str, np.ndarray], names: list[str]):
        self._driver, self._after, self._names = driver, keras_after, names

    def update(self, grads: dict[str, np.ndarray], step: int) -> bool:
        ok = self._driver.update(grads, step)
        if ok:
            for name in self._names:
                self._driver.params[name][...] = self._after[name][step]
        return ok

    def __getattr__(self, name):
        return getattr(self._driver, name)


def pinned_finding(names: list[str], optimizer: str, unpinned) -> Finding:
    """The warning that says which biases were pinned, why, and how far apart the unpinned run went."""
    worst = {k: float(np.max(d.max_abs, initial=0.0)) for k, d in unpinned.diffs.items()
             if k in names or k.startswith("running_mean")}
    shown = ", ".join(f"{k} {v:.3g}" for k, v in sorted(worst.items(), key=lambda kv: -kv[1]))
    return Finding("cancelled_bias", WARNING, "stepping",
                   f"{', '.join(names)} feed{'s' if len(names) == 1 else ''} a BatchNormalization in training mode: "
                   f"the batch mean cancels {'it' if len(names) == 1 else 'them'}, so the gradient is 0 up to rounding on "
                   f"both sides, and {optimizer}'s step divides that rounding by its own size; stepped again with "
                   f"Keras's {', '.join(names)} after every step, your layers match Keras on every step, so that run is "
                   f"the one compared (unpinned, the largest differences were {shown})",
                   fix="nothing to fix: a bias before a BatchNormalization does nothing in training mode (Keras models "
                       "usually drop it: Dense(use_bias=False))",
                   param=names[0], details={"pinned": names, "unpinned_max_abs_diff": worst})
