"""The layer probes' inputs: seeded per book class, the same for every submission (every Keras value the probes can
ask for with them, what a recording must hold, is parity.compare.keras_values; chapter 6's are regularization_inputs).

Each class draws from its own generator, seeded with SEED and its book name, in a fixed order; a probe that
stops early (the user's class raised) has drawn a prefix of the same inputs, never others.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np


__all__ = ["SEED", "FORMS", "FORM_OF_LOSS", "FORM_TRIAL", "rng", "seeded_numpy", "activation_inputs",
           "activation_map_inputs", "ACTIVATION_MAP", "affine_inputs",
           "loss_cases", "Case", "CONV_CASES", "POOL_CASES", "conv_inputs", "pool_inputs", "tensor_affine_inputs"]

SEED = 20240601  # the probes' inputs: each class's generator is seeded with SEED and its book name
ACTIVATION_X = ((-2.0, -0.5, 0.0, 0.5, 2.0), (1e-3, -1e-3, 3.0, -3.0, 0.0))  # with two exact kinks
# An activation after a convolution meets its (N, C, H, W) map: H != W and C > 1, so a class that flattens, transposes
# or keeps its mask in another layout than its input's disagrees here; a Dense layer's (n, units) never shows it.
ACTIVATION_MAP = (2, 3, 4, 5)
MAP_KINKS = ((0, 1, 2, 3), (1, 2, 0, 4))  # cells set to exactly 0, as ACTIVATION_X holds two
AFFINE_BATCHES = (1, 4)  # batch-axis bugs show only at 4
LOSS_BATCHES = (1, 4)
FORM_TRIAL = 7  # a SoftmaxWithLoss is first tried with each label form, at batch 4, on this generator

# Label forms a SoftmaxWithLoss may take: the one each cross-entropy feeds it, and the other.
FORMS = {"labels": "integer labels (n,)", "one-hot": "one-hot labels (n, k)"}
FORM_OF_LOSS = {"sparse_categorical_crossentropy": "labels", "categorical_crossentropy": "one-hot"}


def rng(name: str, *more: int) -> np.random.Generator:
    """The probes' one source of inputs for the book class `name`: the same for every submission."""
    return np.random.default_rng([SEED, *name.encode(), *more])


@contextlib.contextmanager
def seeded_numpy(seed: int):
    """np.random's global state seeded for a user class's own draws (a Dropout's mask drawn with randn: the same on
    every check), and put back as it was."""
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        yield
    finally:
        np.random.set_state(state)


def activation_inputs(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(x (2, 5), dout) for an activation class."""
    x = np.array(ACTIVATION_X)
    return x, rng(name).normal(size=x.shape)


def activation_map_inputs(name: str) -> tuple[np.ndarray, np.ndarray]:
    """(x ACTIVATION_MAP, dout) for an activation class fed a convolution's output, with exact kinks at MAP_KINKS."""
    draw = rng(name, *ACTIVATION_MAP)
    x = draw.normal(size=ACTIVATION_MAP)
    for cell in MAP_KINKS:
        x[cell] = 0.0
    return x, draw.normal(size=ACTIVATION_MAP)


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


# -- the chapter-7 probes (parity.compare.conv_probes): shapes that expose the chapter's traps --------------

@dataclass(frozen=True)
class Case:
    name: str
    x: tuple[int, int, int, int]  # (N, C, H, W)
    window: tuple[int, ...]  # a kernel W (FN, C, FH, FW), or a pooling window (ph, pw)
    stride: int
    pad: int


CONV_CASES = (
    Case("overlapping windows, H != W, C > 1, batch 3", (3, 2, 7, 5), (4, 2, 3, 2), 1, 0),
    Case("stride 2, pad 1, batch 3", (3, 2, 7, 5), (4, 2, 3, 2), 2, 1),
    Case("stride 2, pad 1, batch 1", (1, 2, 7, 5), (4, 2, 3, 2), 2, 1),
    Case("windows that do not overlap, batch 3", (3, 2, 6, 8), (4, 2, 2, 2), 2, 0),
    Case("a square input, batch 3", (3, 2, 6, 6), (4, 2, 3, 3), 1, 0),
)
POOL_CASES = (
    Case("2x2 windows at stride 2, H != W, C > 1, batch 3", (3, 2, 6, 8), (2, 2), 2, 0),
    Case("3x2 windows at stride 1 (overlapping), batch 3", (3, 2, 7, 5), (3, 2), 1, 0),
    Case("2x2 windows at stride 2, batch 1", (1, 2, 4, 6), (2, 2), 2, 0),
    Case("a square input, batch 3", (3, 2, 6, 6), (2, 2), 2, 0),
)


def _size(n: int, w: int, stride: int, pad: int) -> int:
    return (n + 2 * pad - w) // stride + 1


def conv_inputs() -> list[tuple[Case, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(case, x, W, b, dout) for each of CONV_CASES, in order."""
    draw, out = rng("Convolution"), []
    for case in CONV_CASES:
        (n, _, h, w), (fn, _, fh, fw) = case.x, case.window
        x, W, b = draw.normal(size=case.x), draw.normal(size=case.window), draw.normal(size=fn)
        dout = draw.normal(size=(n, fn, _size(h, fh, case.stride, case.pad), _size(w, fw, case.stride, case.pad)))
        out.append((case, x, W, b, dout))
    return out


def pool_inputs() -> tuple[list[tuple[Case, np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """([(case, x, dout) for each of POOL_CASES], (x, dout) of the ties probe: 2x2 windows at stride 2 on integers
    0..2, so that most windows hold their maximum twice or more)."""
    draw, runs = rng("Pooling"), []
    for case in POOL_CASES:
        (n, c, h, w), (ph, pw) = case.x, case.window
        x = draw.normal(size=case.x)
        runs.append((case, x, draw.normal(size=(n, c, _size(h, ph, case.stride, case.pad),
                                                _size(w, pw, case.stride, case.pad)))))
    return runs, (np.round(draw.uniform(0, 2, size=(2, 2, 4, 6))), draw.normal(size=(2, 2, 2, 3)))


def tensor_affine_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x (3, 2, 3, 4), W (24, 5), b, dout) for an Affine fed an (N, C, H, W) map."""
    draw = rng("Affine", 4)
    x, W, b = draw.normal(size=(3, 2, 3, 4)), draw.normal(size=(24, 5)), draw.normal(size=5)
    return x, W, b, draw.normal(size=(3, 5))
