"""Stepping runs for the optimizer tests: Keras's optimizer on the seed model, and a learner's class on the
NumPy stack, one sample per step, as the lock-step stepping does. Computed once per process."""

from functools import lru_cache

import numpy as np

from parity.keras_side import backend
from parity.keras_side import model as keras_model
from parity.settings.data import linear_data
from parity.keras_side.optimizers import build_keras_optimizer, read_keras_state
from parity.numpy_side.network import build_network
from parity.settings.spec import ModelSpec
from parity.diagnosis.optimizer import Trajectory
from parity.settings.optimizer_registry import optimizer_settings
from parity.settings.scenarios import SCENARIOS
from parity.user_code.optimizer_driver import OptimizerDriver

STEPS = 40
SPEC = ModelSpec(input_dim=1, layers=SCENARIOS["seed"].layers)  # W1 (1, 2), b1 (2,), W2 (2, 1), b2 (1,)
NAMES = list(SPEC.shapes())
DATA = linear_data(200, 160, seed=1337)


def _stack(records: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.stack([r[k] for r in records]) for k in records[0]} if records else {}


@lru_cache(maxsize=None)
def keras_run(name: str, dtype: str, python_floats: bool = False, **hyper):
    """(initial weights, Keras's Trajectory, the build record) for `STEPS` Keras steps of the seed model.

    `python_floats` passes the hyperparameters as Python floats, as a plain call would (the float32 trap).
    """
    import tensorflow as tf

    keras = backend.keras
    backend.configure(dtype, 1337)
    model = keras_model.build_model(SPEC)
    variables = model.trainable_variables
    initial = {n: np.array(v.numpy(), copy=True) for n, v in zip(NAMES, variables)}
    settings = optimizer_settings(name, **dict(hyper))
    optimizer, record = build_keras_optimizer(settings, dtype)
    if python_floats:
        optimizer = getattr(keras.optimizers, settings.info.keras_class)(
            **{k: v if isinstance(v, bool) else float(v) for k, v in record["arguments"].items()})
    optimizer.build(variables)
    loss_fn = keras.losses.MeanSquaredError()
    x, t = DATA.x.astype(dtype), DATA.y.astype(dtype)
    params, grads, states = [], [], []
    for i in range(STEPS):
        with tf.GradientTape() as tape:
            loss = loss_fn(t[i:i + 1], model(x[i:i + 1], training=False))
        g = tape.gradient(loss, variables)
        optimizer.apply(g, variables)
        grads.append({n: np.array(a.numpy(), copy=True) for n, a in zip(NAMES, g)})
        params.append({n: np.array(v.numpy(), copy=True) for n, v in zip(NAMES, variables)})
        states.append(read_keras_state(optimizer, variables, settings, NAMES))
    state = {s: _stack([st[s] for st in states]) for s in states[0]}
    return initial, Trajectory(_stack(params), state, _stack(grads)), record


def numpy_run(cls, name: str, dtype: str, initial: dict, **hyper):
    """(the learner's Trajectory, its driver) for the same steps on the NumPy stack, computing its own gradients,
    as the pipeline steps it (Network.step_through with the driver)."""
    settings = optimizer_settings(name, **hyper)
    net = build_network(SPEC, {k: v.astype(dtype) for k, v in initial.items()})
    driver = OptimizerDriver(cls, settings, net.params())
    x, t = DATA.x.astype(dtype), DATA.y.astype(dtype)
    trace = net.step_through(x[:STEPS], t[:STEPS], driver, [1])
    return Trajectory(trace.params_after, trace.state_after, trace.grads), driver
