"""How a chapter-6 layer (Dropout, BatchNormalization) is told its mode: the book calls
`forward(x, train_flg=True)`; learners spell the flag `train_flag`, `training`, `is_training`, `train`, or
take it by position. One function finds the spelling a class takes, before any work, and one builds the call.
"""

from __future__ import annotations

import inspect

from parity.settings.spec import MODE_LAYERS  # the book classes whose forward takes a train flag (re-exported)

__all__ = ["MODE_LAYERS", "SPELLINGS", "train_argument", "forward_call", "train_flag_problem"]

SPELLINGS = ("train_flg", "train_flag", "training", "is_training", "train", "is_train", "train_mode")  # not `trainable`: a weight property
EXPECTED = "forward(x, train_flg=True)"


def train_argument(cls: type) -> str | int | None:
    """The keyword `cls.forward` takes its train flag by (one of SPELLINGS), or 1 for a second positional
    parameter of another name, or None when forward takes no flag (or can't be inspected)."""
    try:
        params = list(inspect.signature(cls.forward).parameters.values())
    except (TypeError, ValueError, AttributeError):
        return None
    if params and params[0].name == "self":
        params = params[1:]
    for p in params[1:]:
        if p.name.lower() in SPELLINGS and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            return p.name
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params):
        return 1
    return None


def forward_call(cls: type, x, train: bool) -> tuple[tuple, dict]:
    """(args, kwargs) for `obj.forward` of a `cls` in the given mode, as `train_argument` found it."""
    how = train_argument(cls)
    if how is None or how == 1:
        return (x, train), {}
    return (x,), {how: train}


def train_flag_problem(cls: type, canonical: str) -> str | None:
    """Why the harness can't tell `cls` its mode (None when it can): the signature found and the one expected."""
    if train_argument(cls) is not None:
        return None
    try:
        found = f"forward{inspect.signature(cls.forward)}"
    except (TypeError, ValueError, AttributeError):
        found = "a forward that can't be inspected"
    return (f"class {cls.__name__} has {found}: a {canonical} needs a train flag, {EXPECTED} as the book's "
            f"common/layers.py has it (also taken: {', '.join(SPELLINGS[1:5])}, or a second positional argument)")
