"""The layer probes' inputs: seeded per book class, the same for every submission; and every Keras value the
probes can ask for with them, which is what a recording of the Keras side must hold (`parity record`).

Each class draws from its own generator, seeded with SEED and its book name, in a fixed order; a probe that
stops early (the user's class raised) has drawn a prefix of the same inputs, never others.
"""

from __future__ import annotations

import numpy as np

__all__ = ["SEED", "FORMS", "FORM_OF_LOSS", "FORM_TRIAL", "rng", "activation_inputs", "affine_inputs", "loss_cases",
           "every_keras_value"]

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
