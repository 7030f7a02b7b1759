"""A convolution's small probe as one compiled loop over its samples, each through the batch-gradient graph.

tf.vectorized_map traces every op of the model's forward and backward pass into its batched form, about 0.6 s of
a cnn run's CPU before its first sample; a tf.while_loop that calls the traced batch-gradient graph (KerasSide._batch,
which the batch probe and the stepping loop call too) on one sample at a time traces almost nothing more and runs
200 samples in 0.03 s. Past LOOP_LIMIT samples the vectorized map is the quicker: the loop runs sample after sample.
Each sample is the model's own call on a batch of one, as the notebook's eager GradientTape computes it."""

from __future__ import annotations

from parity.keras_side.backend import tf

__all__ = ["LOOP_LIMIT", "looped"]

LOOP_LIMIT = 2048  # samples per probe chunk up to which a convolution's probe runs as this loop


def looped(side):
    """A tf.function of (xs, ts) giving (pred, loss, grads, dx, pre-activations) per sample, as KerasSide.per_sample's
    vectorized map does, by a compiled loop over the samples through `side._batch`."""
    variables = side.model.trainable_variables

    def probe(xs, ts):
        n = tf.shape(xs)[0]
        arrays = ([tf.TensorArray(xs.dtype, size=n) for _ in range(3)],  # pred, loss, dx
                  [tf.TensorArray(v.dtype, size=n) for v in variables],  # gradients
                  [tf.TensorArray(xs.dtype, size=n) for _ in side.watched])  # pre-activations

        def body(i, arrays):
            (pred, loss, dx), grads, zs = arrays
            p, l_, g, d, z = side._batch(xs[i:i + 1], ts[i:i + 1])  # a batch of one
            return i + 1, ([pred.write(i, p[0]), loss.write(i, l_), dx.write(i, d[0])],
                           [a.write(i, v) for a, v in zip(grads, g)], [a.write(i, v[0]) for a, v in zip(zs, z)])

        _, arrays = tf.while_loop(lambda i, _: i < n, body, (tf.constant(0), arrays))
        (pred, loss, dx), grads, zs = arrays
        return pred.stack(), loss.stack(), [a.stack() for a in grads], dx.stack(), [a.stack() for a in zs]

    return tf.function(probe, input_signature=side._signature, autograph=False)
