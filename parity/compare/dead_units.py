"""Dead-ReLU analysis: which units are dead where, and what that does to dW versus W.

The seed notebook's observation: a unit dead for a sample gets exactly zero gradient for its
weights *for that sample*, so an SGD step leaves that unit's weights where they were; the weights
themselves are not zero. `stepping_observation` checks it on both sides, step by step.
"""

from __future__ import annotations

import numpy as np

from parity.compare.diff import PhaseResult
from parity.numpy_side.trace import Trace

__all__ = ["gradient_leaks", "kink_rows", "params_before", "stepping_observation", "unit_label", "unit_moved", "unit_name",
           "unit_params"]


def unit_label(layer: int, unit: int) -> str:
    """The key of a unit in summary.json and the tables: "1.0" is unit 0 of Dense layer 1."""
    return f"{layer}.{unit}"


def unit_name(label: str) -> str:
    """A unit label ("1.0", a key in summary.json) as a reader says it: "layer 1, unit 0", never a number."""
    layer, _, unit = label.partition(".")
    return f"layer {layer}, unit {unit}"


def unit_params(layer: int, j: int, params: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The entries of a unit: its kernel column and bias in `layer`, its kernel row in `layer + 1`.

    `params` hold a leading row axis: (n, in, out) kernels and (n, out) biases.
    """
    parts = [params[f"W{layer}"][:, :, j], params[f"b{layer}"][:, j]]
    if f"W{layer + 1}" in params:
        parts.append(params[f"W{layer + 1}"][:, j, :])
    return [p.reshape(len(p), -1) for p in parts]


def params_before(trace: Trace, start: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Parameters before each step: the starting point, then each step's result."""
    return {k: np.concatenate([start[k][None].astype(v.dtype), v[:-1]]) for k, v in trace.params_after.items()}


def unit_moved(trace: Trace, before: dict[str, np.ndarray], layer: int, j: int) -> np.ndarray:
    """(steps,) whether any of the unit's entries changed in that step."""
    pairs = zip(unit_params(layer, j, trace.params_after), unit_params(layer, j, before))
    return np.any([(a != b).any(axis=1) for a, b in pairs], axis=0)


def stepping_observation(stepping: PhaseResult, start: dict[str, np.ndarray]) -> list[dict]:
    """For each ReLU unit and side: on steps where it was dead, was its dW exactly 0 and W unchanged?

    `start` holds the parameters at the start of stepping (no row axis).
    """
    out = []
    for side, trace, dead_by_layer in (("numpy", stepping.numpy, stepping.dead_numpy),
                                       ("keras", stepping.keras, stepping.dead_keras)):
        before = params_before(trace, start)
        for layer, dead in dead_by_layer.items():
            for j in range(dead.shape[1]):
                rows = dead[:, j]
                grad_zero = np.all([(g == 0).all(axis=1) for g in unit_params(layer, j, trace.grads)], axis=0)
                moved = unit_moved(trace, before, layer, j)
                w_nonzero = (unit_params(layer, j, before)[0] != 0).any(axis=1)
                out.append({
                    "side": side, "unit": unit_label(layer, j), "steps": int(len(rows)),
                    "dead_steps": int(rows.sum()),
                    "dW_zero_when_dead": int((grad_zero & rows).sum()),
                    "W_unchanged_when_dead": int((~moved & rows).sum()),
                    "W_nonzero_when_dead": int((w_nonzero & rows).sum()),
                    "W_changed_when_alive": int((moved & ~rows).sum()),
                })
    return out


def gradient_leaks(phase: PhaseResult) -> list[dict]:
    """Per ReLU unit, where the NumPy side's dW for the unit's weights (its kernel column) disagrees with Keras's
    about being exactly 0: `passed` rows where ours is not 0 while Keras's is (gradient through a unit Keras's
    ReLU blocked), `blocked` rows where ours is 0 while Keras's is not; `first_*` the first such row's sample
    (probe) or step (stepping), None when there is none; `compared` the rows where ours is finite (a row that raised,
    or a dW of the wrong shape, is NaN: nothing can be said of it)."""
    out = []
    for layer in phase.dead_keras:
        ours, theirs = phase.numpy.grads.get(f"W{layer}"), phase.keras.grads.get(f"W{layer}")
        if ours is None or theirs is None or ours.shape != theirs.shape:
            continue
        with np.errstate(invalid="ignore"):
            ours_zero, theirs_zero = (ours == 0).all(axis=1), (theirs == 0).all(axis=1)  # (n, units)
            ours_flows = (np.isfinite(ours) & (ours != 0)).any(axis=1)
        passed, blocked = ours_flows & theirs_zero, ours_zero & ~theirs_zero
        for j in range(passed.shape[1]):
            row = {"unit": unit_label(layer, j), "param": f"dW{layer}", "rows": int(len(passed)),
                   "compared": int(np.isfinite(ours[:, :, j]).all(axis=1).sum())}
            for key, where in (("passed", passed[:, j]), ("blocked", blocked[:, j])):
                row[key] = int(where.sum())
                row[f"first_{key}"] = phase.where(int(np.argmax(where))) if where.any() else None
            out.append(row)
    return out


def kink_rows(phase: PhaseResult, data, spec, weights_before, limit: int) -> list[dict]:
    """Rows whose ReLU pre-activation is within rounding of 0, with a float64 shadow of that pre-activation.

    The shadow recomputes the pre-activation in float64 from the same weights (`weights_before(row)`:
    the fitted ones for the probe, Keras's weights before the step for stepping) and the float64 data,
    so a float32 mask flip shows which side of 0 the exact value lies on. At most `limit` rows. A convolution's
    map cell is named by its filter and place (`map_cell`), its `unit` label the cell's channel-major index.
    """
    from parity.numpy_side.network import build_network

    maps = {i: out for i, conv, _, out in spec.activated_maps() if conv.activation == "relu"}
    out = []
    for row in np.flatnonzero(phase.kink)[:max(0, limit)]:
        sample = int(phase.rows[row])
        shadow = build_network(spec, {k: np.asarray(v, dtype=np.float64) for k, v in weights_before(row).items()})
        shadow.predict(data.x[sample:sample + 1])
        shadow_z = dict(zip([i for i, _ in spec.hidden()], shadow.pre_activations))
        shadow_z |= {i: a.reshape(1, -1) for i, a in zip(shadow.map_numbers, shadow.map_activations)}
        best = None  # one entry per row: the ReLU unit (or map cell) closest to its kink, over every ReLU layer
        sides = {layer: (phase.keras.z[layer][row], phase.numpy.z[layer][row]) for layer in phase.dead_keras}
        sides |= {layer: (phase.keras.maps[layer][row], phase.numpy.maps[layer][row]) for layer in maps
                  if layer in phase.keras.maps}
        for layer, (keras_z, numpy_z) in sides.items():
            distance = np.minimum(np.abs(keras_z), np.abs(numpy_z))
            j = int(np.argmin(distance))
            if best is None or distance[j] < best[0]:
                best = (distance[j], layer, j)
        _, layer, closest = best
        z_keras, z_numpy = sides[layer][0][closest], sides[layer][1][closest]
        entry = {"phase": phase.phase, phase.unit: phase.where(row), "sample": sample,
                 "unit": unit_label(layer, closest), "z_numpy": float(z_numpy), "z_keras": float(z_keras),
                 "z_float64": float(shadow_z[layer][0, closest]),
                 "dead_numpy": bool(z_numpy <= 0), "dead_keras": bool(z_keras <= 0)}
        if layer in maps:
            f, y, x = np.unravel_index(closest, maps[layer])
            entry["map_cell"] = {"filter": int(f), "row": int(y), "col": int(x)}
        out.append(entry)
    return out
