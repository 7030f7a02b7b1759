"""Max-pooling ties: a window whose two largest inputs are equal within rounding may send its gradient to either cell.
What that explains (the filter's kernel and bias gradients, dx) is excused as a `tie` row with a warning; anything
else on the row still fails; stepping restarts from Keras's parameters after such a step (NumPy only)."""

import numpy as np

from parity.book import layers as ref
from parity.book.functions import im2col
from parity.compare.diff import compare_traces
from parity.compare.phase_findings import findings_for
from parity.compare.pool_ties import near_ties
from parity.compare import resync as resync_module
from parity.compare.resync import resync
from parity.numpy_side.closed_form import per_sample_closed_form
from parity.numpy_side.network import build_network
from parity.settings.spec import ConvSpec, DenseSpec, ModelSpec, PoolSpec
from parity.settings.tolerances import TOLERANCES
from testkit import REORDERED, assert_close

TOL = TOLERANCES["float64"]
SPEC = ModelSpec(input_dim=36, layers=(DenseSpec(3, "softmax"),), loss="sparse_categorical_crossentropy",
                 input_shape=(1, 6, 6), features=(ConvSpec(2, (3, 3), pad=1), PoolSpec((2, 2), stride=2)))


class LastMaxPooling(ref.Pooling):
    """Correct, with the other tie convention: a tie's gradient goes to the last maximal cell."""

    def forward(self, x):
        out = super().forward(x)
        n = self.pool_h * self.pool_w
        col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad).reshape(-1, n)
        self.arg_max = n - 1 - np.argmax(col[:, ::-1], axis=1)
        return out


def tied_case():
    """Weights whose kernel reads only the centre cell, and an image whose cells (0, 0) and (0, 1) are equal: the
    first window of filter 0 ties exactly, between two cells whose neighbourhoods (so kernel gradients) differ."""
    rng = np.random.default_rng(0)
    weights = {name: rng.normal(scale=0.3, size=shape) for name, shape in SPEC.shapes().items()}
    weights["W1"][0] = 0.0
    weights["W1"][0, 0, 1, 1] = 1.0  # filter 0: out = x at the centre + b
    weights["b1"][0] = 0.0
    x = rng.normal(size=(2, 36))
    x[:, 0] = x[:, 1] = 3.0  # larger than every other cell of the first window
    return weights, x, np.array([0, 2])


def test_near_ties_flags_the_filter_whose_window_ties_and_ignores_dead_windows():
    z = np.zeros((2, 2, 4, 4)) - 1.0  # every cell dead after the ReLU: ties at 0 pass no gradient
    z[0, 1, 0, 0] = z[0, 1, 1, 1] = 2.5  # sample 0, filter 1: a tie in its first window
    z[1, 0, 2, 2], z[1, 0, 3, 3] = 2.5, 2.5 + 1e-9  # sample 1, filter 0: apart by far more than 1e-12
    flags = near_ties(z.reshape(2, -1), (2, 4, 4), (2, 2), 2, 0, "relu", TOL)
    np.testing.assert_array_equal(flags, [[False, True], [False, False]])
    batch = near_ties(z.reshape(1, -1), (2, 4, 4), (2, 2), 2, 0, "relu", TOL)  # both samples in one batch row
    np.testing.assert_array_equal(batch, [[False, True]])


def test_a_tie_routed_to_another_cell_is_a_tie_row_not_a_failure():
    weights, x, t = tied_case()
    ours = per_sample_closed_form(SPEC, weights, x, t)  # np.argmax: the first maximal cell
    theirs = build_network(SPEC, weights, {"Pooling": LastMaxPooling}).per_sample(x, t, [])
    assert np.abs(ours.grads["W1"] - theirs.grads["W1"]).max() > 0.1  # the routing really differs
    assert_close(ours.grads["W2"], theirs.grads["W2"], REORDERED)
    without = compare_traces("probe", np.arange(2), ours, theirs, TOL, [], relu_maps={1: (2, 6, 6)})
    assert without.verdicts.tolist() == ["fail", "fail"]
    judged = compare_traces("probe", np.arange(2), ours, theirs, TOL, [], relu_maps={1: (2, 6, 6)},
                            pools=SPEC.pooled_maps())
    assert judged.verdicts.tolist() == ["tie", "tie"]
    found = findings_for(judged)
    assert [f.code for f in found] == ["pool_tie"] and found[0].severity == "warning"


def test_a_tie_excuses_nothing_after_the_pooling():
    weights, x, t = tied_case()
    ours = per_sample_closed_form(SPEC, weights, x, t)
    theirs = build_network(SPEC, weights, {"Pooling": LastMaxPooling}).per_sample(x, t, [])
    theirs.grads["W2"] = theirs.grads["W2"] * 1.001  # a wrong Affine beside the tie
    judged = compare_traces("probe", np.arange(2), ours, theirs, TOL, [], relu_maps={1: (2, 6, 6)},
                            pools=SPEC.pooled_maps())
    assert judged.verdicts.tolist() == ["fail", "fail"]


def test_stepping_restarts_from_keras_parameters_after_an_excused_step_where_later_steps_fail():
    class Verdicts:
        def __init__(self, verdicts):
            self.verdicts, self.excused, self.kink = np.array(verdicts), {}, np.zeros(len(verdicts), dtype=bool)

    calls = []
    theirs = type("T", (), {"params_after": {"W1": np.arange(6.0)[:, None]}, "state_after": {}})()
    ours = type("O", (), {"grads": {"W1": np.zeros((6, 1))}, "errors": []})()

    def step_from(with_optimizer, weights, start):
        calls.append((weights["W1"].tolist(), start, with_optimizer(None)))
        return "tail"

    def compare(trace):
        return Verdicts(["pass", "tie", "pass", "pass", "pass", "pass"])

    spliced = []
    original, resync_module.splice = resync_module.splice, lambda head, tail, at: spliced.append(at) or ours
    try:
        stepping, at, found = resync(ours, Verdicts(["pass", "tie", "pass", "fail", "fail", "pass"]), lambda p: 0.01,
                                     step_from, compare, theirs, ())
    finally:
        resync_module.splice = original
    assert calls == [([1.0], 2, 0.01)] and spliced == [2] and at == [1]  # plain SGD: the learning rate steps on
    assert stepping.verdicts.tolist() == ["pass", "tie", "pass", "pass", "pass", "pass"]
    assert [(f.code, f.step) for f in found] == [("resync", 1)] and "a max-pooling tie at step 1" in found[0].message
    nothing = resync(ours, Verdicts(["pass", "tie", "pass"]), lambda p: 0.01, step_from, compare, theirs, ())
    assert nothing[1] == [] and len(calls) == 1  # no later failure: nothing restarted
