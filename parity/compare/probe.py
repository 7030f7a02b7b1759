"""One user class probed alone against Keras: its typed findings, and every call into it through
parity.user_code.guard. The layer probes (parity.compare.layer_probes) and the chapter-7 probes
(parity.compare.conv_probes) both collect their findings here."""

from __future__ import annotations

import numpy as np

from parity.compare.diff import ERROR, INFO, WARNING
from parity.compare.findings import Finding
from parity.compare.phase_findings import one_line
from parity.compare.probe_inputs import rng
from parity.diagnosis.fixes import fix_for
from parity.diagnosis.mismatch import classify, said_scale
from parity.settings.tolerances import within
from parity.user_code import guard
from parity.user_code.guard import UserCodeError

__all__ = ["RTOL", "ATOL", "rng", "Probe", "map_position"]

RTOL, ATOL = 1e-10, 1e-12  # both sides compute the same float64 formulas at O(1) values
_PART = {"forward": "forward", "loss": "loss"}  # which part of a layer computes a compared quantity; else backward


def map_position(index) -> str:
    """An entry of an (N, C, H, W) map as dead_filters names a convolution's output: its sample, filter, row and col."""
    n, c, h, w = (int(i) for i in index)
    return f"sample {n}, filter {c} (row {h}, col {w})"


class Probe:
    """Collects the findings of one user class; every call into it goes through `parity.user_code.guard`."""

    def __init__(self, name: str):
        self.name = name
        self.findings: list[Finding] = []

    def add(self, code: str, severity: str, message: str, param: str | None = None, method: str | None = None,
            where: str | None = None, fix: str | None = None):
        """One finding per code and quantity, on this class, with this class's fix for the code (or `fix`, where the
        class's own state shows that the table's advice is already followed)."""
        if not any(f.code == code and f.param == param for f in self.findings):
            text = message if code == "layer_error" else f"{self.name}: {message}"
            fix = fix if fix is not None else fix_for(code, self.name) if severity != INFO else ""
            self.findings.append(Finding(code, severity, "layer probe", text, fix, layer=self.name, method=method,
                                         where=where, param=param))

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
        return any(f.severity == ERROR for f in self.findings)

    def compare(self, what: str, ours, theirs, batch: int, referee=None, kink: np.ndarray | None = None,
                kink_note: tuple[str, str] | None = None, on: str | None = None):
        """Classify ours against Keras's; entries at a kink are judged separately (zero_convention), unless a mask
        that is wrong away from the kink explains them too. `kink_note`: (what to add to a zero_convention message,
        its fix), for a class whose mask already is what the default fix would advise. `on` says what the input was
        where it is not a batch of rows (an (N, C, H, W) map): a mismatch then names its first (filter, row, col)."""
        ours = np.asarray(ours, dtype=np.float64) if ours is not None else None
        if ours is None:
            return
        away = np.ones(np.shape(theirs), dtype=bool) if kink is None else ~kink
        if ours.shape == theirs.shape:
            ours_away, theirs_away = ours[away], theirs[away]
        else:
            ours_away, theirs_away = ours, theirs
        forward = what in ("forward", "loss")  # an output is said in forward words: no gradient flows in it
        verdict = classify(ours_away, theirs_away, RTOL, ATOL, "output" if forward else "gradient")
        if kink is not None and ours.shape == theirs.shape and kink.any() and (verdict or ("",))[0] != "mask_mismatch":
            if not np.allclose(ours[kink], theirs[kink], rtol=RTOL, atol=ATOL):
                note, fix = kink_note or ("", None)
                self.add("zero_convention", WARNING, f"{what} at exactly the kink is {one_line(ours[kink])} where Keras's is "
                         f"{one_line(theirs[kink])}{note}", param=what, fix=fix)
        if verdict is None:
            return
        code, detail = verdict
        if code == "scale_factor":
            detail = said_scale(float(detail), batch, _PART.get(what, "backward"), np.size(theirs_away) == 1)
        if forward and code not in ("nan", "shape_mismatch"):
            code, detail = "forward_mismatch", f"{'the output' if what == 'forward' else 'the loss'} differs from " \
                                               f"Keras's ({detail})"
        bad = ~within(ours, theirs, RTOL, ATOL) & away if ours.shape == theirs.shape else None  # kink judged above
        if on is not None and bad is not None and bad.ndim == 4 and bad.any():
            detail += "; first at " + map_position(np.argwhere(bad)[0])
        if referee is not None and code not in ("nan", "shape_mismatch") and bad is not None:
            detail += "; " + referee(bad)
        self.add(code, ERROR, f"{what} {f'on {on}' if on else f'at batch size {batch}'}: {detail}", param=what)

    def forward_backward(self, cls, args: tuple, x: np.ndarray, dout: np.ndarray, theirs_out: np.ndarray, batch: int,
                         on: str | None = None):
        """Build the layer, run forward then backward on copies, watching for writes into them (`on`: as compare's).

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
        self.compare("forward", out, theirs_out, batch, on=on)
        dx = self.call(layer, "backward", dout_in, expect=x.shape)
        self.check_unchanged("backward", {"dout": dout}, {"dout": dout_in})
        return None if dx is None else (layer, dx)

    def check_unchanged(self, method: str, before: dict[str, np.ndarray], after: dict[str, np.ndarray]):
        for arg, value in before.items():
            if not np.array_equal(value, after[arg], equal_nan=True):
                self.add("input_mutation", WARNING, f"{method} wrote into its argument {arg}", param=arg, method=method)
