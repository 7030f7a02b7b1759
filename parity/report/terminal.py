"""The terminal summary of a run: what ran, the verdict and what it excused, one line per root cause,
the dead-ReLU lesson in a line or two, and where the report is. `verbose` adds every finding in full."""

from __future__ import annotations

from pathlib import Path

from parity.compare.dead_units import unit_name
from parity.compare.findings import Finding
from parity.compare.root_causes import followers_text, root_causes
from parity.report.dead_filters import dead_filters_line, percent

__all__ = ["terminal_text", "scenario_using"]

FEW_UNITS = 4  # up to this many hidden units are named one by one; more are counted per layer
_UNITS = {"probe": ("sample", "samples"), "batch": ("batch", "batches"), "stepping": ("step", "steps")}


def _count(n: int, phase: str) -> str:
    one, many = _UNITS.get(phase, ("row", "rows"))
    return f"{n:,} {one if n == 1 else many}"


def scenario_using(name: str) -> str | None:
    """The first built-in scenario whose NumPy stack uses the book class `name`."""
    from parity.settings.spec import ModelSpec
    from parity.settings.scenarios import SCENARIOS

    for scenario, s in SCENARIOS.items():
        if name in ModelSpec(input_dim=1, layers=s.layers, loss=s.loss, features=s.features).classes():
            return scenario
    return None


def _verdict(result) -> list[str]:
    tol, c = result.tolerance, result.config
    counts = []
    for phase, s in result.summaries.items():
        unjudged = f" ({s.verdicts['unjudged']} unjudged)" if s.verdicts.get("unjudged") else ""  # parity.compare.resync
        counts.append(f"{phase} {s.verdicts['pass'] + s.verdicts['kink'] + s.verdicts['convention']}/{s.rows}{unjudged}")
    within = f"{', '.join(counts)} within rtol={tol.rtol:g} atol={tol.atol:g}"
    errors = [f for f in result.findings if f.severity == "error"]
    unused = sorted({f.layer for f in errors if f.phase == "layer probe" and f.layer not in result.spec.classes()})
    if errors and all(f.phase == "layer probe" and f.layer in unused for f in errors):
        elsewhere = [f"--scenario {s} uses {name}" for name in unused if (s := scenario_using(name))]
        model = "your saved model" if c.model_path is not None else f"the {c.scenario} scenario"
        lines = [f"verdict: FAIL, only from the layer probe of your {' and '.join(unused)}, which {model} never uses "
                 f"({within})"
                 + (f"; {', '.join(elsewhere)}" if elsewhere else "")]
    else:
        lines = [f"verdict: {result.verdict.upper()}  ({within})"]
    kinks = {phase: s.verdicts["kink"] for phase, s in result.summaries.items() if s.verdicts["kink"]}
    if kinks:
        lines.append("excused: " + ", ".join(_count(n, p) + f" ({p})" for p, n in kinks.items())
                     + " at the ReLU kink: the sides' dead masks differ only where a pre-activation is within "
                       "rounding of 0 (atol), where either side may round across; everything else on them agrees")
    convention = {phase: s.verdicts["convention"] for phase, s in result.summaries.items() if s.verdicts["convention"]}
    book = (result.optimizer or {}).get("book_class")
    if convention.get("stepping") and any(f.code == "convention" and f.phase == "stepping" and f.layer == book
                                          for f in result.findings):  # the optimizer's convention, not the log's
        lines.append(f"excused: {_count(convention.pop('stepping'), 'stepping')} (stepping) by {book}'s convention "
                     "named below: the same layers stepped with Keras's formula match Keras's steps on each of them")
    if convention:
        lines.append("excused: the loss on " + ", ".join(_count(n, p) + f" ({p})" for p, n in convention.items())
                     + ", by no more than the book's log(y + 1e-7) explains (1e-7 / y): a convention, not a bug; "
                       "predictions and gradients agree")
    return lines


def _whose(result, used: set[str]) -> list[str]:
    """A check's classes: the user's, and what the reference stands in for (a run of the reference says nothing)."""
    if not result.layers:
        return []
    optimizer = result.optimizer or {}
    yours = [n for n, w in result.layers.items() if n in used and w != "reference"]
    reference = [n for n, w in result.layers.items() if n in used and w == "reference"]
    if optimizer.get("class", "").startswith("yours"):
        yours.append(optimizer["book_class"])
    elif optimizer.get("book_class"):
        reference.append(optimizer["book_class"])
    stand_in = f"the reference stands in for {', '.join(reference)}" if reference else "no reference stands in"
    return [f"checked: {'your ' + ', '.join(yours) if yours else 'none of your classes'}; {stand_in}"]


def _differences(result) -> str:
    counted = {f"{phase}.{name}": v for phase, s in result.summaries.items() for name, v in s.used_counted.items()}
    worst = sorted(result.max_abs_diff().items(), key=lambda kv: -kv[1])[:3]
    text = "largest differences: " + ", ".join(f"{k} {v:.3g}" for k, v in worst)
    if not counted:
        return text
    name, used = max(counted.items(), key=lambda kv: kv[1])
    excused = any(s.verdicts["kink"] or s.verdicts["convention"] for s in result.summaries.values())
    aside = " (excused rows aside)" if excused else ""
    if used <= 1 and result.verdict == "fail":
        return text  # the failures are rows that raised or were not compared: no tolerance was nearly met
    if used <= 1:
        return text + f"; closest to the tolerance{aside}: {name}, {used:.1%} of it"
    return text + f"; furthest beyond the tolerance{aside}: {name}, {used:.3g} times it"


def _at(f: Finding) -> str:
    """' (layers.ipynb, cell 5, line 3)': where the finding's class or statement is, unless its message says it."""
    return f" ({f.where})" if f.where and f.where not in f.message else ""


def _root_line(root: Finding, followers: list[Finding], used: set[str]) -> str:
    line = f"  [{root.severity}] {root.code}: {root.message}{_at(root)}"
    if root.phase == "layer probe" and root.layer and root.layer not in used:
        other = scenario_using(root.layer)
        line += f" (this run never uses {root.layer}" + (f"; --scenario {other} does)" if other else ")")
    if followers:
        line += f" [+{followers_text(followers)}]"
    if root.fix:
        line += f"; fix: {root.fix}"
    return line


def _share(fraction: dict) -> str:
    text = percent(fraction["keras"])
    return text if fraction["numpy"] == fraction["keras"] else f"{text} (NumPy {percent(fraction['numpy'])})"


def _units(title: str, fractions: dict[str, dict], rows: int) -> str | None:
    """One line for the dead (or saturated) units: each named when few, else counted per layer."""
    if not fractions:
        return None
    head = f"{title} (share of the {rows:,} probed samples): "
    if len(fractions) <= FEW_UNITS:
        return head + "; ".join(f"{unit_name(u)} {_share(f)}" for u, f in fractions.items())
    parts = []
    for layer in dict.fromkeys(u.split(".")[0] for u in fractions):
        units = {u.split(".")[1]: f["keras"] for u, f in fractions.items() if u.split(".")[0] == layer}
        every = [j for j, f in units.items() if f >= 1]
        never = [j for j, f in units.items() if f <= 0]
        some = [f for f in units.values() if 0 < f < 1]
        bits = []
        if every:
            bits.append(f"{len(every)} on every sample (unit{'s' * (len(every) != 1)} {', '.join(every)})")
        if some:
            bits.append(f"{len(some)} on some ({percent(min(some))} to {percent(max(some))})")
        if never:
            bits.append(f"{len(never)} on none")
        parts.append(f"layer {layer}, {len(units)} units: " + ", ".join(bits))
    return head + "; ".join(parts)


def _lesson(result) -> str | None:
    """The notebook's observation over the stepping run, Keras's side: dW is 0 on dead steps, W is not. On a failing
    run, a second line says what the NumPy side did there: where it passed gradient Keras's ReLU blocked, or blocked
    gradient Keras's passed (count, first sample), or that its dW was 0 exactly where Keras's was."""
    rows = [r for r in result.dead_relu_steps if r["side"] == "keras" and r["dead_steps"]]
    if not rows:
        return None
    steps = rows[0]["steps"]
    if len(result.dead_relu_steps) // 2 <= FEW_UNITS:
        dead = ", ".join(f"{unit_name(r['unit'])} on {r['dead_steps']} of {steps} steps" if k == 0 else
                         f"{unit_name(r['unit'])} on {r['dead_steps']}" for k, r in enumerate(rows))
    else:
        total = sum(r["dead_steps"] for r in rows)
        dead = (f"{len(rows)} of {len(result.dead_relu_steps) // 2} units dead on at least one of the {steps} steps "
                f"({total:,} unit-steps in all)")
    n = sum(r["dead_steps"] for r in rows)
    zero, still, nonzero = (sum(r[k] for r in rows) for k in ("dW_zero_when_dead", "W_unchanged_when_dead",
                                                               "W_nonzero_when_dead"))
    if zero == still == nonzero == n:
        seen = "on every one of those steps Keras's dW for the unit was exactly 0 and its W did not move, though W was not 0"
    else:
        seen = (f"on {zero} of those {n} Keras's dW for the unit was exactly 0, on {still} its W did not move, "
                f"and W was nonzero on {nonzero}")
    if result.verdict == "pass":
        return f"dead while stepping: {dead}; {seen}: a dead ReLU zeroes dW for that sample, not W"
    return (f"dead while stepping, on Keras's side: {dead}; {seen}: a dead ReLU zeroes dW for that sample, not W\n"
            + _leaks(result))


def _leaks(result) -> str:
    """What the NumPy side did where Keras's ReLU blocked gradient (parity.compare.dead_units.gradient_leaks)."""
    from parity.compare.dead_units import gradient_leaks

    whose = "on your side" if any(w != "reference" for w in result.layers.values()) else "on the NumPy side"
    phase = result.probe if result.probe is not None else result.stepping
    where = f"of the {phase.rows.size:,} probed samples" if phase is result.probe else f"of the {phase.rows.size:,} steps"
    leaks = gradient_leaks(phase)
    parts = []
    for key, did in (("passed", "gradient passed where Keras's ReLU blocked it: {p} was not 0 where Keras's was "
                                "exactly 0"),
                     ("blocked", "gradient was blocked where Keras's ReLU passed it: {p} was 0 where Keras's was not")):
        hit = [r for r in leaks if r[key]]
        if not hit:
            continue
        first = hit[0]
        counted = (", ".join(f"{unit_name(r['unit'])} on {r[key]:,}" + (f" {where}" if k == 0 else "")
                             + f" (first at {phase.unit} {r[f'first_{key}']})" for k, r in enumerate(hit))
                   if len(hit) <= FEW_UNITS else
                   f"{len(hit)} of {len(leaks)} units, {sum(r[key] for r in hit):,} unit-rows {where} (first: "
                   f"{unit_name(first['unit'])} at {phase.unit} {first[f'first_{key}']})")
        parts.append(did.format(p=" and ".join(dict.fromkeys(r["param"] for r in hit))) + f" for {counted}")
    compared = min((r["compared"] for r in leaks), default=0)
    if not parts and compared == phase.rows.size:
        # dW is judged per Dense unit only (a filter's kernel sums over its positions): a map's mask is not cleared here
        mask = "a Dense ReLU unit's mask" if result.dead_filters else "the ReLU mask"
        return (f"{whose}, dW was exactly 0 wherever Keras's was, {where.replace('of the', 'on all')}: the failure "
                f"is not in {mask}")
    if not parts and compared == 0:
        return (f"{whose}, dW could not be compared with Keras's on any {where} (not finite, or "
                "not of W's shape: see the findings above), so where gradient passed a dead unit is not known")
    if not parts:
        return (f"{whose}, dW was exactly 0 wherever Keras's was on the {compared:,} {where} where it could be "
                "compared; on the others it was not finite or not of W's shape (see the findings above)")
    return f"{whose}, " + "; and ".join(parts)


def _files(out: Path | None, files: list[str]) -> str:
    """The last line: the absolute path of report.html, a path any terminal or browser opens, and what lies beside it."""
    if out is None or not files:
        return "reports: not written (pass out= or --out to write them)"
    folder = Path(out).absolute()
    plots = [f for f in files if f.endswith(".png")]
    named = [f for f in files if not f.endswith(".png") and f != "report.html"]
    shown = named + ([f"{len(plots)} plot{'s' * (len(plots) != 1)}"] if plots else [])
    if "report.html" not in files:
        return f"reports: {folder}/ ({', '.join(shown)})"
    return f"report: {folder / 'report.html'} (beside it: {', '.join(shown)})"


def _modes(modes: dict) -> str:
    """One line: the mode each phase ran Dropout and BatchNormalization in (parity.compare.modes), and the masks' route."""
    routes = "; ".join(f"{layer}: {', '.join(r) or 'not run'}" for layer, r in modes.get("dropout_routes", {}).items())
    return ("modes: probe in test mode, batch and stepping in training mode (batch-wise): " + modes["batch"].split(": ", 1)[1]
            + (f"; Dropout masks {routes}" if routes else ""))


def terminal_text(result, out: Path | None, files: list[str], verbose: bool = False) -> str:
    """The run as a person reads it at the terminal: at most about 15 lines for a passing run."""
    c = result.config
    used = result.spec.classes()
    lines = [f"keras-parity: scenario {c.scenario}, {c.dtype}, {c.samples} samples ({c.train} train), "
             f"{c.epochs} epochs, lr {c.lr}, batch {c.batch_size}, seed {c.seed}"]
    if result.keras_side.get("source") == "recorded":
        lines.append(f"Keras side: {result.keras_side['summary']} ({result.keras_side['recording']})")
    lines += _verdict(result)
    lines += [_modes(result.modes)] if result.modes else []
    lines += _whose(result, used)
    lines.append(_differences(result))
    if result.optimizer and result.optimizer.get("name") != "sgd":
        o = result.optimizer
        mine = ", ".join(f"{k} {v:g}" for k, v in o["hyperparameters"]["run"].items())
        theirs = ", ".join(f"{k}={v}" for k, v in o["keras"]["arguments"].items())
        lines.append(f"optimizer: {o['name']} ({mine}), {o['class']}; Keras: {o['keras']['class']}({theirs})")
    groups = [(root, followers) for root, followers in root_causes(result.findings) if root.severity != "info"]
    if verbose:
        for root, followers in groups:
            for k, f in enumerate([root, *followers]):
                lead = "  " if k == 0 else "    follows from the above: "
                lines.append(f"{lead}[{f.severity}] {f.code}: {f.message}{_at(f)}")
                if f.fix and k == 0:
                    lines.append(f"      fix to try: {f.fix}")
        lines += [f"  [info] {f.code}: {f.message}{_at(f)}" for f in result.findings if f.severity == "info"]
    else:
        lines += [_root_line(root, followers, used) for root, followers in groups]
    rows = result.summaries["probe"].rows
    lines += [line for line in (_units("dead ReLU units", result.dead_units["fraction_dead"], rows),
                                dead_filters_line(result.dead_filters, rows),
                                None if verbose else _lesson(result),  # verbose: each unit's sentence above
                                _units("saturated sigmoid units", result.saturated_units, rows)) if line]
    lines.append(_files(out, files))
    return "\n".join(lines)
