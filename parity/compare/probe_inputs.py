"""The layer probes' inputs: seeded per book class, the same for every submission; and every Keras value the
probes can ask for with them, which is what a recording of the Keras side must hold (`parity record`).

Each class draws from its own generator, seeded with SEED and its book name, in a fixed order; a probe that
stops early (the user's class raised) has drawn a prefix of the same inputs, never others.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SEED", "FORMS", "FORM_OF_LOSS", "FORM_TRIAL", "rng", "activation_inputs", "affine_inputs", "loss_cases",
           "DROPOUT_RATE", "BN_MOMENTUM", "BN_EPSILONS", "dropout_cases", "batch_norm_cases", "every_keras_value"]

SEED = 20240601  # the probes' inputs: each class's generator is seeded with SEED and its book name
ACTIVATION_X = ((-2.0, -0.5, 0.0, 0.5, 2.0), (1e-3, -1e-3, 3.0, -3.0, 0.0))  # with two exact kinks
AFFINE_BATCHES = (1, 4)  # batch-axis bugs show only at 4
LOSS_BATCHES = (1, 4)
FORM_TRIAL = 7  # a SoftmaxWithLoss is first tried with each label form, at batch 4, on this generator

# Label forms a SoftmaxWithLoss may take: the one each cross-entropy feeds it, and the other.
FORMS = {"labels": "integer labels (n,)", "one-hot": "one-hot labels (n, k)"}
FORM_OF_LOSS = {"sparse_categorical_crossentropy": "labels", "categorical_crossentropy": "one-hot"}


def rng(name: str, *more: int) -> np.random.Generator:
    """The probes' one source of inputs for the book class `name`: the same for every submission."""
    return np.random.default_rng([SEED, *name.encode(), *more])


def activation_inputs(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(x (2, 5), dout) for an activation class."""
    x = np.array(ACTIVATION_X)
    return x, rng(name).normal(size=x.shape)


def affine_inputs() -> tuple[np.ndarray, np.ndarray, list[tuple[int, np.ndarray, np.ndarray]]]:
    """(W (3, 2), b, [(batch, x, dout) per batch size]) for Affine; W is not square: a transposed dW shows as a shape."""
    draw = rng("Affine")
    W, b = draw.normal(size=(3, 2)), draw.normal(size=2)
    return W, b, [(batch, draw.normal(size=(batch, 3)), draw.normal(size=(batch, 2))) for batch in AFFINE_BATCHES]


def loss_cases(name: str, form: str | None, draw: np.random.Generator, batches=LOSS_BATCHES) -> list[tuple]:
    """(batch, scores y, the user's t, Keras's t, labels) for each probe of a loss layer, drawn in order."""
    cases = []
    for batch in batches:
        if name == "MeanSquaredError":
            y, t = draw.normal(size=(batch, 1)), draw.normal(size=(batch, 1))  # one output: a 1/2 shows at batch 1
            cases.append((batch, y, t, t, None))
            continue
        y, labels = draw.normal(scale=2, size=(batch, 3)), draw.integers(0, 3, size=batch)
        if form == "one-hot":
            onehot = np.eye(3)[labels]
            cases.append((batch, y, onehot, onehot, labels))
        else:
            cases.append((batch, y, labels, labels.reshape(-1, 1).astype(np.float64), labels))
    return cases


DROPOUT_RATE = 0.3  # keeps 70%: a mask drawn with randn > 0.3 keeps 38%, visibly not it
# (case, x's shape, Keras's seed): batch 1 and 3, and an (N, C, H, W) map as after a convolution
DROPOUT_SHAPES = (("batch 1", (1, 8), 11), ("batch 3", (3, 6), 12), ("an (N, C, H, W) input, batch 2", (2, 2, 3, 3), 13))
BN_MOMENTUM = 0.9  # the book's default; a class that holds another is probed with its own
BN_EPSILONS = (1e-7, 1e-8, 1e-5, 1e-3)  # epsilons a learner writes instead of the book's 10e-7: the evidence asks Keras
# (case, x's shape, training): train mode needs a batch (one sample normalizes to 0); test mode runs at 1 and 3
BN_SHAPES = (("batch 3", (3, 4), True), ("batch 5", (5, 4), True), ("an (N, C, H, W) input, batch 3", (3, 2, 2, 3), True),
             ("batch 1", (1, 4), False), ("batch 3", (3, 4), False))


def dropout_cases() -> list[tuple[str, np.ndarray, np.ndarray, int]]:
    """(case, x, dout, Keras's seed) for a Dropout; x is nonzero everywhere, so its output shows every unit kept."""
    draw = rng("Dropout")
    return [(name, draw.normal(size=shape), draw.normal(size=shape), seed) for name, shape, seed in DROPOUT_SHAPES]


def batch_norm_cases() -> list[tuple[str, bool, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(case, training, x, dout, gamma, beta, running_mean, running_var) for a BatchNormalization. Train mode starts
    from the book's zero running statistics; test mode is given running statistics away from 0 and 1."""
    draw, cases = rng("BatchNormalization"), []
    for name, shape, training in BN_SHAPES:
        features = int(np.prod(shape[1:]))
        x = draw.normal(loc=1.0, scale=2.0, size=shape)  # away from mean 0 and variance 1: a missed term shows
        dout, gamma, beta = draw.normal(size=shape), draw.normal(loc=1.0, size=features), draw.normal(size=features)
        if training:
            mean, var = np.zeros(features), np.zeros(features)
        else:
            mean, var = draw.normal(size=features), draw.uniform(0.5, 2.0, size=features)
        cases.append((name, training, x, dout, gamma, beta, mean, var))
    return cases


def every_keras_value(keras) -> None:
    """Ask `keras` (a keras_side.layer_reference.KerasLayers) for every value the probes can ask it for."""
    for name in keras.ACTIVATIONS:
        keras.activation(name, *activation_inputs(name))
    W, b, runs = affine_inputs()
    for _, x, dout in runs:
        keras.dense(W, b, x, dout)
    trials = [("MeanSquaredError", None, rng("MeanSquaredError"), LOSS_BATCHES)]
    for form in FORMS:
        trials += [("SoftmaxWithLoss", form, rng("SoftmaxWithLoss", FORM_TRIAL), (4,)),
                   ("SoftmaxWithLoss", form, rng("SoftmaxWithLoss"), LOSS_BATCHES)]
    for name, form, draw, batches in trials:
        for _, y, _, t, _ in loss_cases(name, form, draw, batches):
            keras.loss(name, form, y, t)
            if name == "SoftmaxWithLoss":
                keras.softmax(y)  # asked when the loss differs: is it the book's log(y + 1e-7)?
    _every_regularization_value(keras)


def _every_regularization_value(keras) -> None:
    """The chapter-6 probes' Keras values at the book's momentum, with the alternatives their evidence asks for."""
    from parity.book.regularization import BN_EPSILON
    from parity.keras_side import regularization_reference as reference

    for _, x, dout, seed in dropout_cases():
        for training in (True, False):
            reference.dropout(keras, x, dout, DROPOUT_RATE, seed, training)
    for _, training, *arrays in batch_norm_cases():
        for momentum, epsilon in [(BN_MOMENTUM, e) for e in (BN_EPSILON, *BN_EPSILONS)] + \
                [(1 - BN_MOMENTUM, BN_EPSILON), (1.0, BN_EPSILON)] * training:
            reference.batch_norm(keras, *arrays, momentum, epsilon, training)
