"""The Keras side of the chapter-6 layer probes: keras.layers.Dropout and keras.layers.BatchNormalization in
float64, in training and in test mode, differentiated by TensorFlow autodiff.

Each function takes the probes' Keras side (`layers`, a layer_reference.KerasLayers: Keras itself, kept per
exact input, or a recording's answers) and asks it through `layers.results`, so a recording holds these values
as it holds the other probes'.

- Dropout draws its mask in that very forward pass (a seeded layer: the same mask for the same inputs). The mask
  is recovered exactly from Keras: the gradient of sum(output) w.r.t. the input is mask / (1 - rate), 0 where a
  unit was dropped; its nonzero value is Keras's own train-time factor.
- BatchNormalization is built with the class's momentum and epsilon, its moving statistics set to the class's
  start (the initializer named after it: zeros, as the book starts). The book normalizes a 4-D input (N, C, H, W)
  per activation: that is Keras's BatchNormalization on the input reshaped to (N, C*H*W), done here by Keras on
  the reshaped input, and its results reshaped back.
"""

from __future__ import annotations

import numpy as np

from parity.keras_side.layer_reference import KerasLayers

__all__ = ["dropout", "batch_norm"]


def _backend():
    from parity.keras_side.reference import keras_backend

    backend = keras_backend()
    return backend.keras, backend.tf


def dropout(layers: KerasLayers, x: np.ndarray, dout: np.ndarray, rate: float, seed: int, training: bool) \
        -> dict[str, np.ndarray]:
    """Keras's Dropout(rate, seed) at x: its output, d(sum(out * dout))/dx, the units it kept (bool, x's shape) and
    its train-time factor on a kept unit (1 in test mode, where it is the identity)."""

    def compute():
        keras, tf = _backend()
        layer = keras.layers.Dropout(rate, seed=seed, dtype="float64")
        tx = tf.constant(x)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(tx)
            out = layer(tx, training=training)
            total, weighted = tf.reduce_sum(out), tf.reduce_sum(out * dout)
        factor = tape.gradient(total, tx).numpy()  # mask / (1 - rate): 0 exactly where dropped
        dx = tape.gradient(weighted, tx).numpy()
        del tape
        keep = factor != 0
        return out.numpy(), dx, keep.astype(np.float64), np.array(factor[keep].max() if keep.any() else 1.0)

    out, dx, keep, factor = layers.results(("dropout", float(rate), int(seed), bool(training)), (x, dout), compute)
    return {"forward": out, "dx": dx, "keep": keep != 0, "factor": float(factor)}  # kept 0/1: a recording holds numbers


def batch_norm(layers: KerasLayers, x: np.ndarray, dout: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
               running_mean: np.ndarray, running_var: np.ndarray, momentum: float, epsilon: float,
               training: bool) -> dict[str, np.ndarray]:
    """Keras's BatchNormalization(momentum, epsilon) with the given gamma, beta and moving statistics, at x (2-D,
    or 4-D normalized per activation): output, dx, dgamma, dbeta of sum(out * dout), and the moving statistics
    after the call (updated in training mode, unchanged in test mode)."""

    def compute():
        keras, tf = _backend()
        flat, dflat = x.reshape(x.shape[0], -1), dout.reshape(dout.shape[0], -1)  # per activation: (N, C*H*W)
        start = "zeros" if not np.any(running_var) else "ones"  # the class's start; set_weights gives its values
        layer = keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, moving_variance_initializer=start,
                                                dtype="float64")
        layer.build((None, flat.shape[1]))
        layer.set_weights([gamma, beta, running_mean, running_var])
        tx = tf.constant(flat)
        with tf.GradientTape() as tape:
            tape.watch(tx)
            out = layer(tx, training=training)
            weighted = tf.reduce_sum(out * dflat)
        dx, dgamma, dbeta = tape.gradient(weighted, [tx, layer.gamma, layer.beta])
        return (out.numpy().reshape(x.shape), dx.numpy().reshape(x.shape), dgamma.numpy(), dbeta.numpy(),
                layer.moving_mean.numpy(), layer.moving_variance.numpy())

    what = ("batch_norm", float(momentum), float(epsilon), bool(training))
    values = layers.results(what, (x, dout, gamma, beta, running_mean, running_var), compute)
    return dict(zip(("forward", "dx", "dgamma", "dbeta", "running_mean", "running_var"), values))
