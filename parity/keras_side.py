"""The Keras side: build and fit the model, and let Keras compute every number we compare against.

Gradients come from TensorFlow autodiff on the Keras model's own call, updates from a Keras
optimizer. Nothing here re-derives a Keras number with our own formula.
"""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

from parity.network import ModelSpec, Trace


@contextlib.contextmanager
def _native_stderr_quiet():
    """Silence C++ start-up chatter (oneDNN, CUDA probing) that bypasses TF_CPP_MIN_LOG_LEVEL.

    PARITY_TF_LOGS=1 keeps it. Python exceptions still surface: they print after fd 2 is restored.
    """
    if os.environ.get("PARITY_TF_LOGS") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# Before TensorFlow loads; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

with _native_stderr_quiet():
    import keras
    import tensorflow as tf

# Loss objects (not the bare functions, which return one value per sample): the reduction to
# one scalar per batch is Keras's own, as in `fit`.
_LOSSES = {
    "mean_squared_error": keras.losses.MeanSquaredError,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
}

__all__ = ["configure", "build_model", "fit", "dense_layers", "weights_of", "per_sample", "step_through"]


def configure(dtype: str, seed: int) -> None:
    """The one place that seeds and pins the run: floatx, every RNG, deterministic TF ops."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"keras-parity needs the TensorFlow backend (KERAS_BACKEND={keras.backend.backend()})")
    with _native_stderr_quiet():
        tf.config.list_logical_devices()  # device start-up, and its chatter, happen here
    keras.config.set_floatx(dtype)
    # The global dtype policy is cached at first use and does not follow set_floatx: without this,
    # a float32 run after a float64 run in the same process builds float64 variables.
    keras.config.set_dtype_policy(dtype)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_model(spec: ModelSpec) -> keras.Model:
    inputs = keras.Input(shape=(spec.input_dim,))
    h = inputs
    for i, layer in enumerate(spec.layers, start=1):
        h = keras.layers.Dense(layer.units, activation=layer.activation, name=f"dense_{i}")(h)
    model = keras.Model(inputs, h)
    wrong = [(v.path, v.dtype) for v in model.variables if v.dtype != keras.config.floatx()]
    if wrong:
        raise RuntimeError(f"Keras built variables of the wrong dtype for a {keras.config.floatx()} run: {wrong}")
    return model


def fit(model: keras.Model, spec: ModelSpec, x: np.ndarray, y: np.ndarray,
        epochs: int, batch_size: int, lr: float) -> None:
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=lr), loss=_LOSSES[spec.loss]())
    if epochs > 0:
        model.fit(_tensor(x), _tensor(y), batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0)


def dense_layers(model: keras.Model) -> list:
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]


def weights_of(model: keras.Model) -> list[tuple[str, np.ndarray]]:
    """(variable path, value) of each trainable variable, in the model's order."""
    return [(v.path, np.array(v.numpy(), copy=True)) for v in model.trainable_variables]


@contextlib.contextmanager
def _linear(layer):
    """Run a Dense layer's own call without its activation, to read its pre-activation."""
    activation = layer.activation
    layer.activation = None
    try:
        yield
    finally:
        layer.activation = activation


class _Sample:
    """Compiled per-sample computations for one model: gradients by autodiff, steps by the optimizer."""

    def __init__(self, model: keras.Model, spec: ModelSpec, lr: float | None = None):
        self.model = model
        self.loss_fn = _LOSSES[spec.loss]()
        self.hidden = {i for i, _ in spec.hidden()}
        self.optimizer = None
        if lr is not None:
            self.optimizer = keras.optimizers.SGD(learning_rate=lr)
            self.optimizer.build(model.trainable_variables)
        width = (None, spec.input_dim), (None, spec.target_dim)
        signature = [tf.TensorSpec(width[0], keras.config.floatx()), tf.TensorSpec(width[1], keras.config.floatx())]
        self.probe = tf.function(self._probe, input_signature=signature)
        self.step = tf.function(self._step, input_signature=signature)

    def _pre_activations(self, x):
        z, h = [], x
        for i, layer in enumerate(dense_layers(self.model), start=1):
            if i in self.hidden:
                with _linear(layer):
                    z.append(layer(h))
            h = layer(h)
        return z

    def _probe(self, x, t):
        with tf.GradientTape() as tape:
            tape.watch(x)
            pred = self.model(x, training=False)
            loss = self.loss_fn(t, pred)
        *grads, dx = tape.gradient(loss, [*self.model.trainable_variables, x])
        return pred, loss, grads, dx, self._pre_activations(x)

    def _step(self, x, t):
        pred, loss, grads, dx, z = self._probe(x, t)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return pred, loss, grads, dx, z, [v.value for v in self.model.trainable_variables]


def per_sample(model: keras.Model, spec: ModelSpec, x: np.ndarray, t: np.ndarray, batch: int = 1) -> Trace:
    """Keras's prediction, loss, gradients, dL/dx and pre-activations for each sample alone, or for
    consecutive batches of `batch` samples (remainder dropped, no pre-activations)."""
    sample = _Sample(model, spec)
    records = [sample.probe(_tensor(x[i:i + batch]), _tensor(t[i:i + batch]))
               for i in range(0, len(x) - batch + 1, batch)]
    return _trace(records, spec, with_z=batch == 1)


def step_through(model: keras.Model, spec: ModelSpec, x: np.ndarray, t: np.ndarray, lr: float) -> Trace:
    """One Keras SGD step per sample, in order; gradients before and parameters after each step."""
    sample = _Sample(model, spec, lr=lr)
    records = [sample.step(_tensor(x[i:i + 1]), _tensor(t[i:i + 1])) for i in range(len(x))]
    trace = _trace([r[:5] for r in records], spec)
    names = list(spec.shapes())
    trace.params_after = {name: np.stack([r[5][k].numpy() for r in records]) for k, name in enumerate(names)}
    return trace


def _trace(records: list, spec: ModelSpec, with_z: bool = True) -> Trace:
    names = list(spec.shapes())
    hidden = [i for i, _ in spec.hidden()] if with_z else []
    return Trace(
        pred=np.stack([r[0].numpy().reshape(-1) for r in records]),
        loss=np.asarray([r[1].numpy() for r in records]),
        grads={name: np.stack([r[2][k].numpy() for r in records]) for k, name in enumerate(names)},
        dx=np.stack([r[3].numpy().reshape(-1) for r in records]),
        z={layer: np.stack([r[4][n].numpy().reshape(-1) for r in records]) for n, layer in enumerate(hidden)},
    )


def _tensor(a: np.ndarray):
    return tf.constant(a, dtype=keras.config.floatx())


def environment() -> dict:
    """Everything on this side that could change the numbers."""
    import platform

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "floatx": keras.config.floatx(),
        "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (TensorFlow's default: on for x86 CPUs)"),
        # configure() is the only entry point that runs TensorFlow, and it always enables this.
        "op_determinism": "tf.config.experimental.enable_op_determinism()",
        "seeded_with": "keras.utils.set_random_seed (Python, NumPy and TensorFlow RNGs)",
        "device": [d.name for d in tf.config.list_logical_devices()],
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "platform": platform.platform(),
        "machine": platform.machine(),
    }
