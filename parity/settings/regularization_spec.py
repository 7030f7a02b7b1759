"""The book's chapter-6 layers in an architecture (plain data, no NumPy): a Dense layer may carry a
BatchNormalization between its pre-activation and its activation, and a Dropout after its activation, the
order of the book's MultiLayerNetExtend: Affine -> BatchNormalization -> Relu -> Dropout.

Names along the chain are the book's: the BatchNormalization of the Dense layer with parameters W1, b1 has
gamma1, beta1 (trainable, after b1 in Keras's variable order) and running_mean1, running_var1 (its running
statistics: state, not trained, compared after every step).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["BatchNormSpec", "BN_EPSILON", "bn_problems", "dropout_problems", "bn_names", "state_names"]

BN_EPSILON = 10e-7  # the book's literal (1e-6): parity.book.regularization.BN_EPSILON


@dataclass(frozen=True)
class BatchNormSpec:
    """A BatchNormalization over the Dense layer's units: the book's defaults (momentum 0.9, epsilon 1e-6,
    gamma 1, beta 0, running statistics starting at 0), or a saved model's values (one per unit)."""

    momentum: float = 0.9
    epsilon: float = BN_EPSILON
    gamma: tuple[float, ...] | None = None  # None: ones
    beta: tuple[float, ...] | None = None  # None: zeros
    moving_mean: tuple[float, ...] | None = None  # None: zeros
    moving_variance: tuple[float, ...] | None = None  # None: zeros, the book's start (Keras's default is ones)

    def initial(self, units: int) -> dict[str, list[float]]:
        """gamma, beta, moving_mean, moving_variance as lists of `units` values (Keras's variable order)."""
        default = {"gamma": 1.0, "beta": 0.0, "moving_mean": 0.0, "moving_variance": 0.0}
        return {k: list(getattr(self, k)) if getattr(self, k) is not None else [v] * units for k, v in default.items()}


def bn_names(number: int) -> tuple[str, str]:
    """The trainable parameters of the BatchNormalization after Dense parameter number `number`."""
    return f"gamma{number}", f"beta{number}"


def state_names(number: int) -> tuple[str, str]:
    """Its running statistics: compared after each step, never trained."""
    return f"running_mean{number}", f"running_var{number}"


def bn_problems(i: int, units: int, bn: BatchNormSpec) -> list[str]:
    """What keeps the NumPy side from mirroring layer i's BatchNormalization; empty when nothing."""
    out = []
    if not 0 <= bn.momentum <= 1 or not bn.epsilon > 0:
        out.append(f"layer {i}'s BatchNormalization needs 0 <= momentum <= 1 and epsilon > 0 (received: momentum "
                   f"{bn.momentum}, epsilon {bn.epsilon})")
    for name, values in bn.initial(units).items():
        if len(values) != units:
            out.append(f"layer {i}'s BatchNormalization {name} has {len(values)} values, one per unit ({units}) expected")
    return out


def dropout_problems(i: int, rate: float | None) -> list[str]:
    if rate is not None and not 0 <= rate < 1:
        return [f"layer {i}'s Dropout rate must be in [0, 1) (received: {rate})"]
    return []
