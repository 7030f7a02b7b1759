"""Built-in scenarios: a data set, an architecture and training defaults, by name."""

from __future__ import annotations

from dataclasses import dataclass

from parity.settings.regularization_spec import BatchNormSpec
from parity.settings.spec import ConvSpec, DenseSpec, PoolSpec

__all__ = ["Scenario", "SCENARIOS"]


@dataclass(frozen=True)
class Scenario:
    description: str
    layers: tuple[DenseSpec, ...]
    loss: str = "mean_squared_error"
    data_kind: str = "linear"  # linear | blobs | bars (see parity.settings.data)
    noise: float = 0.05
    samples: int = 200
    epochs: int = 20
    batch_size: int = 10
    lr: float = 0.01
    # Keras's initial weights and fit shuffling. 44, not the notebook's 1337: with 1337 the default fit leaves
    # unit 1 dead on every sample and unit 0 on none; with 44 each unit is dead on some samples (40% and 33%)
    # and alive on the rest, its kink inside the data (x* = 0.21 and -0.35), in float32 and float64 alike.
    seed: int = 44
    data_seed: int = 1337  # the notebook's data
    features: tuple[ConvSpec | PoolSpec, ...] = ()  # convolutions and poolings before the Dense layers
    input_shape: tuple[int, int, int] | None = None  # (C, H, W) of an image input


SCENARIOS = {
    "seed": Scenario(
        description="the seed notebook: Dense(2, relu) -> Dense(1), MSE, on y = -(0.5x + 2 + noise)",
        layers=(DenseSpec(2, "relu"), DenseSpec(1, "linear")),
    ),
    "sigmoid": Scenario(
        description="Dense(2, sigmoid) -> Dense(1), MSE, on the seed's data",
        layers=(DenseSpec(2, "sigmoid"), DenseSpec(1, "linear")),
    ),
    "softmax": Scenario(
        description="Dense(8, relu) -> Dense(3, softmax), sparse cross-entropy, on 3 Gaussian blobs in 2-D",
        layers=(DenseSpec(8, "relu"), DenseSpec(3, "softmax")),
        loss="sparse_categorical_crossentropy",
        data_kind="blobs",
        noise=0.6,
        samples=300,
        lr=0.05,
    ),
    "deep": Scenario(
        description="Dense(16, relu) -> Dense(16, relu) -> Dense(1), MSE, on the seed's data",
        layers=(DenseSpec(16, "relu"), DenseSpec(16, "relu"), DenseSpec(1, "linear")),
    ),
    # The book's chapter 6 (MultiLayerNetExtend's shape): Affine -> BatchNormalization -> Relu -> Dropout -> Affine ->
    # SoftmaxWithLoss with the book's BatchNormalization defaults (momentum 0.9, epsilon 1e-6, running statistics from 0).
    "regularized": Scenario(
        description="Dense(8) -> BatchNormalization -> relu -> Dropout(0.2) -> Dense(3, softmax), sparse "
                    "cross-entropy, on the softmax scenario's 3 Gaussian blobs",
        layers=(DenseSpec(8, "relu", batch_norm=BatchNormSpec(), dropout=0.2), DenseSpec(3, "softmax")),
        loss="sparse_categorical_crossentropy",
        data_kind="blobs",
        noise=0.6,
        samples=300,
        lr=0.05,
    ),
    # The book's chapter 7 (SimpleConvNet, smaller): FN = 6 differs from FH = FW = 5, so a kernel whose axes are
    # mixed up cannot pass by symmetry; 12x12 images keep the probe and stepping a second or two. lr 0.01, not 0.05:
    # at 0.05 (20 epochs) float32 stepping drifted past the float32 tolerance on seeds 14, 16 and 25 of 0-30 (float64
    # passed on them, within 4e-13: rounding amplified); at 0.01, 40 epochs, the largest share of the float32
    # tolerance used over seeds 0-49 was 0.10, of float64's over seeds 0-29 0.002 (README: Convolutions).
    "cnn": Scenario(
        description="Convolution(6 filters 5x5, relu) -> Pooling(2x2, stride 2) -> Dense(16, relu) -> Dense(4, softmax), "
                    "sparse cross-entropy, on 12x12 images of bars in 4 orientations",
        layers=(DenseSpec(16, "relu"), DenseSpec(4, "softmax")),
        loss="sparse_categorical_crossentropy",
        data_kind="bars",
        noise=0.1,
        lr=0.01,
        epochs=40,
        features=(ConvSpec(6, (5, 5), stride=1, pad=0, activation="relu"), PoolSpec((2, 2), stride=2)),
        input_shape=(1, 12, 12),
    ),
}
