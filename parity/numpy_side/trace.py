"""One side's per-sample (or per-step) record, and how rows computed one by one are stacked into it (NumPy only)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parity.errors import first_line
from parity.user_code.guard import UserCodeError, where_raised

__all__ = ["Trace", "RowError", "stack_rows", "stack_states", "splice"]


@dataclass
class Trace:
    """One side's per-sample (or per-step) record; leading axis is the sample or step."""

    pred: np.ndarray  # (n, out)
    loss: np.ndarray  # (n,)
    grads: dict[str, np.ndarray]  # name -> (n, *param shape)
    dx: np.ndarray  # (n, in)
    z: dict[int, np.ndarray]  # hidden layer number -> pre-activations (n, units)
    params_after: dict[str, np.ndarray] = field(default_factory=dict)  # stepping only
    # stepping with a stateful optimizer: book state name (v, h, m) -> parameter name -> (n, *param shape)
    state_after: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    errors: list = field(default_factory=list)  # RowError per row on which a NumPy layer raised
    # convolution number -> its pre-activation maps (n, FN * OH * OW), channel-major as the book holds them
    maps: dict[int, np.ndarray] = field(default_factory=dict)
    # training mode: a Dropout's Dense number -> the units Keras kept, (n, batch * units) bool, one row per batch or step
    masks: dict[int, np.ndarray] = field(default_factory=dict)
    # training mode, one row per batch or step: batch_mean<k>, batch_var<k> (the batch statistics a BatchNormalization
    # normalized with: Keras's from its own computation, the NumPy side's of the input its class received), and on
    # the NumPy side kept<k> and passed<k> (the units a Dropout kept, read from its output, and let dout through in
    # backward). Drawn (regularization.png), never compared.
    observed: dict[str, np.ndarray] = field(default_factory=dict)
    # a batch's rows: hidden layer number -> its samples' pre-activations (n, batch * units), to judge a ReLU kink by
    # (parity.compare.diff); never compared or shown, as a batch's rows hold no per-sample z
    batch_z: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class RowError:
    """What went wrong while computing one row (sample, step or batch) on the NumPy side."""

    row: int
    layer: str  # the class and method at fault, as the user spelled it, e.g. "ReLU.backward"; "" when none
    kind: str  # the exception's class, or what was wrong (None, type, shape, gradient)
    message: str  # completes the sentence that starts with `layer`: "raised ValueError: ...", "returned None: ..."
    where: str  # "file:line" in the user's code where it can be said, else of the innermost frame
    book: str = ""  # the book class blamed (Affine, Relu, ...); "" when none

    @classmethod
    def of(cls, row: int, exc: Exception, network) -> "RowError":
        if isinstance(exc, UserCodeError):
            return cls(row, f"{exc.class_name}.{exc.method}", exc.kind, exc.message, exc.where, exc.book)
        slots = {type(s.obj): s.role for s in [*network.layers, network.loss_layer] if s.obj is not None}
        layer, book = "", ""
        tb = exc.__traceback__
        while tb is not None:  # the innermost frame that runs a method of one of the network's layers
            owner = tb.tb_frame.f_locals.get("self")
            if type(owner) in slots:
                layer, book = f"{type(owner).__name__}.{tb.tb_frame.f_code.co_name}", slots[type(owner)]
            tb = tb.tb_next
        text = first_line(exc)
        return cls(row, layer, type(exc).__name__, f"raised {type(exc).__name__}: {text}", where_raised(exc), book)


def _filled(values: list) -> np.ndarray | None:
    """Stack per-row arrays; rows that failed (None) become NaN of the successful rows' shape.

    None when no row succeeded: there is no shape to give them.
    """
    shape = next((np.shape(v) for v in values if v is not None), None)
    if shape is None:
        return None
    return np.stack([np.full(shape, np.nan) if v is None else np.asarray(v) for v in values])


def stack_rows(records: list[dict | None], hidden: list[int], errors: list[RowError] = (),
               maps: list[int] = (), batch_hidden: list[int] = ()) -> Trace:
    good = [r for r in records if r is not None]
    names = list(good[0]["grads"]) if good else []
    column = lambda key: [None if r is None else r[key] for r in records]  # noqa: E731
    return Trace(
        pred=_filled(column("pred")),
        loss=_filled(column("loss")),
        grads={k: _filled([None if r is None else r["grads"][k] for r in records]) for k in names},
        dx=_filled(column("dx")),
        z={} if not good else {layer: _filled([None if r is None else r["z"][n] for r in records])
                               for n, layer in enumerate(hidden)},
        errors=list(errors),
        maps={} if not good else {layer: _filled([None if r is None else r["maps"][n] for r in records])
                                  for n, layer in enumerate(maps)},
        observed={k: _filled([None if r is None else r.get("observed", {}).get(k) for r in records])
                  for k in dict.fromkeys(k for r in good for k in r.get("observed", {}))},
        batch_z={} if not good else {layer: _filled([None if r is None else r["z"][n] for r in records])
                                     for n, layer in enumerate(batch_hidden)},
    )


def stack_states(states: list[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Per-step optimizer states -> book state -> parameter -> (steps, *shape), for what every step exposed."""
    if not states:
        return {}
    names = set.intersection(*(set(s) for s in states))
    return {book: {k: np.stack([s[book][k] for s in states]) for k in states[0][book]
                   if all(k in s[book] for s in states)} for book in sorted(names)}


def splice(head: Trace, tail: Trace, at: int) -> Trace:
    """`head`'s rows before `at`, then `tail`'s rows (tail's row 0 becomes row `at`)."""
    def join(a, b):
        return None if a is None or b is None else np.concatenate([a[:at], b])

    def per_key(a: dict, b: dict) -> dict:
        return {k: join(a[k], b[k]) for k in a if k in b}

    moved = [RowError(e.row + at, e.layer, e.kind, e.message, e.where, e.book) for e in tail.errors]
    return Trace(pred=join(head.pred, tail.pred), loss=join(head.loss, tail.loss),
                 grads=per_key(head.grads, tail.grads), dx=join(head.dx, tail.dx), z=per_key(head.z, tail.z),
                 params_after=per_key(head.params_after, tail.params_after),
                 state_after={k: per_key(head.state_after[k], tail.state_after[k]) for k in head.state_after
                              if k in tail.state_after},
                 errors=[e for e in head.errors if e.row < at] + moved, maps=per_key(head.maps, tail.maps),
                 masks=per_key(head.masks, tail.masks), observed=per_key(head.observed, tail.observed))
