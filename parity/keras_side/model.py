"""The Keras model of an architecture, its initial weights, and Keras's own fit over a seeded tf.data pipeline."""

from __future__ import annotations

import contextlib

import numpy as np

from parity.keras_side.backend import keras, tensor, tf
from parity.settings.spec import ConvSpec, ModelSpec

__all__ = ["LOSSES", "initial_weights", "build_model", "batches", "fit", "run_epochs", "steps_per_epoch", "dense_layers",
           "parametric_layers", "weights_of", "linear", "pre_activations"]

# Loss objects (not the bare functions, which return one value per sample): the reduction to
# one scalar per batch is Keras's own, as in `fit`.
LOSSES = {
    "mean_squared_error": keras.losses.MeanSquaredError,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
}


def initial_weights(spec: ModelSpec, seed: int, dtype: str) -> list[np.ndarray]:
    """Keras's own initializers (the Dense and Conv2D defaults: Glorot uniform kernels, zero biases), drawn in
    float64 from `seed` and cast, in Keras's layout: a float32 and a float64 run of one seed start from the
    same weights."""
    from parity.keras_side.transfer import keras_shape

    weights, shapes = [], spec.shapes()
    for i in range(len(spec.convolutions()) + len(spec.layers)):
        kernel = keras.initializers.GlorotUniform(seed=seed + 7919 * i)(keras_shape(spec, f"W{i + 1}"), dtype="float64")
        weights += [np.asarray(kernel).astype(dtype), np.zeros(shapes[f"b{i + 1}"], dtype=dtype)]
        dense = spec.dense(i + 1)
        if dense is not None and dense.batch_norm is not None:  # the spec's start: the book's, or a saved model's
            weights += [np.asarray(v, dtype=dtype) for v in dense.batch_norm.initial(dense.units).values()]
    return weights


def _features(spec: ModelSpec, h):
    """The image input's Keras layers: the book's NCHW row reshaped and permuted to channels_last (Keras's
    default), then each convolution (symmetric padding as ZeroPadding2D + "valid") and max pooling."""
    h = keras.layers.Reshape(tuple(spec.input_shape), name="nchw")(h)
    h = keras.layers.Permute((2, 3, 1), name="nhwc")(h)  # (H, W, C)
    convs = 0
    for k, f in enumerate(spec.features, start=1):
        if f.pad:
            h = keras.layers.ZeroPadding2D(f.pad, name=f"pad_{k}")(h)
        if isinstance(f, ConvSpec):
            convs += 1
            h = keras.layers.Conv2D(f.filters, f.kernel, strides=f.stride, padding="valid", activation=f.activation,
                                    name=f"conv_{convs}")(h)
        else:
            h = keras.layers.MaxPooling2D(f.pool, strides=f.stride, padding="valid", name=f"pool_{k}")(h)
    return keras.layers.Flatten(name="flatten")(h)  # (H * W * C,): Keras's order; transfer permutes the next kernel


def _regularized(layer, i: int, h):
    """The book's MultiLayerNetExtend order: Dense (linear) -> BatchNormalization -> Activation -> Dropout. The
    BatchNormalization normalizes the last (feature) axis; its weights are set from the spec (initial_weights), so
    its moving variance starts at the book's 0 rather than Keras's default 1."""
    h = keras.layers.Dense(layer.units, activation="linear", name=f"dense_{i}")(h)
    if layer.batch_norm is not None:
        bn = layer.batch_norm
        h = keras.layers.BatchNormalization(momentum=bn.momentum, epsilon=bn.epsilon,
                                            moving_variance_initializer="zeros", name=f"batch_norm_{i}")(h)
    h = keras.layers.Activation(layer.activation, name=f"activation_{i}")(h)
    if layer.dropout is not None:
        # Seeded again from the run's seed before every fit and phase (KerasSide.reseed_dropouts).
        h = keras.layers.Dropout(layer.dropout, seed=i, name=f"dropout_{i}")(h)
    return h


def build_model(spec: ModelSpec) -> keras.Model:
    inputs = keras.Input(shape=(spec.input_dim,))
    h = inputs if not spec.features else _features(spec, inputs)
    for i, layer in enumerate(spec.layers, start=1):
        if layer.batch_norm is None and layer.dropout is None:
            h = keras.layers.Dense(layer.units, activation=layer.activation, name=f"dense_{i}")(h)
        else:
            h = _regularized(layer, i, h)
    model = keras.Model(inputs, h)
    wrong = [(v.path, v.dtype) for v in model.weights if v.dtype != keras.config.floatx()]  # not a Dropout's seed
    if wrong:
        raise RuntimeError(f"Keras built variables of the wrong dtype for a {keras.config.floatx()} run: {wrong}")
    return model


def batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int):
    """The training split as fit reads it: a new shuffle every epoch (seeded: the same order in every
    process and dtype), `batch_size` samples a batch, the last batch of an epoch short when the split
    is not a multiple of it, repeated without end so that one iterator serves every epoch.

    Keras's own array adapter, which `fit(x, y, shuffle=True)` would use, builds two iterators an
    epoch, three quarters of a small fit's time; this is the tf.data pipeline Keras's documentation
    recommends instead. No map function: tracing one cost a tenth of a default run's fit."""
    data = tf.data.Dataset.from_tensor_slices((tensor(x), tensor(y)))
    return data.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size).repeat()


def fit(model: keras.Model, spec: ModelSpec, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int,
        optimizer, seed: int, steps_per_execution: int | None = None) -> None:
    """Keras's own fit with `optimizer` (a Keras optimizer, or a learning rate for plain SGD) over
    `batches`. By default an epoch runs as one compiled call (tf.while_loop over its batches): the same
    updates in the same order, with less Python between them (tested equal to one batch per call).
    `steps_per_execution` must divide the batches per epoch, or Keras would run past an epoch's end."""
    steps = steps_per_epoch(x, batch_size)
    steps_per_execution = steps_per_execution or steps
    if steps % steps_per_execution:
        raise ValueError(f"steps_per_execution={steps_per_execution} does not divide the {steps} batches per epoch")
    if isinstance(optimizer, (int, float)):
        optimizer = keras.optimizers.SGD(learning_rate=optimizer)
    model.compile(optimizer=optimizer, loss=LOSSES[spec.loss](), steps_per_execution=steps_per_execution)
    run_epochs(model, x, y, epochs, batch_size, seed)


def steps_per_epoch(x: np.ndarray, batch_size: int) -> int:
    return -(-len(x) // batch_size)  # the last batch may be short


def run_epochs(model: keras.Model, x: np.ndarray, y: np.ndarray, epochs: int, batch_size: int, seed: int) -> None:
    """A compiled model's fit over `batches`, `epochs` times through the split (none for 0)."""
    if epochs > 0:
        model.fit(batches(x, y, batch_size, seed), epochs=epochs, steps_per_epoch=steps_per_epoch(x, batch_size),
                  shuffle=False, verbose=0)


def dense_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def parametric_layers(model: keras.Model) -> list:
    """Conv2D and Dense layers in call order: their numbers are the parameters' (W1 is the first one's kernel)."""
    return [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))]


def weights_of(model: keras.Model) -> list[tuple[str, np.ndarray]]:
    """(variable path, value) of each weight, in the model's order (get_weights'): the trainable variables and a
    BatchNormalization's moving statistics after its gamma and beta (parity.settings.spec.ModelSpec.variables)."""
    return [(v.path, np.array(v.numpy(), copy=True)) for v in model.weights]


@contextlib.contextmanager
def linear(layer):
    """Run a Dense or Conv2D layer's own call without its activation, to read its pre-activation."""
    activation = layer.activation
    layer.activation = None
    try:
        yield
    finally:
        layer.activation = activation


def pre_activations(model: keras.Model, spec: ModelSpec, watched: list[int], x) -> list:
    """The pre-activations of the `watched` Dense and Conv2D layers (parameter numbers), as the model computes them:
    each such layer's own call without its activation, the next layer's input that activation applied to it, as
    their call does; the layers between them (reshape, padding, pooling, flatten, a BatchNormalization in test
    mode) called as they are. A regularized Dense's pre-activation is the input of its Activation layer (after its
    BatchNormalization). Stops after the last watched layer."""
    z, h, number = [], x, 0
    for layer in model.layers:
        if len(z) == len(watched):
            break
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.layers.Activation):
            z += [h] if number in watched else []
            h = layer(h)
            continue
        if not isinstance(layer, (keras.layers.Dense, keras.layers.Conv2D)):
            h = layer(h, training=False)
            continue
        number += 1
        with linear(layer):
            a = layer(h)
        dense = spec.dense(number)
        if number in watched and (dense is None or (dense.batch_norm is None and dense.dropout is None)):
            z.append(a)
        h = layer.activation(a)
    return z
