"""The chapter-6 layer probes' inputs (parity.compare.regularization_probes): seeded like every probe's
(parity.compare.probe_inputs.rng), the same for every submission."""

from __future__ import annotations

import numpy as np

from parity.compare.probe_inputs import rng

__all__ = ["DROPOUT_RATE", "BN_MOMENTUM", "BN_EPSILONS", "dropout_cases", "batch_norm_cases"]

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
