"""The one place TensorFlow and Keras are imported, with the environment and file-descriptor handling
around that import; the run's seeding and pinning; what on this side could change the numbers.

Every other module of keras_side takes `keras` and `tf` from here."""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np

__all__ = ["keras", "tf", "configure", "environment", "tensor", "native_stderr_quiet", "pfor_while_loops"]


@contextlib.contextmanager
def native_stderr_quiet():
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

with native_stderr_quiet():
    import keras
    import tensorflow as tf


@contextlib.contextmanager
def pfor_while_loops():
    """Collect, instead of printing, TensorFlow's "<Op> uses a while_loop. Fix that!" warnings of tf.vectorized_map
    (pfor maps such an op, Conv2DBackpropFilter of a per-sample input among them, one sample at a time inside the
    compiled map): yields the list of those ops' names, filled while tracing."""
    import logging

    ops: list[str] = []

    class _Collect(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            message = record.getMessage()
            if message.endswith("uses a while_loop. Fix that!"):
                ops.append(message.split()[0])
                return False
            return True

    logger, collect = logging.getLogger("tensorflow"), _Collect()
    logger.addFilter(collect)
    try:
        yield ops
    finally:
        logger.removeFilter(collect)


def configure(dtype: str, seed: int) -> None:
    """The one place that seeds and pins the run: floatx, every RNG, deterministic TF ops."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"keras-parity needs the TensorFlow backend (KERAS_BACKEND={keras.backend.backend()})")
    with native_stderr_quiet():
        tf.config.list_logical_devices()  # device start-up, and its chatter, happen here
    keras.config.set_floatx(dtype)
    # The global dtype policy is cached at first use and does not follow set_floatx: without this,
    # a float32 run after a float64 run in the same process builds float64 variables.
    keras.config.set_dtype_policy(dtype)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def tensor(a: np.ndarray):
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
