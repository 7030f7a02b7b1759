"""One user class probed alone against Keras: its findings, and every call into it through parity.user_code.guard."""

from __future__ import annotations

import numpy as np

from parity.compare.diff import ERROR, WARNING
from parity.compare.phase_findings import finding, one_line
from parity.diagnosis.mismatch import classify, scale_cause
from parity.settings.tolerances import within
from parity.user_code import guard
from parity.user_code.guard import UserCodeError

__all__ = ["SEED", "RTOL", "ATOL", "rng", "Probe"]

SEED = 20240601  # the probes' inputs: each class's generator is seeded with SEED and its book name
RTOL, ATOL = 1e-10, 1e-12  # both sides compute the same float64 formulas at O(1) values


def rng(name: str, *more: int) -> np.random.Generator:
    """The probes' one source of inputs for the book class `name`: the same for every submission."""
    return np.random.default_rng([SEED, *name.encode(), *more])


class Probe:
    """Collects the findings of one user class; every call into it goes through `parity.user_code.guard`."""

    def __init__(self, name: str):
        self.name = name
        self.findings: list[dict] = []

    def add(self, code: str, severity: str, message: str, param: str | None = None, **where):
        if not any(f["code"] == code and f.get("param") == param for f in self.findings):
            text = message if code == "layer_error" else f"{self.name}: {message}"
            self.findings.append(finding(code, severity, text, layer=self.name, param=param, **where))

    def call(self, owner, method: str, *args, expect=None):
        """owner.method(*args) through the guard; what goes wrong becomes a layer_error finding (returns None)."""
        try:
            return guard.call(owner, method, *args, book=self.name, expect=expect)
        except UserCodeError as err:
            self.error(err)
            return None

    def error(self, err: UserCodeError):
        self.add("layer_error", ERROR, f"{err} ({err.where})" if err.where else str(err), method=err.method,
                 where=err.where or None)

    @property
    def failed(self) -> bool:
        return any(f["severity"] == ERROR for f in self.findings)

    def compare(self, what: str, ours, theirs, batch: int, referee=None, kink: np.ndarray | None = None):
        """Classify ours against Keras's; entries at a kink are judged separately (zero_convention)."""
        ours = np.asarray(ours, dtype=np.float64) if ours is not None else None
        if ours is None:
            return
        away = np.ones(np.shape(theirs), dtype=bool) if kink is None else ~kink
        if kink is not None and ours.shape == theirs.shape and kink.any():
            if not np.allclose(ours[kink], theirs[kink], rtol=RTOL, atol=ATOL):
                self.add("zero_convention", WARNING, f"{what} at exactly the kink is {one_line(ours[kink])} where Keras's is "
                         f"{one_line(theirs[kink])}", param=what)
        if ours.shape == theirs.shape:
            ours_away, theirs_away = ours[away], theirs[away]
        else:
            ours_away, theirs_away = ours, theirs
        verdict = classify(ours_away, theirs_away, RTOL, ATOL)
        if verdict is None:
            return
        code, detail = verdict
        severity = ERROR
        if code == "scale_factor":
            c = float(detail)
            detail = f"ours = {c:.6g} x Keras's; likely cause: {scale_cause(c, batch)}"
        if what in ("forward", "loss") and code not in ("nan", "shape_mismatch"):
            code, detail = "forward_mismatch", f"{what} differs from Keras's ({detail})"
        if referee is not None and code not in ("nan", "shape_mismatch") and ours.shape == theirs.shape:
            bad = ~within(ours, theirs, RTOL, ATOL) & away  # the kink is judged above
            detail += "; " + referee(bad)
        self.add(code, severity, f"{what} at batch size {batch}: {detail}", param=what)

    def forward_backward(self, cls, args: tuple, x: np.ndarray, dout: np.ndarray, theirs_out: np.ndarray, batch: int):
        """Build the layer, run forward then backward on copies, watching for writes into them.

        Returns (layer, dx), or None when the user's code failed (already a layer_error finding).
        """
        layer = self.call(cls, "__init__", *args)
        if layer is None:
            return None
        x_in, dout_in = x.copy(), dout.copy()
        out = self.call(layer, "forward", x_in, expect=theirs_out.shape)
        self.check_unchanged("forward", {"x": x}, {"x": x_in})
        if out is None:
            return None
        self.compare("forward", out, theirs_out, batch)
        dx = self.call(layer, "backward", dout_in, expect=x.shape)
        self.check_unchanged("backward", {"dout": dout}, {"dout": dout_in})
        return None if dx is None else (layer, dx)

    def check_unchanged(self, method: str, before: dict[str, np.ndarray], after: dict[str, np.ndarray]):
        for arg, value in before.items():
            if not np.array_equal(value, after[arg], equal_nan=True):
                self.add("input_mutation", WARNING, f"{method} wrote into its argument {arg}", param=arg, method=method)


