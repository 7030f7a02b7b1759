"""Dead-ReLU analysis: which units are dead where, and what that does to dW versus W.

The seed notebook's observation: a unit dead for a sample gets exactly zero gradient for its
weights *for that sample*, so an SGD step leaves that unit's weights where they were; the weights
themselves are not zero. `stepping_observation` checks it on both sides, step by step.
"""

from __future__ import annotations

import numpy as np

from parity.compare import PhaseResult

__all__ = ["dead_unit_stats", "stepping_observation", "unit_label"]


def unit_label(layer: int, unit: int) -> str:
    return f"{layer}.{unit}"


def dead_unit_stats(probe: PhaseResult) -> dict:
    """Per hidden unit, the fraction of probed samples on which it is dead, on each side."""
    units, always = {}, []
    for layer, dead in probe.dead_keras.items():
        for j in range(dead.shape[1]):
            label = unit_label(layer, j)
            units[label] = {"numpy": float(probe.dead_numpy[layer][:, j].mean()), "keras": float(dead[:, j].mean())}
            if dead[:, j].all() and probe.dead_numpy[layer][:, j].all():
                always.append(label)
    return {"fraction_dead": units, "dead_on_every_sample": always}


def _unit_params(layer: int, j: int, params: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The entries of a unit: its kernel column and bias in `layer`, its kernel row in `layer + 1`.

    `params` hold a leading row axis: (n, in, out) kernels and (n, out) biases.
    """
    parts = [params[f"W{layer}"][:, :, j], params[f"b{layer}"][:, j]]
    if f"W{layer + 1}" in params:
        parts.append(params[f"W{layer + 1}"][:, j, :])
    return [p.reshape(len(p), -1) for p in parts]


def stepping_observation(stepping: PhaseResult, before: dict[str, np.ndarray]) -> list[dict]:
    """For each hidden unit: on steps where it was dead, was its dW exactly 0 and its W unchanged?

    `before` holds the parameters at the start of stepping (no row axis), on the Keras side.
    """
    out = []
    for side, trace, dead_by_layer in (("numpy", stepping.numpy, stepping.dead_numpy),
                                       ("keras", stepping.keras, stepping.dead_keras)):
        after = trace.params_after
        # Parameters before each step: the starting point, then each step's result.
        prior = {k: np.concatenate([before[k][None].astype(v.dtype), v[:-1]]) for k, v in after.items()}
        for layer, dead in dead_by_layer.items():
            for j in range(dead.shape[1]):
                rows = dead[:, j]
                grad_zero = np.all([(g == 0).all(axis=1) for g in _unit_params(layer, j, trace.grads)], axis=0)
                unchanged = np.all([(a == b).all(axis=1) for a, b in
                                    zip(_unit_params(layer, j, after), _unit_params(layer, j, prior))], axis=0)
                w_nonzero = (_unit_params(layer, j, prior)[0] != 0).any(axis=1)
                out.append({
                    "side": side, "unit": unit_label(layer, j), "steps": int(len(rows)),
                    "dead_steps": int(rows.sum()),
                    "dW_zero_when_dead": int((grad_zero & rows).sum()),
                    "W_unchanged_when_dead": int((unchanged & rows).sum()),
                    "W_nonzero_when_dead": int((w_nonzero & rows).sum()),
                    "W_changed_when_alive": int((~unchanged & ~rows).sum()),
                })
    return out
