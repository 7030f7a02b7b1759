"""The reference layers' records in closed form: the whole probe at once, stepping without layer objects.

The same arithmetic as running `parity.book.layers` sample by sample through `Network` (tested equal to
1e-12 in float64), with no Python loop over samples in the probe and the least Python per step in
stepping. Only for the reference layers: a user's classes always run as objects.
"""

from __future__ import annotations

import numpy as np

from parity.book import layers as reference_layers
from parity.numpy_side.feature_maps import features_forward, row_dot
from parity.numpy_side.trace import Trace, stack_states
from parity.settings.spec import CROSS_ENTROPIES, ModelSpec

__all__ = ["per_sample_closed_form", "steps_closed_form"]


def per_sample_closed_form(spec: ModelSpec, weights: dict[str, np.ndarray], x: np.ndarray, t: np.ndarray) -> Trace:
    """The reference layers' per-sample record for a whole batch at once, without a loop over samples.

    Equal to `build_network(spec, weights).per_sample(x, t, hidden)` (tested to 1e-12 in float64):
    each sample is still its own batch of one, so its loss gradient is the single-sample one, and a
    Dense layer's per-sample weight gradient is the outer product of its input and its output gradient.
    """
    n = len(x)
    with np.errstate(all="ignore"):  # overflow and NaN are findings, not warnings (a diverged fit's weights)
        pred, loss, grads, dx, z, maps = _record(_Plan(spec), weights, x, t)
    return Trace(pred=pred, loss=loss, grads=grads, dx=dx.reshape(n, -1), z=z, maps=maps)


class _Plan:
    """What `_record` reads of a spec, worked out once: a stepping loop calls it once per step."""

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.layers = [(i, f"W{i}", f"b{i}", layer.activation)
                       for i, layer in ((spec.dense_number(k), s) for k, s in enumerate(spec.layers, start=1))]
        self.names = list(spec.shapes())  # Keras's variable order
        self.hidden = [i for i, _ in spec.hidden()]
        self.maps = [i for i, *_ in spec.activated_maps()]
        self.cross_entropy = spec.loss in CROSS_ENTROPIES


def _record(plan: _Plan, weights: dict[str, np.ndarray], x: np.ndarray, t: np.ndarray):
    """(pred, loss, grads by name, dx, z by hidden layer, maps by convolution) of each row of x as its own batch
    of one. The convolutions and poolings run over the whole chunk at once (parity.numpy_side.feature_maps)."""
    n = len(x)
    features = features_forward(plan.spec, weights, x) if plan.spec.features else None
    h, inputs, z, outs = (x.reshape(n, -1) if features is None else features.flat), {}, {}, {}
    for i, w, b, activation in plan.layers:
        inputs[i] = h
        a = row_dot(h, weights[w]) + weights[b]  # (n, units)
        if activation == "relu":
            z[i], h = a, np.where(a <= 0, 0, a)  # a Python 0 takes a's dtype (NEP 50)
        elif activation == "sigmoid":
            z[i], h = a, 1 / (1 + np.exp(-a))
            outs[i] = h
        else:
            h = a
    if plan.cross_entropy:
        shifted = h - np.max(h, axis=-1, keepdims=True)
        log_y = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
        pred = reference_layers.softmax(h)
        onehot = t if t.ndim == 2 and t.shape == h.shape else np.eye(h.shape[1], dtype=h.dtype)[t.reshape(n)]
        loss = -np.sum(onehot * log_y, axis=1)
        dout = pred - onehot
    else:
        pred = h
        diff = h - t
        loss = np.add.reduce(diff ** 2, axis=1) / h.shape[1]  # np.mean's own arithmetic, without its Python wrapper
        dout = 2 * diff / h.shape[1]
    grads = {}
    for i, w, b, activation in reversed(plan.layers):
        if activation == "relu":
            dout = np.where(z[i] <= 0, 0, dout)
        elif activation == "sigmoid":
            dout = dout * (1.0 - outs[i]) * outs[i]
        grads[w] = inputs[i][:, :, None] * dout[:, None, :]  # (n, in, out): per-sample outer products
        grads[b] = dout
        dout = row_dot(dout, weights[w].T)
    maps = {}
    if features is not None:
        conv_grads, dout = features.backward(dout, weights)
        grads |= conv_grads
        maps = features.maps()
    return pred, loss, {k: grads[k] for k in plan.names}, dout, {i: z[i] for i in plan.hidden}, maps


def steps_closed_form(spec: ModelSpec, weights: dict[str, np.ndarray], x: np.ndarray, t: np.ndarray,
                      optimizer) -> Trace:
    """The reference layers' stepping record (one optimizer step per sample, in order) with the least
    Python per step: preallocated records, no layer objects. Equal to `Network.step_through`
    (tested to 1e-12 in float64). `optimizer` is a learning rate (plain SGD) or an OptimizerDriver."""
    n, dtype = len(x), x.dtype
    driver = None if isinstance(optimizer, (int, float)) else optimizer
    params = {k: np.array(v, copy=True) for k, v in weights.items()}
    plan = _Plan(spec)
    names, hidden = plan.names, plan.hidden
    record = {"loss": np.empty(n, dtype=dtype), "dx": np.empty((n, spec.input_dim), dtype=dtype)}
    grads = {k: np.empty((n, *params[k].shape), dtype=dtype) for k in names}
    after = {k: np.empty((n, *params[k].shape), dtype=dtype) for k in names}
    z_rec = {i: np.empty((n, spec.dense(i).units), dtype=dtype) for i in hidden}
    map_rec = {i: np.empty((n, fn * oh * ow), dtype=dtype) for i, _, _, (fn, oh, ow) in spec.activated_maps()}
    lr_ = None if driver is not None else np.asarray(optimizer, dtype=dtype)
    preds, states = [], []
    with np.errstate(all="ignore"):  # overflow and NaN are findings, not warnings
        lr_ = None if driver is not None else np.asarray(optimizer, dtype=dtype)  # fits: settings refuse one that doesn't
        for s in range(n):
            pred, loss, g, dx, z, maps = _record(plan, params, x[s:s + 1], t[s:s + 1])
            preds.append(pred[0])
            record["loss"][s] = loss[0]
            record["dx"][s] = dx[0]
            for i in hidden:
                z_rec[i][s] = z[i][0]
            for i in map_rec:
                map_rec[i][s] = maps[i][0]
            for k in names:
                grads[k][s] = g[k][0]
            if driver is None:
                for k in names:
                    params[k] = params[k] - lr_ * grads[k][s]
            else:
                driver.update({k: grads[k][s] for k in names}, s)
                params = {k: np.array(driver.params[k], copy=True) for k in names}
                states.append(driver.state())
            for k in names:
                after[k][s] = params[k]
    return Trace(pred=np.array(preds).reshape(n, -1), loss=record["loss"], grads=grads, dx=record["dx"], z=z_rec,
                 params_after=after, state_after=stack_states(states), maps=map_rec)
