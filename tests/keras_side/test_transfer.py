"""Weight copy: asserted count and shapes, no transpose, copies not views."""

import numpy as np
import pytest

from parity.settings.spec import DenseSpec, ModelSpec
from parity.keras_side.transfer import TransferError, keras_to_numpy

SPEC = ModelSpec(input_dim=1, layers=(DenseSpec(2, "relu"), DenseSpec(1)))


def variables():
    return [("dense_1/kernel", np.array([[1.0, 2.0]])), ("dense_1/bias", np.array([0.1, 0.2])),
            ("dense_2/kernel", np.array([[3.0], [4.0]])), ("dense_2/bias", np.array([0.3]))]


def test_weights_map_by_name_without_transpose_and_as_copies():
    source = variables()
    weights = keras_to_numpy(SPEC, source, "float64")
    assert list(weights) == ["W1", "b1", "W2", "b2"]
    np.testing.assert_array_equal(weights["W1"], [[1.0, 2.0]])
    np.testing.assert_array_equal(weights["W2"], [[3.0], [4.0]])
    weights["W1"][0, 0] = 99
    assert source[0][1][0, 0] == 1.0


def test_dtype_is_the_runs():
    assert keras_to_numpy(SPEC, variables(), "float32")["W2"].dtype == np.float32


def test_wrong_variable_count_is_reported():
    with pytest.raises(TransferError, match="has 3 trainable variables, the NumPy stack expects 4"):
        keras_to_numpy(SPEC, variables()[:3], "float64")


def test_transposed_kernel_is_reported_not_broadcast():
    bad = variables()
    bad[2] = ("dense_2/kernel", np.array([[3.0, 4.0]]))
    with pytest.raises(TransferError, match=r"dense_2/kernel has shape \(1, 2\), W2 expects \(2, 1\)"):
        keras_to_numpy(SPEC, bad, "float64")
