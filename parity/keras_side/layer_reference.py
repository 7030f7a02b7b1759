"""The Keras side of the layer probes: Keras layers, activations and losses, differentiated by TensorFlow
autodiff in float64, each computed once per exact input in this process (TensorFlow loads on the first).

The probes' inputs are seeded and the same for every submission, so a worker that checks many
submissions pays Keras for them once. A result is keyed by what determines it (what is computed, the
input arrays' dtype, shape and bytes, and Keras's floatx and dtype policy), stored read-only and handed
out as a copy: nothing a caller or a user's class does to its arrays can reach what the next probe gets.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

__all__ = ["KerasLayers", "LIVE", "activation", "dense", "loss", "softmax", "conv2d", "max_pool", "flatten_dense",
           "clear_cache", "KEPT"]

KEPT = 256  # results kept per process: about 15 per configuration; only code that fails partway asks for others

_CACHE: OrderedDict = OrderedDict()


def _backend():
    """keras and tf, imported on the first computation (a recorded check never gets here)."""
    from parity.keras_side.reference import keras_backend

    backend = keras_backend()
    return backend.keras, backend.tf


def clear_cache() -> None:
    """Forget every cached result (the next probe asks Keras again)."""
    _CACHE.clear()


def _cached(what: tuple, inputs: tuple[np.ndarray, ...], compute: Callable[[], tuple]) -> tuple[np.ndarray, ...]:
    """compute()'s arrays for these exact inputs: from Keras the first time, then copies of the kept ones."""
    keras = sys.modules["keras"] if sys.modules.get("keras") else _backend()[0]  # its settings are part of the key

    key = (what, keras.config.floatx(), keras.config.dtype_policy().name,
           *((a.dtype.str, a.shape, a.tobytes()) for a in map(np.ascontiguousarray, inputs)))
    if key in _CACHE:
        _CACHE.move_to_end(key)
    else:
        kept = tuple(np.array(value) for value in compute())
        for array in kept:
            array.flags.writeable = False
        _CACHE[key] = kept
        while len(_CACHE) > KEPT:
            _CACHE.popitem(last=False)
    return tuple(array.copy() for array in _CACHE[key])


def _autodiff(fn, *arrays) -> tuple[np.ndarray, list]:
    """fn's value and its gradients w.r.t. each array, by TensorFlow autodiff (float64)."""
    _, tf = _backend()
    tensors = [tf.constant(a, dtype=tf.float64) for a in arrays]
    with tf.GradientTape() as tape:
        for t in tensors:
            tape.watch(t)
        out = fn(*tensors)
    return out.numpy(), [None if g is None else g.numpy() for g in tape.gradient(out, tensors)]


ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid"}  # book class -> keras.activations name


def _loss_object(name: str, form: str | None):
    """The Keras loss a book loss layer stands for; a softmax's cross-entropy is of its logits, as in fit."""
    keras, _ = _backend()
    if name == "MeanSquaredError":
        return keras.losses.MeanSquaredError(dtype="float64")
    if form == "one-hot":
        return keras.losses.CategoricalCrossentropy(from_logits=True, dtype="float64")
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")


def _nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def _nchw(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 3, 1, 2))


def _padded(h, pad: int):
    return _backend()[0].layers.ZeroPadding2D(pad, dtype="float64")(h) if pad else h


class KerasLayers:
    """The layer probes' Keras side: each method names what it computes and its exact inputs, and `results`
    answers. Here Keras computes (kept per exact input); a recording answers from its file instead
    (keras_side.recording.RecordedLayers), with the same arrays."""

    ACTIVATIONS = ACTIVATIONS

    def results(self, what: tuple, inputs: tuple[np.ndarray, ...], compute: Callable[[], tuple]) -> tuple:
        return _cached(what, inputs, compute)

    def activation(self, name: str, x: np.ndarray, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keras's activation of the book class `name` at x, and d(sum(out * dout))/dx."""
        def compute():
            keras, tf = _backend()
            fn = getattr(keras.activations, ACTIVATIONS[name])
            out = fn(tf.constant(x)).numpy()
            _, (dx,) = _autodiff(lambda t: tf.reduce_sum(fn(t) * dout), x)
            return out, dx
        return self.results(("activation", name), (x, dout), compute)

    def dense(self, W: np.ndarray, b: np.ndarray, x: np.ndarray, dout: np.ndarray) -> tuple[np.ndarray, dict]:
        """A Keras Dense with kernel W (in, out) and bias b: its output at x, and the gradients of
        sum(out * dout) w.r.t. input, kernel and bias."""
        def compute():
            keras, tf = _backend()
            layer = keras.layers.Dense(W.shape[1], dtype="float64")
            layer.build((None, W.shape[0]))
            layer.set_weights([W, b])  # the book's np.dot(x, W) orientation: no transpose
            tx = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(tx)
                out = layer(tx)
                weighted = tf.reduce_sum(out * dout)
            dx, dW, db = tape.gradient(weighted, [tx, layer.kernel, layer.bias])
            return out.numpy(), dx.numpy(), dW.numpy(), db.numpy()
        out, dx, dW, db = self.results(("dense",), (W, b, x, dout), compute)
        return out, {"dx": dx, "dW": dW, "db": db}

    def loss(self, name: str, form: str | None, y: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keras's loss for the book class `name` (t in `form`: "labels" or "one-hot") at scores y, and dL/dy."""
        def compute():
            keras_loss = _loss_object(name, form)
            value, (dy, _) = _autodiff(lambda a, b: keras_loss(b, a), y, t)
            return value, dy
        return self.results(("loss", name, form), (y, t), compute)

    def softmax(self, y: np.ndarray) -> np.ndarray:
        """TensorFlow's softmax of y along its last axis."""
        def compute():
            _, tf = _backend()
            return (tf.nn.softmax(tf.constant(y)).numpy(),)
        (probs,) = self.results(("softmax",), (y,), compute)
        return probs

    def conv2d(self, W: np.ndarray, b: np.ndarray, x: np.ndarray, dout: np.ndarray, stride: int, pad: int) \
            -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """A Keras Conv2D (channels_last) after ZeroPadding2D(pad), kernel W.transpose(2, 3, 1, 0) of the book's W
        (FN, C, FH, FW): its output at the NCHW batch x, and the gradients of sum(out * dout) w.r.t. input, W and b,
        all in the book's layouts (parity.keras_side.transfer writes the orientation down)."""

        def compute():
            keras, tf = _backend()
            layer = keras.layers.Conv2D(W.shape[0], W.shape[2:], strides=stride, padding="valid", dtype="float64")
            layer.build((None, x.shape[2] + 2 * pad, x.shape[3] + 2 * pad, x.shape[1]))
            layer.set_weights([W.transpose(2, 3, 1, 0), b])
            tx = tf.constant(_nhwc(x))
            with tf.GradientTape() as tape:
                tape.watch(tx)
                out = layer(_padded(tx, pad))
                weighted = tf.reduce_sum(out * _nhwc(dout))
            dx, dk, db = tape.gradient(weighted, [tx, layer.kernel, layer.bias])
            return _nchw(out.numpy()), _nchw(dx.numpy()), dk.numpy().transpose(3, 2, 0, 1), db.numpy()
        out, dx, dW, db = self.results(("conv2d", stride, pad), (W, b, x, dout), compute)
        return out, {"dx": dx, "dW": dW, "db": db}

    def max_pool(self, x: np.ndarray, dout: np.ndarray, pool: tuple[int, int] | None, stride: int | None,
                 pad: int) -> tuple[np.ndarray, np.ndarray]:
        """Keras's MaxPooling2D(pool, strides=stride) after ZeroPadding2D(pad) on the NCHW batch x: its output and
        the gradient of sum(out * dout) w.r.t. x. `stride` None: Keras's own default (strides = pool_size)."""

        def compute():
            keras, tf = _backend()
            layer = keras.layers.MaxPooling2D(pool, strides=stride, padding="valid", dtype="float64")
            tx = tf.constant(_nhwc(x))
            with tf.GradientTape() as tape:
                tape.watch(tx)
                out = layer(_padded(tx, pad))
                weighted = tf.reduce_sum(out * _nhwc(dout)) if dout is not None else tf.reduce_sum(out)
            return _nchw(out.numpy()), _nchw(tape.gradient(weighted, tx).numpy())
        return self.results(("max_pool", pool, stride, pad), (x,) if dout is None else (x, dout), compute)

    def flatten_dense(self, W: np.ndarray, b: np.ndarray, x: np.ndarray, dout: np.ndarray) \
            -> tuple[np.ndarray, dict]:
        """Keras's Flatten then Dense on a 4-axis batch x (flattened row-major: channel-major for NCHW, the book's
        order): the output, and the gradients of sum(out * dout) w.r.t. the 4-axis input, the kernel and the bias."""

        def compute():
            keras, tf = _backend()
            flatten, layer = keras.layers.Flatten(dtype="float64"), keras.layers.Dense(W.shape[1], dtype="float64")
            layer.build((None, W.shape[0]))
            layer.set_weights([W, b])
            tx = tf.constant(x)
            with tf.GradientTape() as tape:
                tape.watch(tx)
                out = layer(flatten(tx))
                weighted = tf.reduce_sum(out * dout)
            dx, dW, db = tape.gradient(weighted, [tx, layer.kernel, layer.bias])
            return out.numpy(), dx.numpy(), dW.numpy(), db.numpy()
        out, dx, dW, db = self.results(("flatten_dense",), (W, b, x, dout), compute)
        return out, {"dx": dx, "dW": dW, "db": db}


LIVE = KerasLayers()  # what the probes ask when no recording answers
activation, dense, loss, softmax = LIVE.activation, LIVE.dense, LIVE.loss, LIVE.softmax
conv2d, max_pool, flatten_dense = LIVE.conv2d, LIVE.max_pool, LIVE.flatten_dense
