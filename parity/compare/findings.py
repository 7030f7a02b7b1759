"""Finding: one thing a check found, as a typed record; it becomes a dict only at the JSON edge.

A layer probe makes its findings as Findings; the whole-run comparison makes each one from a
PendingFinding (parity.compare.pending) once its counts over every chunk are final; the optimizer's
diagnosis, which lives below this package, hands plain records that `Finding.of` types at the one place
they arrive (parity.compare.optimizer_run). Codes and severities are documented in the README's table;
fixes come from parity.diagnosis.fixes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

__all__ = ["Finding", "SEVERITIES", "PHASES"]

SEVERITIES = ("error", "warning", "info")  # error fails the verdict; warning and info do not
PHASES = ("layer probe", "fit", "probe", "batch", "stepping")


@dataclass(frozen=True)
class Finding:
    """One finding. `message` says what was seen, `fix` what to try.

    Where it happened is given by `phase` and at most one of `sample` (probe), `step` (stepping) or
    `batch` (batch probe: the batch's index); `count` is how many rows it covers.
    """

    code: str  # stable: forward_mismatch, sign_flip, mask_mismatch, layer_error, ... (README)
    severity: str  # error | warning | info
    phase: str | None  # layer probe | fit | probe | batch | stepping; None for run-wide facts
    message: str
    fix: str = ""
    layer: str | None = None  # the book class blamed ("Affine", "Relu", ...); None when no class is
    method: str | None = None  # the method of `layer` at fault ("backward", "__init__", ...)
    where: str | None = None  # "file:line" in the code that raised
    layer_number: int | None = None  # the Dense layer concerned, numbered from 1
    param: str | None = None  # the compared quantity: pred, loss, dW1, db1, dx, z1, W1 (after a step), ...
    sample: int | None = None
    step: int | None = None
    batch: int | None = None
    count: int | None = None
    consequence_of: str | None = None  # what explains this one: a phase ("probe", "layer probe") or "optimizer"
    details: dict = field(default_factory=dict)  # code-specific numbers: worst, scale, quantities, sides, ...

    @property
    def location(self) -> str:
        """'sample 12', 'step 3', 'batch 0' or ''."""
        for unit in ("sample", "step", "batch"):
            if getattr(self, unit) is not None:
                return f"{unit} {getattr(self, unit)}"
        return ""

    @classmethod
    def of(cls, record: dict) -> "Finding":
        """From a plain record (the optimizer's diagnosis, summary.json): known keys become fields, the rest `details`."""
        known = {f.name for f in fields(cls)} - {"details"}
        values = {k: v for k, v in record.items() if k in known}
        values.setdefault("phase", None)
        if values.get("layer") is not None and not isinstance(values["layer"], str):
            raise TypeError(f"Finding.layer is a class name, not {values['layer']!r}")
        return cls(**values, details={k: v for k, v in record.items() if k not in known})

    @classmethod
    def from_json(cls, record: dict) -> "Finding":
        """From summary.json's form (as_dict's), tolerating a record of an older version with parts missing."""
        record = {"code": "?", "severity": "info", "message": "", **record}
        if not isinstance(record.get("layer"), (str, type(None))):  # an older summary's layer number
            record["layer"] = str(record["layer"])
        return cls.of(record)

    def as_dict(self) -> dict:
        """The JSON form: every field that is set, and the details beside them."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "details"}
        out = {k: v for k, v in out.items() if v is not None and v != ""} | {"fix": self.fix}
        return {**out, **self.details}
