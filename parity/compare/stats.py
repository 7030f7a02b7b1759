"""What a phase comes to, as numbers that add up across chunks: a run of any size is summarized in bounded memory.

A PhaseSummary is made from one PhaseResult (a chunk of rows) and merged with the next; summing,
taking maxima and keeping the first offender give the same summary whether the rows came in one
chunk or many.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from parity.compare.diff import VERDICTS, PhaseResult, row_any

__all__ = ["PhaseSummary"]


def _sum(a: dict, b: dict) -> dict:
    return {k: a.get(k, 0) + b.get(k, 0) for k in {**a, **b}}


@dataclass
class PhaseSummary:
    phase: str
    rows: int
    verdicts: dict[str, int]
    max_abs: dict[str, float]
    used: dict[str, float]
    used_counted: dict[str, float]  # as `used`, over the rows that pass or fail: excused ones (kink, convention) aside
    zero_patterns: dict[str, dict[str, int]]
    dead_counts: dict[str, dict[str, int]]  # unit label -> {"numpy": n, "keras": n} rows dead
    dead_everywhere: dict[str, bool]
    saturated_counts: dict[str, dict[str, int]]
    classes: dict[str, int] = field(default_factory=dict)
    # convolution followed by a ReLU -> {"numpy"/"keras": (FN, OH, OW) rows on which each position is dead (its
    # pre-activation <= 0), "differ": rows on which the sides disagree about it}
    dead_map_counts: dict[int, dict[str, np.ndarray]] = field(default_factory=dict)

    @classmethod
    def of(cls, result: PhaseResult, classifies: bool = False, relu_maps: dict | None = None) -> "PhaseSummary":
        """`relu_maps` (convolution -> output map (FN, OH, OW)) are counted position by position; without, none."""
        zero = {}
        for name, d in result.diffs.items():
            if d.kind == "gradient":
                n = len(d.numpy)
                zero_numpy, zero_keras = (d.numpy == 0).reshape(n, -1), (d.keras == 0).reshape(n, -1)
                differ = int(row_any(zero_numpy != zero_keras).sum())
                zero[name] = {"rows_agree": n - differ, "rows_differ": differ,
                              "zero_entries_numpy": int(np.count_nonzero(zero_numpy)),
                              "zero_entries_keras": int(np.count_nonzero(zero_keras))}
        dead, everywhere = {}, {}
        for layer, mask in result.dead_keras.items():
            for j in range(mask.shape[1]):
                label = f"{layer}.{j}"
                dead[label] = {"numpy": int(result.dead_numpy[layer][:, j].sum()), "keras": int(mask[:, j].sum())}
                everywhere[label] = bool(mask[:, j].all() and result.dead_numpy[layer][:, j].all())
        counted = np.isin(result.verdicts, ("pass", "fail"))
        saturated = {f"{layer}.{j}": {"numpy": int(result.saturated_numpy[layer][:, j].sum()), "keras": int(sat[:, j].sum())}
                     for layer, sat in result.saturated_keras.items() for j in range(sat.shape[1])}
        classes = {}
        if classifies:
            ours, theirs = result.numpy.pred.argmax(axis=1), result.keras.pred.argmax(axis=1)
            classes = {"predicted_class_agree": int((ours == theirs).sum()),
                       "predicted_class_differ": int((ours != theirs).sum())}
        return cls(
            phase=result.phase, rows=len(result.rows),
            verdicts={str(v): int((result.verdicts == v).sum()) for v in VERDICTS},
            max_abs={name: float(d.max_abs.max(initial=0.0)) for name, d in result.diffs.items()},
            used={name: float(d.used.max(initial=0.0)) for name, d in result.diffs.items()},
            used_counted={name: float(d.used[counted].max(initial=0.0)) for name, d in result.diffs.items()},
            zero_patterns=zero, dead_counts=dead, dead_everywhere=everywhere, saturated_counts=saturated,
            classes=classes, dead_map_counts=_dead_maps(result, relu_maps or {}),
        )

    def merge(self, other: "PhaseSummary") -> "PhaseSummary":
        return PhaseSummary(
            phase=self.phase, rows=self.rows + other.rows, verdicts=_sum(self.verdicts, other.verdicts),
            max_abs={k: max(self.max_abs.get(k, 0.0), other.max_abs.get(k, 0.0)) for k in {**self.max_abs, **other.max_abs}},
            used={k: max(self.used.get(k, 0.0), other.used.get(k, 0.0)) for k in {**self.used, **other.used}},
            used_counted={k: max(self.used_counted.get(k, 0.0), other.used_counted.get(k, 0.0))
                          for k in {**self.used_counted, **other.used_counted}},
            zero_patterns={k: _sum(self.zero_patterns.get(k, {}), other.zero_patterns.get(k, {}))
                           for k in {**self.zero_patterns, **other.zero_patterns}},
            dead_counts={k: _sum(self.dead_counts.get(k, {}), other.dead_counts.get(k, {}))
                         for k in {**self.dead_counts, **other.dead_counts}},
            dead_everywhere={k: self.dead_everywhere.get(k, True) and other.dead_everywhere.get(k, True)
                             for k in {**self.dead_everywhere, **other.dead_everywhere}},
            saturated_counts={k: _sum(self.saturated_counts.get(k, {}), other.saturated_counts.get(k, {}))
                              for k in {**self.saturated_counts, **other.saturated_counts}},
            classes=_sum(self.classes, other.classes),
            dead_map_counts={k: _sum(self.dead_map_counts.get(k, {}), other.dead_map_counts.get(k, {}))
                             for k in {**self.dead_map_counts, **other.dead_map_counts}},
        )

    def dead_units(self) -> dict:
        """Per ReLU unit, the fraction of rows on which it is dead, per side; and units dead on every row."""
        rows = max(self.rows, 1)
        return {"fraction_dead": {u: {side: c[side] / rows for side in ("numpy", "keras")}
                                  for u, c in self.dead_counts.items()},
                "dead_on_every_sample": [u for u, everywhere in self.dead_everywhere.items() if everywhere]}

    def dead_filters(self) -> dict:
        """Per convolution followed by a ReLU (its parameter number, a string), per filter: how its positions are
        dead over the rows, decided by Keras's map as a Dense unit is by Keras's z; NumPy's beside it."""
        rows, out = max(self.rows, 1), {}
        for layer, counts in sorted(self.dead_map_counts.items()):
            keras, numpy = counts["keras"], counts["numpy"]  # (FN, OH, OW)
            out[str(layer)] = {"map": list(keras.shape), "filters": [{
                "filter": j, "positions": int(keras[j].size),
                "dead_on_every_sample": int((keras[j] == self.rows).sum()),
                "dead_on_no_sample": int((keras[j] == 0).sum()),
                "share_dead": {"numpy": float(numpy[j].mean() / rows), "keras": float(keras[j].mean() / rows)},
                "mask_differs": int(counts["differ"][j].sum()),  # (sample, position) pairs the sides disagree on
            } for j in range(len(keras))],
                "fraction_dead": {side: (counts[side] / rows).tolist() for side in ("numpy", "keras")}}
        return out

    def saturated_units(self) -> dict:
        rows = max(self.rows, 1)
        return {u: {side: c[side] / rows for side in ("numpy", "keras")} for u, c in self.saturated_counts.items()}


def _dead_maps(result: PhaseResult, relu_maps: dict) -> dict[int, dict[str, np.ndarray]]:
    """Per ReLU convolution compared in this phase, the rows on which each map position is dead, per side."""
    out = {}
    for layer, shape in relu_maps.items():
        if layer in result.keras.maps and result.numpy.maps.get(layer) is not None:
            n = len(result.rows)
            keras = result.keras.maps[layer].reshape(n, *shape) <= 0  # (n, FN, OH, OW): channel-major, as recorded
            ours = result.numpy.maps[layer].reshape(n, *shape)  # NaN where it could not be compared: neither dead nor not
            numpy = ours <= 0
            differ = (numpy != keras) & np.isfinite(ours)
            out[layer] = {"numpy": numpy.sum(axis=0), "keras": keras.sum(axis=0), "differ": differ.sum(axis=0)}
    return out
