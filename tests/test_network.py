"""The layer stack: per-sample records, stepping, and the spec's bookkeeping."""

import numpy as np

from parity.network import DenseSpec, ModelSpec, build_network

SPEC = ModelSpec(input_dim=1, layers=(DenseSpec(2, "relu"), DenseSpec(1)))
WEIGHTS = {"W1": np.array([[1.0, -1.0]]), "b1": np.array([0.0, 0.5]),
           "W2": np.array([[2.0], [3.0]]), "b2": np.array([0.25])}


def test_per_sample_gradients_by_hand():
    net = build_network(SPEC, {k: v.copy() for k, v in WEIGHTS.items()})
    x, t = np.array([[1.0], [-1.0]]), np.array([[0.0], [0.0]])
    trace = net.per_sample(x, t, [1])
    # sample 0: z = [1, -0.5] -> h = [1, 0], y = 2.25, dL/dy = 4.5; unit 1 dead
    # sample 1: z = [-1, 1.5] -> h = [0, 1.5], y = 4.75, dL/dy = 9.5; unit 0 dead
    np.testing.assert_array_equal(trace.pred, [[2.25], [4.75]])
    np.testing.assert_array_equal(trace.loss, [2.25 ** 2, 4.75 ** 2])
    np.testing.assert_array_equal(trace.z[1], [[1.0, -0.5], [-1.0, 1.5]])
    np.testing.assert_array_equal(trace.grads["W2"], [[[4.5], [0.0]], [[0.0], [9.5 * 1.5]]])
    np.testing.assert_array_equal(trace.grads["W1"], [[[9.0, 0.0]], [[0.0, -1.0 * 9.5 * 3.0]]])
    np.testing.assert_array_equal(trace.grads["b1"], [[9.0, 0.0], [0.0, 28.5]])
    np.testing.assert_array_equal(trace.dx, [[9.0], [-28.5]])


def test_stepping_updates_with_plain_sgd_and_a_dead_unit_keeps_its_weights():
    net = build_network(SPEC, {k: v.copy() for k, v in WEIGHTS.items()})
    trace = net.step_through(np.array([[1.0]]), np.array([[0.0]]), 0.1, [1])
    np.testing.assert_allclose(trace.params_after["W1"][0], [[1.0 - 0.9, -1.0]], rtol=0, atol=1e-15)
    np.testing.assert_array_equal(trace.params_after["b1"][0], [0.0 - 0.9, 0.5])  # unit 1 dead: unchanged
    np.testing.assert_array_equal(trace.params_after["W2"][0], [[2.0 - 0.45], [3.0]])


def test_spec_shapes_follow_keras_kernel_orientation():
    spec = ModelSpec(input_dim=3, layers=(DenseSpec(4, "relu"), DenseSpec(2, "sigmoid"), DenseSpec(1)))
    assert spec.shapes() == {"W1": (3, 4), "b1": (4,), "W2": (4, 2), "b2": (2,), "W3": (2, 1), "b3": (1,)}
    assert [i for i, _ in spec.hidden()] == [1, 2]
