"""One sample on both sides, as the seed notebook printed it: x, every layer's W, z and ReLU mask, the gradients
(named as the report names them: dW1, db1, ..., dx), and whether the sides agree; then what a dead unit did to dW."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parity.compare.dead_units import unit_label, unit_name
from parity.compare.phase_findings import one_line
from parity.errors import ParityInputError, arg

__all__ = ["SampleView", "check_sample", "sample_view"]


def check_sample(sample, samples: int, whole: bool = True) -> int:
    """`sample` as a probed sample's index, or a ParityInputError naming the argument. `whole`: the probe is kept
    in memory (not computed in chunks), as showing a sample needs."""
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)):
        raise ParityInputError(f"{arg('sample')} must be an integer, a sample's index (received: {sample!r})")
    if not 0 <= sample < samples:
        raise ParityInputError(f"{arg('sample')} must be a sample's index, from 0 to {samples - 1} "
                               f"(received: {sample})")
    if not whole:
        raise ParityInputError(f"{arg('sample')} needs the probe kept in memory, and a run of {samples:,} samples is "
                               f"probed in chunks: use fewer {arg('samples')} (received: {arg('sample')} {sample})")
    return int(sample)


@dataclass(frozen=True)
class SampleView:
    """What `Report.sample(i)` returns: its text is the view (printed, and shown as text in a notebook)."""

    sample: int
    text: str

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


def _agree(diff, row: int) -> str:
    if diff is None:
        return "not compared (its shape differs: see the findings)"
    if diff.within[row]:
        return "agree"
    if not diff.finite[row]:
        return "DIFFER: not finite"
    return f"DIFFER by {diff.max_abs[row]:.3g} ({diff.used[row]:.3g} times the tolerance)"


def _table(lines: list[tuple[str, str, str, str]]) -> list[str]:
    """Rows of (name, numpy, keras, agreement), columns aligned."""
    widths = [max(len(line[k]) for line in lines) for k in range(3)]
    return [f"  {name:<{widths[0]}}  numpy {ours:<{widths[1]}}  keras {theirs:<{widths[2]}}  {said}".rstrip()
            for name, ours, theirs, said in lines]


FEW_DEAD = 2  # dead units described one by one, values included; more are named in one line


def _mask(mask: np.ndarray) -> str:
    """A ReLU mask as the book's Relu keeps it (True where dead), at most 6 entries."""
    flat = [str(bool(v)) for v in mask.reshape(-1)]
    return "[" + ", ".join(flat if len(flat) <= 6 else [*flat[:3], "...", *flat[-3:]]) + "]"


def _lesson(result, phase, row: int) -> list[str]:
    """The ReLU units dead on this sample (Keras's z <= 0): their column of dW on both sides, beside their W."""
    dead = [(layer, int(j)) for layer, d in phase.dead_keras.items() for j in np.flatnonzero(d[row])]
    if not dead:
        return ["no ReLU unit is dead on this sample: gradient flows into every unit's dW"] if phase.dead_keras else []
    lines, plain = [], []
    for layer, j in dead:
        name = f"W{layer}"
        ours, theirs = phase.numpy.grads[name][row][:, j], phase.keras.grads[name][row][:, j]
        w = result.fitted[name][:, j]
        if (ours == 0).all() and (theirs == 0).all() and (w != 0).any():
            plain.append((layer, j))
        if len(dead) > FEW_DEAD and (layer, j) in plain:
            continue
        head = (f"{unit_name(unit_label(layer, j))} is dead here (z{layer} = {phase.keras.z[layer][row, j]:.6g} <= 0): "
                f"d{name}[:, {j}] ")
        if (ours == 0).all() and (theirs == 0).all():
            said = "is exactly 0 on both sides"
        elif (theirs == 0).all():
            said = f"is exactly 0 on Keras's side but {one_line(ours)} on the NumPy side, which passed gradient there"
        else:
            said = f"is {one_line(ours)} on the NumPy side and {one_line(theirs)} on Keras's"
        lines.append(head + said + f", while {name}[:, {j}] = {one_line(w)} is "
                     + ("not 0: a dead ReLU zeroes dW for this sample, not W" if (w != 0).any() else "0"))
    if len(dead) > FEW_DEAD and plain:
        named = "; ".join(f"layer {layer}, unit{'s' * (len(units) > 1)} {', '.join(map(str, units))}"
                          for layer in dict.fromkeys(l for l, _ in plain)
                          for units in [[j for l, j in plain if l == layer]])
        lines.insert(0, f"dead here (z <= 0): {named}. For each, its column of dW is exactly 0 on both sides, while its "
                        "column of W is not 0: a dead ReLU zeroes dW for this sample, not W")
    return lines


def sample_view(result, data, sample: int) -> SampleView:
    """Sample `sample` of the probe (each sample alone through both sides, at the fitted weights), both sides."""
    phase = result.probe
    row = int(np.flatnonzero(phase.rows == sample)[0])
    ours, theirs, diffs = phase.numpy, phase.keras, phase.diffs
    split = data.split(np.array([sample]))[0]
    lines = [f"sample {sample} of {len(data):,} ({split}), alone through each side at the fitted weights: "
             f"x = {one_line(data.x[sample])}, y = {one_line(data.y[sample])}; verdict {phase.verdicts[row]}"]
    rows = []
    last = len(result.spec.layers)
    for layer, spec in enumerate(result.spec.layers, start=1):
        rows.append((f"W{layer}", one_line(result.fitted[f"W{layer}"]), "the same (the fitted weights)", ""))
        rows.append((f"b{layer}", one_line(result.fitted[f"b{layer}"]), "the same", ""))
        if layer == last:
            rows.append(("pred", one_line(ours.pred[row]), one_line(theirs.pred[row]), _agree(diffs.get("pred"), row)))
            continue
        rows.append((f"z{layer}", one_line(ours.z[layer][row]), one_line(theirs.z[layer][row]),
                     _agree(diffs.get(f"z{layer}"), row)))
        if layer in phase.dead_keras:
            mine, keras = phase.dead_numpy[layer][row], phase.dead_keras[layer][row]
            rows.append((f"mask{layer}", _mask(mine), _mask(keras),
                         "agree (mask = z <= 0: True where dead)" if (mine == keras).all() else "DIFFER"))
    rows.append(("loss", one_line(ours.loss[row]), one_line(theirs.loss[row]), _agree(diffs.get("loss"), row)))
    for name in theirs.grads:
        rows.append((f"d{name}", one_line(ours.grads[name][row]), one_line(theirs.grads[name][row]),
                     _agree(diffs.get(f"d{name}"), row)))
    rows.append(("dx", one_line(ours.dx[row]), one_line(theirs.dx[row]), _agree(diffs.get("dx"), row)))
    lines += _table(rows)
    lines += _lesson(result, phase, row)
    return SampleView(sample, "\n".join(lines))
