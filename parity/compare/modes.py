"""Which mode each phase ran its Dropout and BatchNormalization layers in, and why, in one sentence each; and how
each Dropout's draws were driven with Keras's masks (parity.user_code.dropout_draw's routes). Data, not rendering."""

from __future__ import annotations

from parity.settings.spec import ModelSpec

__all__ = ["phase_modes"]


def phase_modes(spec: ModelSpec, batch_size: int, routes: dict[int, set[str]]) -> dict:
    """{phase: sentence, ..., "dropout_routes": {layer: [route, ...]}} for an architecture with BatchNormalization or
    Dropout; empty otherwise (every layer then has one mode)."""
    if not spec.regularized:
        return {}
    norm, drop = bool(spec.batch_norms()), bool(spec.dropouts())
    parts = [p for p, used in (("BatchNormalization on its running statistics", norm), ("Dropout the identity", drop))
             if used]
    why = ("BatchNormalization couples a batch's samples (a batch of one normalizes to zero)" if norm
           else "Dropout's mask is drawn per batch in training")
    masks = "; each Dropout driven with the mask Keras drew in that forward pass" if drop else ""
    return {
        "probe": f"test mode ({', '.join(parts)}), forward only: each sample alone, and the book's layers define "
                 "backward only after a training-mode forward",
        "batch": f"training mode on batches of {batch_size}: {why}{masks}",
        "stepping": f"training mode, one step per batch of {batch_size}: {why}"
                    + ("; running statistics compared after every step" if norm else "") + masks,
        "dropout_routes": {f"layer {k}": sorted(routes.get(k, ())) for k, _ in spec.dropouts()},
    }
