"""The book's chapter-6 layers in the stack (NumPy only): how a Dropout or BatchNormalization is called in its
mode, how a Dropout is driven with the mask Keras drew, and what a BatchNormalization exposes (dgamma, dbeta and
its running statistics), every call into a user's class through parity.user_code.guard.

The stack calls `forward(x, train_flg=...)` for these two classes only, as the book's MultiLayerNetExtend does,
with the flag spelled as the class takes it (parity.user_code.train_flag).
"""

from __future__ import annotations

import numpy as np

from parity.settings.regularization_spec import bn_names, state_names
from parity.user_code.dropout_draw import drive
from parity.user_code.guard import UserCodeError, where_defined
from parity.user_code.train_flag import forward_call

__all__ = ["bn_arguments", "mode_forward", "observe_backward", "bn_gradients", "running_statistics"]


def bn_arguments(weights: dict[str, np.ndarray], number: int) -> tuple:
    """BatchNormalization(gamma, beta, momentum, running_mean, running_var) as the book's MultiLayerNetExtend builds
    it, from the weights of the Dense layer `number` (the momentum is added by the caller); copies of the running
    statistics, which the layer rebinds as it trains."""
    gamma, beta = (weights[name] for name in bn_names(number))
    mean, var = (np.array(weights[name], copy=True) for name in state_names(number))
    return gamma, beta, mean, var


def mode_forward(net, slot, x: np.ndarray, expect) -> np.ndarray:
    """slot.obj.forward(x, <train flag>=net.train); a Dropout in training mode driven with Keras's mask for its
    layer (net.masks), the route recorded in net.routes (parity.user_code.dropout_draw)."""
    args, kwargs = forward_call(type(slot.obj), x, net.train)

    def forward(x_):
        return net._call(slot, "forward", x_, *args[1:], expect=expect, kwargs=kwargs)

    if net.train and slot.role == "BatchNormalization":  # the statistics of the batch it received, for the picture
        flat = np.asarray(x).reshape(len(x), -1)  # (batch, features): a 4-D input per activation
        net.observed[f"batch_mean{slot.number}"], net.observed[f"batch_var{slot.number}"] = flat.mean(0), flat.var(0)
    keep = net.masks.get(slot.number) if net.train and slot.role == "Dropout" else None
    if keep is None:
        return forward(x)
    out, kept, route = drive(forward, x, np.asarray(keep, dtype=bool).reshape(np.shape(x)), holder=slot.obj)
    net.routes.setdefault(slot.number, set()).add(route)
    if kept is not None:
        net.observed[f"kept{slot.number}"] = np.asarray(kept).reshape(-1)
    return out


def observe_backward(net, slot, dout, dx) -> None:
    """The units a training-mode Dropout's backward let dout through (dx nonzero where dout is; where dout is 0 it
    says nothing, and Keras's choice stands there, as for the kept units in drive)."""
    keep = net.masks.get(slot.number) if net.train and slot.role == "Dropout" else None
    if keep is not None and np.shape(dx) == np.shape(dout):
        keep = np.asarray(keep, dtype=bool).reshape(np.shape(dout))
        net.observed[f"passed{slot.number}"] = np.where(np.asarray(dout) != 0, np.asarray(dx) != 0, keep).reshape(-1)


def bn_gradients(slot) -> tuple[np.ndarray, np.ndarray]:
    """(dgamma, dbeta) a BatchNormalization set in its backward, the book's names; a missing one is a UserCodeError
    on the class."""
    out = []
    for name in ("dgamma", "dbeta"):
        value = getattr(slot.obj, name, None)
        if not isinstance(value, np.ndarray):
            cls = type(slot.obj)
            said = "left it None" if value is None else f"set it to {type(value).__name__}"
            raise UserCodeError(slot.role, cls, "backward", f"{said}: the harness reads `{name}` (the book's name), "
                                f"an array of gamma's shape", where_defined(cls, "backward"), "gradient")
        out.append(value)
    return out[0], out[1]


def running_statistics(slots) -> dict[str, np.ndarray]:
    """running_mean<k>, running_var<k> of each BatchNormalization slot, copied (NaN where the class keeps none under
    the book's names: the comparison then says so)."""
    out = {}
    for slot in slots:
        for attribute, name in zip(("running_mean", "running_var"), state_names(slot.number)):
            value = getattr(slot.obj, attribute, None) if slot.obj is not None else None
            try:
                value = np.array(value, dtype=slot.W.dtype, copy=True).reshape(slot.W.shape)
            except (TypeError, ValueError):
                value = np.full(slot.W.shape, np.nan)
            out[name] = value
    return out
