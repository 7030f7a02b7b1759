"""The book's Dropout, seen in Keras's convention: a wrapper the network puts around a user's Dropout object once
its layer probe has shown the book's convention (no scaling in training, x * (1 - ratio) in test mode), so the
stack it sits in computes what Keras's inverted Dropout computes. The probe's evidence is what allows it: the
class equals Keras's inverted Dropout times (1 - ratio) in both modes, on Keras's own mask.

Training: forward / (1 - ratio) is x * mask / (1 - ratio); backward / (1 - ratio) is dout * mask / (1 - ratio).
Test mode: x * (1 - ratio) / (1 - ratio) is x. The wrapped object keeps its own state (its mask); attributes
the network reads (mask, dropout_ratio, ...) are the wrapped object's.
"""

from __future__ import annotations

import numpy as np

from parity.user_code.train_flag import forward_call

__all__ = ["InvertedView", "inverted_view", "held_ratio", "RATIO_NAMES", "wrappers_for"]


class InvertedView:
    """A book-convention Dropout object, scaled into Keras's inverted convention: the same forward(x, train_flg)
    and backward(dout) protocol, each divided by (1 - ratio)."""

    def __init__(self, layer, ratio: float):
        if not 0 <= ratio < 1:
            raise ValueError(f"a dropout ratio is in [0, 1) (received: {ratio!r})")
        self.layer, self.ratio = layer, float(ratio)
        self.__wrapped__ = layer  # where parity.user_code.dropout_draw finds the generators the layer holds

    def forward(self, x: np.ndarray, train_flg: bool = True) -> np.ndarray:
        args, kwargs = forward_call(type(self.layer), x, train_flg)  # as the wrapped class takes its flag
        return self.layer.forward(*args, **kwargs) / (1.0 - self.ratio)

    def backward(self, dout: np.ndarray) -> np.ndarray:
        return self.layer.backward(dout) / (1.0 - self.ratio)

    def __getattr__(self, name: str):
        if name in ("layer", "ratio", "__wrapped__"):  # not set yet (copy, pickle): no recursion through __getattr__
            raise AttributeError(name)
        return getattr(self.layer, name)


RATIO_NAMES = ("dropout_ratio", "ratio", "rate", "dropout_rate", "drop_ratio", "drop_rate", "p")  # the book's first


def held_ratio(layer) -> float:
    """The ratio a Dropout object holds (its own attribute, the book's name first); ValueError when it holds none."""
    held = getattr(layer, "__dict__", {})
    for name in RATIO_NAMES:
        if isinstance(held.get(name), (int, float)) and not isinstance(held.get(name), bool):
            return float(held[name])
    raise ValueError(f"{type(layer).__name__} holds no dropout ratio under {', '.join(RATIO_NAMES)}: give the ratio")


def inverted_view(ratio: float | None = None):
    """The wrapper for Network's role -> wrapper mapping: layer -> InvertedView(layer, ratio), the ratio the layer
    holds where none is given (each Dropout of a stack its own)."""
    return lambda layer: InvertedView(layer, held_ratio(layer) if ratio is None else ratio)


def wrappers_for(findings) -> dict:
    """Network's role -> wrapper mapping for what the layer probes proved: the book's Dropout convention (the
    probe's `convention` warning on Dropout) is seen in Keras's; nothing else is wrapped."""
    proven = any(f.code == "convention" and f.layer == "Dropout" and f.phase == "layer probe" for f in findings)
    return {"Dropout": inverted_view()} if proven else {}
