"""Every Keras value the layer probes can ask for, with their seeded inputs: what a recording of the Keras side must
hold (`parity record`), and what a recorded check reads back (parity.prepare)."""

from __future__ import annotations

from parity.compare.probe_inputs import (FORM_TRIAL, FORMS, LOSS_BATCHES, activation_inputs, activation_map_inputs,
                                         affine_inputs, conv_inputs, loss_cases, pool_inputs, rng, tensor_affine_inputs)
from parity.compare.regularization_inputs import BN_EPSILONS, BN_MOMENTUM, DROPOUT_RATE, batch_norm_cases, dropout_cases
from parity.diagnosis.conv_traps import channels_last_rows, other_kernels

__all__ = ["every_keras_value"]


def every_keras_value(keras, images: bool = False) -> None:
    """Ask `keras` (a keras_side.layer_reference.KerasLayers) for every value the probes can ask it for; `images`:
    the chapter-7 probes' too (a model with convolutions)."""
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
    if images:
        for case, x, W, b, dout in conv_inputs():
            for kernel in (W, *(k for _, k in other_kernels(W))):  # other kernels: parity.diagnosis.conv_traps
                keras.conv2d(kernel, b, x, dout, case.stride, case.pad)
        runs, (tied_x, tied_dout) = pool_inputs()
        for case, x, dout in runs:
            keras.max_pool(x, dout, case.window, case.stride, case.pad)
        keras.max_pool(tied_x, tied_dout, (2, 2), 2, 0)
        x, W, b, dout = tensor_affine_inputs()
        for kernel in (W, channels_last_rows(W, x.shape)):
            keras.flatten_dense(kernel, b, x, dout)
        for name in keras.ACTIVATIONS:
            keras.activation(name, *activation_map_inputs(name))
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
