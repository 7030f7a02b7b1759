"""The tables of report.html: dead units, worst differences, key-value settings; and the page's text helpers.

Pure functions of summary.json's parts, each tolerant of missing keys; every string from the summary
goes through `esc` (or `message`), since it can hold a user's text.
"""

from __future__ import annotations

import html
import math
import re

from parity.compare.dead_units import unit_name

__all__ = ["PHASES", "dead_units_table", "differences_table", "esc", "key_values", "message", "number"]

PHASES = ("probe", "batch", "stepping")


def esc(value) -> str:
    """Any value as HTML text: <, >, & and quotes escaped."""
    return html.escape(str(value), quote=True)


def message(value) -> str:
    """A finding's message, escaped, its unit labels ("unit 1.1") named as units ("layer 1, unit 1")."""
    return esc(re.sub(r"\bunit (\d+)\.(\d+)\b", r"layer \1, unit \2", str(value)))


def number(value) -> str:
    """3 significant digits; integers with thousands separators; "inf"/"nan" strings as they are."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return esc(value)  # "inf" and "nan" arrive as strings from the JSON edge
    if isinstance(value, int):
        return f"{value:,}"
    return "0" if value == 0 else (f"{value:.3g}" if math.isfinite(value) else str(value))


def dead_units_table(s: dict) -> str:
    fractions = s.get("dead_units", {}).get("fraction_dead", {})
    steps = s.get("dead_relu_steps", [])
    if not fractions and not steps:
        return "<p>This model has no ReLU layer, so no unit can be dead.</p>" + _saturated(s)
    out = ["<p>A ReLU unit is <b>dead</b> on a sample when its pre-activation z = xW + b is &lt;= 0: it outputs 0 and "
           "passes no gradient back. For that sample the unit's <b>gradient</b> dW is exactly 0; its <b>weights</b> W "
           "are not 0, they just do not move on that step.</p>"]
    everywhere = set(s.get("dead_units", {}).get("dead_on_every_sample", []))
    by_unit: dict[str, dict[str, dict]] = {}
    for r in steps:
        by_unit.setdefault(str(r.get("unit", "?")), {})[str(r.get("side", "?"))] = r
    out.append("<table><tr><th rowspan=2>unit</th><th colspan=2>dead on (share of the probed samples)</th>"
               "<th rowspan=2>stepping (one SGD step per training sample), checked step by step</th></tr>"
               "<tr><th>NumPy side</th><th>Keras side</th></tr>")
    for label in dict.fromkeys([*fractions, *by_unit]):
        f, sides = fractions.get(label, {}), by_unit.get(label, {})
        said = {side: _steps_sentence(r) for side, r in sides.items()}
        if len(set(said.values())) == 1 and len(said) == 2:
            story = esc("both sides: " + said["keras"])
        else:
            story = "<br>".join(f"{esc(side)}: {esc(text)}" for side, text in said.items())
        if label in everywhere:
            story = "<b>dead on every sample: it never learns.</b> " + story
        out.append(f"<tr><td class=unit>{esc(unit_name(label))}</td><td class=num>{_share(f.get('numpy', ''))}</td>"
                   f"<td class=num>{_share(f.get('keras', ''))}</td><td>{story}</td></tr>")
    out.append("</table>")
    return "".join(out) + _saturated(s)


def _share(value) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) and not isinstance(value, bool) else esc(value)


def _steps_sentence(r: dict) -> str:
    n, steps = r.get("dead_steps", 0), r.get("steps", 0)
    if not n:
        return f"alive on all {steps} steps; W moved on {r.get('W_changed_when_alive', 0)} of them"
    zero, still, nonzero = (r.get(k, 0) for k in ("dW_zero_when_dead", "W_unchanged_when_dead", "W_nonzero_when_dead"))
    if zero == still == nonzero == n:
        text = (f"dead on {n} of {steps} steps; on all of them dW was exactly 0 and W did not move, "
                "while W itself was nonzero")
    else:
        text = (f"dead on {n} of {steps} steps; dW was exactly 0 on {zero} of them and W did not move on {still} "
                f"(W itself was nonzero on {nonzero}): with correct layers each would be {n}")
    alive = steps - n
    moved = r.get("W_changed_when_alive", 0)
    return text + (f"; alive on the other {alive}, where W moved on {moved}" if alive else "")


def _saturated(s: dict) -> str:
    saturated = s.get("saturated_units") or {}
    if not saturated:
        return ""
    rows = "".join(f"<tr><td>{esc(unit_name(u))}</td><td class=num>{_share(f.get('numpy'))}</td>"
                   f"<td class=num>{_share(f.get('keras'))}</td></tr>" for u, f in saturated.items())
    return ("<p>Sigmoid units are <b>saturated</b> where their output is within rounding of 0 or 1 and their "
            "gradient vanishes:</p><table><tr><th>unit</th><th>saturated on (NumPy)</th><th>saturated on (Keras)</th>"
            f"</tr>{rows}</table>")


def differences_table(s: dict) -> str:
    worst, used, rows = s.get("max_abs_diff", {}), s.get("tolerance_used", {}), s.get("rows", {})
    if not worst:
        return "<p>No differences were recorded.</p>"
    table: dict[str, dict[str, str]] = {}
    for key in worst:
        phase, _, name = key.partition(".")
        share = used.get(key)
        over = isinstance(share, (int, float)) and share > 1 or isinstance(share, str)
        clean = rows.get(phase, {}).get("fail", 0) + rows.get(phase, {}).get("error", 0) == 0
        css = ("excused" if clean else "over") if over else ""
        used_text = esc(_percent(share))
        shown = number(worst[key]) + ("" if share == 0 else f" <span class=muted>({used_text})</span>")
        table.setdefault(name, {})[phase] = f'<td class="num{" " + css if css else ""}">{shown}</td>'
    phases = [p for p in PHASES if any(p in cells for cells in table.values())]
    closest = max(used, key=lambda k: _sortable(used[k]), default=None)
    lead = ""
    if closest is not None:
        share = used[closest]
        lead = (f"<p>Closest to the tolerance: <code>{esc(closest)}</code>, which used {esc(_percent(share))} "
                "of it.</p>" if _sortable(share) <= 1 else
                f"<p>Furthest beyond the tolerance: <code>{esc(closest)}</code>, {number(share)} times it.</p>")
    out = [lead, "<p>Per quantity and phase: the largest |numpy - keras| and, in brackets, the share of the "
           "tolerance it used (100% is the limit; ×760 would mean 760 times it; no bracket: exactly equal). Red: "
           "beyond the tolerance on a failing row; yellow: beyond it only on rows excused as warnings.</p>",
           "<table><tr><th>quantity</th>" + "".join(f"<th>{esc(p)}</th>" for p in phases) + "</tr>"]
    for name, cells in table.items():
        out.append(f"<tr><td><code>{esc(name)}</code></td>" + "".join(cells.get(p, "<td></td>") for p in phases)
                   + "</tr>")
    out.append("</table>")
    if rows:
        out.append("<table><tr><th>phase</th><th>rows</th><th>pass</th><th>fail</th><th>kink</th><th>error</th>"
                   "<th>convention</th></tr>")
        out += [f"<tr><td>{esc(p)}</td>" + "".join(f"<td class=num>{number(r.get(k, 0))}</td>" for k in
                ("rows", "pass", "fail", "kink", "error", "convention")) + "</tr>" for p, r in rows.items()]
        out.append("</table>")
    tol = s.get("tolerances", {})
    for dtype, t in tol.items():
        if isinstance(t, dict):
            out.append(f"<p><b>Tolerance, {esc(dtype)}:</b> rtol {number(t.get('rtol'))}, "
                       f"atol {number(t.get('atol'))}. {esc(t.get('reason', ''))}</p>")
    if "rule" in tol:
        out.append(f"<p class=muted>Rule: {esc(tol['rule'])}.</p>")
    return "".join(out)


def _sortable(share) -> float:
    """A tolerance share as a number: "inf" and "nan" (strings at the JSON edge) sort as infinitely far."""
    return float(share) if isinstance(share, (int, float)) else math.inf


def _percent(share) -> str:
    """Up to the limit as a percentage; beyond it as a multiple, which stays readable at 1e5 times."""
    if not isinstance(share, (int, float)):
        return str(share)
    return f"{share:.1%}" if share <= 1 else f"×{share:.3g}"


def key_values(values: dict) -> str:
    def show(v):
        if isinstance(v, dict):
            return ", ".join(f"{k}: {show(x)}" for k, x in v.items())
        if isinstance(v, list):
            return ", ".join(show(x) for x in v)
        return "" if v is None else str(v)
    rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(show(v))}</td></tr>" for k, v in values.items())
    return f"<table>{rows}</table>"


def modes_paragraph(modes: dict | None) -> str:
    """Which mode each phase ran Dropout and BatchNormalization in, and why, and each Dropout's mask route
    (summary.json's `modes`); nothing for a model without them."""
    if not modes:
        return ""
    rows = "".join(f"<li><b>{esc(phase)}</b>: {esc(modes[phase])}</li>" for phase in ("probe", "batch", "stepping")
                   if phase in modes)
    routes = "; ".join(f"{layer}: {', '.join(r) or 'not run'}" for layer, r in modes.get("dropout_routes", {}).items())
    return f"<h2>Modes</h2><ul>{rows}</ul>" + (f"<p>Dropout masks (Keras's, driven into yours): {esc(routes)}</p>"
                                               if routes else "")
