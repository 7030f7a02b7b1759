"""A ReLU convolution's dead positions, per filter, as a person reads them: the terminal's line and report.html's table.

The numbers are summary.json's "dead_filters" (parity.compare.stats.PhaseSummary.dead_filters): a position is dead on a
sample where Keras's pre-activation map is <= 0 there, as a Dense unit is where Keras's z is.
"""

from __future__ import annotations

from parity.report.html_tables import esc

__all__ = ["dead_filters_line", "dead_filters_table", "percent"]

FEW_FILTERS = 8  # up to this many filters are each given their numbers; more are counted


def percent(f: float) -> str:
    """A share as a whole percentage that never rounds "some" to 0% or 100%."""
    if 0 < f < 0.005:
        return "<1%"
    if 0.995 <= f < 1:
        return ">99%"
    return f"{f:.0%}"


def _filter(f: dict) -> str:
    share = f["share_dead"]
    text = f"filter {f['filter']} {percent(share['keras'])}"
    text += "" if share["numpy"] == share["keras"] else f" (NumPy {percent(share['numpy'])})"
    every = f["dead_on_every_sample"]
    return text + (f", {percent(every / f['positions'])} of its positions dead on every sample" if every else "")


def dead_filters_line(dead_filters: dict, rows: int) -> str | None:
    """One line for every convolution followed by a ReLU; None without one. A filter's share is its positions'
    mean share of the samples they are dead on (Keras's map), NumPy's beside it where it differs."""
    if not dead_filters:
        return None
    parts = []
    for layer, conv in dead_filters.items():
        filters, size = conv["filters"], "x".join(str(d) for d in conv["map"][1:])
        shown = filters if len(filters) <= FEW_FILTERS else [f for f in filters if f["dead_on_every_sample"]]
        text = f"conv {layer}, {len(filters)} filters of {size} positions: " + "; ".join(_filter(f) for f in shown)
        if len(shown) < len(filters):
            text += f"{'; ' * bool(shown)}{len(filters) - len(shown)} more with no position dead on every sample"
        elif not any(f["dead_on_every_sample"] for f in filters):
            text += "; no position dead on every sample"
        differ = sum(f["mask_differs"] for f in filters)
        parts.append(text + (f"; the sides' masks differ at {differ:,} position-samples" if differ else ""))
    return f"dead ReLU filter positions (mean share of the {rows:,} probed samples): " + "; ".join(parts)


def dead_filters_table(s: dict) -> str:
    """report.html's table of summary.json's "dead_filters"; empty without a convolution followed by a ReLU."""
    dead_filters = s.get("dead_filters", {})
    if not dead_filters:
        return ""
    out = ["<p>A filter's output position is <b>dead</b> on a sample where its pre-activation there is &lt;= 0 "
           "(decided by Keras's map): it outputs 0 and passes no gradient back to the filter's kernel from that "
           "position. A filter dead at a position on every sample never learns from it.</p>"]
    for layer, conv in dead_filters.items():
        out.append(f"<table><caption>conv {esc(layer)}: {len(conv['filters'])} filters of "
                   f"{esc('x'.join(str(d) for d in conv['map'][1:]))} positions</caption>"
                   "<tr><th rowspan=2>filter</th><th colspan=2>positions dead on</th>"
                   "<th colspan=2>dead (share of position-samples)</th><th rowspan=2>position-samples where the "
                   "sides' masks differ</th></tr><tr><th>every sample</th><th>no sample</th><th>NumPy side</th>"
                   "<th>Keras side</th></tr>")
        for f in conv["filters"]:
            out.append(f"<tr><td class=unit>filter {f['filter']}</td><td class=num>{f['dead_on_every_sample']}</td>"
                       f"<td class=num>{f['dead_on_no_sample']}</td>"
                       f"<td class=num>{percent(f['share_dead']['numpy'])}</td>"
                       f"<td class=num>{percent(f['share_dead']['keras'])}</td>"
                       f"<td class=num>{f['mask_differs']:,}</td></tr>")
        out.append("</table>")
    return "".join(out)
