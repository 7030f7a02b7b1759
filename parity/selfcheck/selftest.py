"""`parity selftest`: plant known bugs in the reference layers and optimizers, and show each is caught with
the right code, blamed on the class that has it.

The Keras side is computed once per optimizer (seed scenario, float64) and once for the chapter-7 bugs (cnn scenario,
float64); each planted bug is a layer kit or an optimizer class compared against it, exactly as `parity check`
compares a user's module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.book import layers as ref
from parity.book import optimizers as book_optimizers
from parity.selfcheck.planted import CORRECT_PLANTED_OPTIMIZERS, PLANTED_OPTIMIZERS, PlantedOptimizer
from parity.selfcheck.planted_conv import PLANTED_CONV, ReluWritesIntoInput
from parity.selfcheck.planted_regularization import IMAGE_CODES, PLANTED_REGULARIZATION

__all__ = ["PLANTED", "PLANTED_OPTIMIZERS", "Planted", "run_selftest"]


class SignFlipLoss(ref.MeanSquaredError):
    def backward(self, dout=1):
        return -super().backward(dout)  # dy = t - y


class ReluWithoutMask(ref.Relu):
    def backward(self, dout):
        return np.array(dout, copy=True)


class ReluInvertedMask(ref.Relu):
    def backward(self, dout):
        return np.where(self.mask, dout, 0)


class AffineTransposedDW(ref.Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.dW = np.dot(dout.T, self.x)  # (out, in)
        return dx


class AffineBatchMeanDb(ref.Affine):
    def backward(self, dout):
        dx = super().backward(dout)
        self.db = np.mean(dout, axis=0)
        return dx


class AffineDroppedBias(ref.Affine):
    def forward(self, x):
        out = super().forward(x)
        return out - self.b


class HalfSumOfSquares(ref.MeanSquaredError):
    def forward(self, y, t):
        self.y, self.t = y, t
        self.loss = 0.5 * np.sum((y - t) ** 2)
        return self.loss

    def backward(self, dout=1):
        return dout * (self.y - self.t)


class ReluNaN(ref.Relu):
    def backward(self, dout):
        return super().backward(dout) * np.nan


class ReluRaises(ref.Relu):
    def backward(self, dout):
        return dout[self.mask.nonzero()[0] + 10]  # an index past the end


class SigmoidWithoutOneMinus(ref.Sigmoid):
    def backward(self, dout):
        return dout * self.out


class SoftmaxSummedOverBatch(ref.SoftmaxWithLoss):
    def backward(self, dout=1):
        return super().backward(dout) * self.y.shape[0]


class BookRelu:
    """The book's Relu, verbatim: correct, but its backward writes into dout."""

    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dout[self.mask] = 0
        return dout


class ReluForgetsReturn(ref.Relu):
    def backward(self, dout):
        dx = super().backward(dout)  # noqa: F841  (computed, never returned)


class ReluConstructorRaises(ref.Relu):
    def __init__(self):
        super().__init__()
        self.scale = 1.0 / self.leak  # an attribute never set


class AffinePrivateParams:
    """Correct, with its parameters under other names: SGD steps must still reach them."""

    def __init__(self, W, b):
        self._W, self._b = W, b
        self.dW = self.db = None

    def forward(self, x):
        self._x = x
        return x @ self._W + self._b

    def backward(self, dout):
        self.dW, self.db = self._x.T @ dout, dout.sum(axis=0)
        return dout @ self._W.T


@dataclass(frozen=True)
class Planted:
    name: str
    kit: dict
    expected: str  # the finding code that must appear; "" for correct layers (verdict must pass)
    description: str


PLANTED = [
    Planted("sign flip", {"MeanSquaredError": SignFlipLoss}, "sign_flip", "loss backward returns t - y"),
    Planted("missing ReLU mask", {"Relu": ReluWithoutMask}, "mask_mismatch", "Relu backward passes every gradient"),
    Planted("inverted ReLU mask", {"Relu": ReluInvertedMask}, "mask_mismatch", "Relu backward blocks live units"),
    Planted("transposed dW", {"Affine": AffineTransposedDW}, "shape_mismatch", "dW = dout.T @ x"),
    Planted("batch mean in db", {"Affine": AffineBatchMeanDb}, "batch_reduction", "db = mean over the batch"),
    Planted("dropped bias", {"Affine": AffineDroppedBias}, "forward_mismatch", "forward omits + b"),
    Planted("half sum of squares", {"MeanSquaredError": HalfSumOfSquares}, "scale_factor",
            "loss 0.5 * sum((y - t)**2), gradient y - t"),
    Planted("NaN", {"Relu": ReluNaN}, "nan", "Relu backward returns NaN"),
    Planted("layer raises", {"Relu": ReluRaises}, "layer_error", "Relu backward indexes past the end"),
    Planted("sigmoid derivative", {"Sigmoid": SigmoidWithoutOneMinus}, "gradient_mismatch",
            "Sigmoid backward drops (1 - out)"),
    Planted("softmax summed", {"SoftmaxWithLoss": SoftmaxSummedOverBatch}, "batch_reduction",
            "SoftmaxWithLoss backward forgets / batch"),
    Planted("returned None", {"Relu": ReluForgetsReturn}, "layer_error", "Relu backward computes dx, returns nothing"),
    Planted("constructor raises", {"Relu": ReluConstructorRaises}, "layer_error", "Relu.__init__ reads an unset attribute"),
    Planted("book's Relu (correct)", {"Relu": BookRelu}, "", "in-place backward: input_mutation warning only"),
    Planted("Relu writes into its input (correct)", {"Relu": ReluWritesIntoInput}, "",
            "x[mask] = 0 on the z it is given: input_mutation warning only"),
    Planted("parameters under other names (correct)", {"Affine": AffinePrivateParams}, "",
            "Affine keeps W and b as _W and _b: steps reach them in place"),
    Planted("reference layers (correct)", {}, "", "no finding of severity error"),
]


# Correct optimizers beside the planted bugs: the book's RMSprop differs from Keras's by a named convention only.
CORRECT_OPTIMIZERS = [
    PlantedOptimizer("book's RMSprop (correct)", "rmsprop", book_optimizers.RMSprop, "",
                     "epsilon outside the root: convention warning only"),
    *CORRECT_PLANTED_OPTIMIZERS,
]


def run_selftest(config_flags: dict | None = None) -> list[dict]:
    """One row per planted case: expected code, codes found, verdict, caught. Each case goes through the
    pipeline as `parity check` would send it; the Keras side is computed once per optimizer and reused."""
    from parity.settings.config import resolve
    from parity.pipeline import check
    from parity.user_code.loader import load

    config = resolve({"dtype": "float64", **(config_flags or {})})
    rows = []
    for case in PLANTED:
        report = check(load(named=case.kit), config)
        rows.append(_row(case.name, case.description, case.expected, report, blamed=None))
    images = resolve({"dtype": "float64", **(config_flags or {}), "scenario": "cnn"})
    for name, kit, expected, description in PLANTED_CONV:
        report = check(load(named=kit), images)
        rows.append(_row(f"chapter 7: {name}", description, expected, report, blamed=next(iter(kit))))
    for name, kit, expected, description in PLANTED_REGULARIZATION:
        report = check(load(named=kit), images if expected in IMAGE_CODES else config)
        rows.append(_row(f"chapter 6: {name}", description, expected, report, blamed=next(iter(kit))))
    for case in [*PLANTED_OPTIMIZERS, *CORRECT_OPTIMIZERS]:
        stepping = resolve({"dtype": "float64", "optimizer": case.settings, **(config_flags or {})})
        book_class = stepping.optimizer.info.book_class  # the class is given under the book's name, as a module would
        user = load(named={book_class: case.cls})
        rows.append(_row(f"optimizer: {case.name}", case.description, case.expected, check(user, stepping),
                         blamed=book_class))
    return rows


def _row(name: str, description: str, expected: str, report, blamed: str | None) -> dict:
    """A selftest row: a planted bug is caught when the verdict fails with its code (on `blamed`, if given)."""
    errors = sorted({f.code for f in report.errors})
    warnings = sorted({f.code for f in report.warnings})
    if expected:
        on_class = [f for f in report.errors if f.code == expected and (blamed is None or f.layer == blamed)]
        caught = report.verdict == "fail" and bool(on_class)
    else:
        caught = report.verdict == "pass"
    return {"case": name, "planted": description, "expected": expected or "pass", "errors": errors,
            "warnings": warnings, "verdict": report.verdict, "caught": caught}
