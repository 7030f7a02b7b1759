"""What the tests share besides fixtures: where things are, and the tolerances the tests themselves use.

Test files live in a folder per package (tests/book/, tests/grading/, ...); the data they read stay in
tests/fixtures/, found through FIXTURES whatever folder the test sits in. The tests/ folder is on the import
path (tests/conftest.py sits there, and pytest puts a conftest's folder first), so `from testkit import ...`,
`import_module("fixtures.NAME")` and the other shared modules here import from any folder. The folders hold no
__init__.py, so pytest imports each test file by its base name: a name is used once across all the folders.
Not `helpers`: that is a learner's module name too (tests/grading/test_grade_notebooks.py grades a student's
helpers.py in this process), and the first `helpers` imported would stand in for the other.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from parity.settings.tolerances import TOLERANCES

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent  # the repository: pyproject.toml, parity/, README.md
FIXTURES = TESTS / "fixtures"  # learner-style modules, submissions, notebooks, golden outputs


# -- the tests' own tolerances ---------------------------------------------------------------------------
# The tool's tolerances (Keras against NumPy, per dtype) live in parity/settings/tolerances.py; a test that checks
# a comparison at the tool's own strictness takes them from there. These are the tests' own: each bound a test
# holds two computations to, named by what the two are, with why the difference stays under it (as jax's
# public_test_util keys its tolerances by dtype). All are float64 comparisons unless `dtype` says otherwise. A
# test that needs another bound gets its own name and reason here; none is widened to make a test pass.


@dataclass(frozen=True)
class Tol:
    rtol: float
    atol: float
    reason: str
    dtype: str = "float64"


def assert_close(actual, desired, tol: Tol, err_msg: str = "") -> None:
    """numpy.testing.assert_allclose at a named tolerance: |actual - desired| <= atol + rtol * |desired|."""
    __tracebackhide__ = True  # pytest shows the test's line, not this one
    np.testing.assert_allclose(actual, desired, rtol=tol.rtol, atol=tol.atol, err_msg=err_msg)


def close(actual, desired, tol: Tol) -> bool:
    """Whether every element is within `tol` (numpy.allclose), for a test that asserts two runs differ."""
    return bool(np.allclose(actual, desired, rtol=tol.rtol, atol=tol.atol))


# Hand-computed values: the expected number is written out in the test from O(1) inputs.
HAND_COMPUTED = Tol(0, 1e-15, "a value worked out by hand from O(1) numbers: the code's float64 result differs "
                              "by a few roundings (ulp(1) = 2.2e-16); a wrong sign, factor or mask is off by O(0.1)")
HAND_COMPUTED_RELATIVE = Tol(1e-15, 0, "a hand-computed quotient or square root (an optimizer's lr * g / sqrt(h + "
                                       "eps)): a few roundings relative to the value, whatever its size")
HAND_COMPUTED_ADAM = Tol(1e-13, 0, "Adam's bias-corrected step by hand: 1 - beta**t, two square roots and three "
                                   "quotients, each rounding once, some rounding errors scaled by beta2 / (1 - beta2)")
STEPS_BY_HAND = Tol(1e-13, 1e-13, "20 optimizer steps against the same recurrence written out in the test: each "
                                  "step rounds a few times and the velocity carries it on (about 20 x 1e-16 x 20)")

# Central differences (numerical_gradient below, h = 1e-6): truncation error h**2 * f''' / 6 ~ 1e-13, cancellation
# error ~ eps * |f| / h ~ 2e-10 * |f|. A forgotten mask, transpose or factor is O(1) off.
CENTRAL_DIFFERENCE = Tol(1e-7, 1e-8, "a layer's analytic gradient against central differences of sum(out * dout) "
                                     "over a handful of O(1) values: |f| up to ~10 makes the cancellation error "
                                     "~2e-9, under the 1e-8 floor")
CENTRAL_DIFFERENCE_LOSS = Tol(1e-7, 1e-9, "a loss's gradient against central differences of the loss itself, one "
                                          "O(1) scalar: cancellation error ~2e-10 |f|, under 1e-9")
CENTRAL_DIFFERENCE_DRAWN = Tol(1e-6, 1e-8, "as CENTRAL_DIFFERENCE, on shapes and values hypothesis draws (inputs up "
                                           "to 3 or 5, more terms): larger curvature and |f| earn a 10x relative "
                                           "allowance")
CENTRAL_DIFFERENCE_DRAWN_LOSS = Tol(1e-6, 1e-9, "as CENTRAL_DIFFERENCE_LOSS, on shapes and values hypothesis draws")

# NumPy against TensorFlow or Keras, one layer at a time, both in float64.
KERAS_ELEMENTWISE = Tol(1e-13, 1e-16, "an elementwise float64 formula against TensorFlow's (sigmoid's y * (1 - y), "
                                      "mean squared error's 2 (y - t) / n): the same operations, rounded in another "
                                      "order; 1e-16 absolute for values near 0")
KERAS_MATMUL = Tol(1e-13, 1e-15, "float64 products summed by another BLAS in another order (Dense, a model's "
                                 "predict): a few ulps of the O(1) terms summed")
KERAS_SOFTMAX_CROSSENTROPY = Tol(1e-12, 1e-15, "softmax then cross-entropy against TensorFlow's fused form: exp and "
                                               "log rounded differently, ulps amplified by the subtraction of the "
                                               "label's one")
KERAS_AGAINST_BOOK = Tol(TOLERANCES["float64"].rtol, TOLERANCES["float64"].atol,
                         "Keras's per-sample sides against the book's layers: what the tool itself compares, held to "
                         "the tool's own float64 tolerance (parity/settings/tolerances.py)")

# One computation taken two ways in float64: the same numbers, summed or fused in another order.
REORDERED = Tol(1e-12, 1e-12, "one float64 computation two ways (a chunk at once against one sample at a time, a "
                              "learner's state names against the book's): sums in another order over up to a few "
                              "hundred terms and steps, far under 1e-12")
REORDERED_ABSOLUTE = Tol(0, 1e-12, "as REORDERED, held absolutely: the values compared are O(1), so 1e-12 is about "
                                   "4,500 ulps of 1, while a wrong step, mask or chunk boundary is O(0.1)")
SAME_PRODUCT = Tol(0, 1e-15, "Affine on (3, 2, 2) rows against the same rows reshaped to (3, 4) and multiplied "
                             "in the test: the same four products per output, an ulp or two of O(1) sums")
CONV_LOOPS = Tol(1e-13, 1e-13, "im2col's convolution against the definition as loops: the same 12-18 products "
                               "per output, summed in another order")
FLATTENED_AFFINE = Tol(1e-14, 1e-14, "Affine on an (N, C, H, W) tensor against the same rows flattened by hand: "
                                     "the same 12 products per output, summed by another matmul call")
COMPILED_AGAINST_EAGER = Tol(0, 1e-15, "Keras's stepping compiled (tf.function) against eager, a fresh optimizer "
                                       "each: the same operations, fused differently: an ulp or two of O(1) values")
SCALED_COPY = Tol(1e-15, 0, "a layer against another computing the same values with a factor applied and divided "
                           "back out (the book's Dropout seen in Keras's convention), or the identity: one or two "
                           "roundings relative to each value")
SOFTMAX_WRITTEN_OUT = Tol(1e-12, 0, "a network's softmax prediction against the same softmax written out in the test "
                                    "over one matmul: exp, sum and quotient rounded in another order, relative")
MOMENTUM_RULE = Tol(0, 1e-14, "Keras's moving statistic after a step against momentum * before + (1 - momentum) * "
                              "the batch moment its own layer returned: two products and a sum of O(1) values")
MOMENTUM_RULE_FLOAT32 = Tol(0, 1e-5, "as MOMENTUM_RULE, with float32 values: a few float32 ulps of O(1) numbers",
                            dtype="float32")
BATCH_STATISTICS = Tol(0, 1e-12, "the NumPy side's batch mean and variance of the input its class received against "
                                 "the moments Keras's layer computed: the same O(1) sums over a batch of 10 in another "
                                 "order; 1e-12 is the tool's float64 atol")
CSV_ROUND_TRIP = Tol(1e-15, 0, "the same table written as CSV and as Parquet: CSV keeps float64's shortest repr, "
                               "which reads back to the same double; 1e-15 allows the last-digit formatting")

# Across CPUs: TensorFlow's float32 kernels round otherwise on an AMD EPYC than on the Intel CPU the golden copies and
# the bit-for-bit claims were written on.
CPU_FLOAT32_ROUNDING = Tol(0, 1e-6, "Keras's float32 values of the seed run on another CPU: its kernels sum some steps "
                                    "otherwise, 2.4e-7 apart at most on values of O(0.1-1); a wrong value or column is "
                                    "off by 1e-3 or more", dtype="float32")
CPU_TRACED_FLOAT32_ULPS = 4  # a traced graph against eager ops in float32, in ulps of each array's largest value: the
# same bits on an Intel CPU, 1-2 apart on an AMD EPYC, where the graph sums some gradients in other kernels

# Across dtypes.
FIT_FLOAT32_AGAINST_FLOAT64 = Tol(0, 1e-5, "the seed fit's weights after 320 SGD steps in float32 against float64: "
                                           "float32 rounding (eps 1.2e-7) compounded over the steps stays under 1e-5, "
                                           "while another shuffle order moves them by about 1e-2", dtype="float32")
SEEDS_DIFFER = Tol(0, 1e-6, "two fits with different seeds must differ by more than this: the batches' order moves "
                            "the weights by about 1e-2, rounding by under 1e-12")


def numerical_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f() with respect to x, which f reads (float64); x is restored."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + h
        up = f()
        x[idx] = old - h
        down = f()
        x[idx] = old
        grad[idx] = (up - down) / (2 * h)
    return grad
