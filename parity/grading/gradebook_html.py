"""gradebook.html: one self-contained page (no file or network fetched but the reports it links to),
one row per submission colored by status, a filter by status (also from the address: #fail).

Every text that comes from a submission (its file name, its error messages) is escaped: a student's
exception message is data, never markup.
"""

from __future__ import annotations

from html import escape
from urllib.parse import quote

__all__ = ["render_gradebook"]

COLORS = {  # status -> (row background, badge)
    "pass": ("#e9f6ec", "#1e7b34"),
    "fail": ("#fdecea", "#b3261e"),
    "bad_input": ("#fff6e0", "#8a5a00"),
    "timeout": ("#e8f0fe", "#1a56b0"),
    "crashed": ("#f3e8fd", "#6b2fa0"),
    "not_graded": ("#f1f1f1", "#555555"),
}
MEANING = {
    "pass": "parity holds (parity check exits 0)",
    "fail": "a mismatch with Keras (parity check exits 1); the report says where and why",
    "bad_input": "the module cannot be imported or has none of the book's classes (parity check exits 2)",
    "timeout": "did not finish within the time limit; its worker was stopped",
    "crashed": "its worker process died (os._exit, an interpreter crash, past the memory limit)",
    "not_graded": "the cluster stopped before it was graded (the page's first line says why): grade it again",
}

_CSS = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em; color: #1d1d1f; }
h1 { font-size: 1.4em; margin: 0 0 .2em; }
.settings { color: #555; margin-bottom: 1em; }
.filters button { font: inherit; border: 1px solid #bbb; background: #fff; border-radius: 1em; padding: .15em .8em;
  margin: 0 .3em .3em 0; cursor: pointer; }
.filters button[aria-pressed="true"] { background: #1d1d1f; color: #fff; border-color: #1d1d1f; }
table { border-collapse: collapse; width: 100%; margin-top: .6em; }
th, td { text-align: left; vertical-align: top; padding: .35em .6em; border-bottom: 1px solid #ddd; }
th { background: #f4f4f4; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.badge { color: #fff; border-radius: .3em; padding: .05em .45em; font-weight: 600; white-space: nowrap; }
.fix { color: #444; margin-top: .25em; }
code { font-size: .95em; }
.legend { color: #555; margin-top: 1.2em; font-size: .92em; }
.incomplete { background: #fdecea; border-left: 4px solid #b3261e; padding: .5em .8em; margin-bottom: 1em; }
"""

_SCRIPT = """
(function () {
  var rows = Array.prototype.slice.call(document.querySelectorAll("tbody tr"));
  var buttons = Array.prototype.slice.call(document.querySelectorAll(".filters button"));
  var shown = document.getElementById("shown");
  function show(status) {
    var n = 0;
    rows.forEach(function (row) {
      var visible = status === "all" || row.dataset.status === status;
      row.hidden = !visible;
      if (visible) { n += 1; }
    });
    buttons.forEach(function (b) { b.setAttribute("aria-pressed", String(b.dataset.status === status)); });
    shown.textContent = n + " of " + rows.length + " shown";
  }
  buttons.forEach(function (b) {
    b.addEventListener("click", function () { history.replaceState(null, "", "#" + b.dataset.status); show(b.dataset.status); });
  });
  var wanted = location.hash.slice(1);
  show(buttons.some(function (b) { return b.dataset.status === wanted; }) ? wanted : "all");
  document.documentElement.dataset.ready = "yes";
})();
"""


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{COLORS[status][1]}">{escape(status)}</span>'


def _links(row, files: list[str]) -> str:
    if not row.report:
        return ""
    base = quote(row.report)
    links = [f'<a href="{base}/report.html">report</a>'] if "report.html" in files else []
    links.append(f'<a href="{base}/summary.json">summary.json</a>')
    return " ".join(links)


def render_gradebook(book) -> str:
    """The page for a Gradebook (parity.grading.grade)."""
    counts, s = book.counts, book.settings
    limit = s.get("memory_limit")
    if isinstance(limit, int):
        from dask.utils import format_bytes

        limit = format_bytes(limit)
    where = f"scheduler {s['scheduler']}" if "scheduler" in s else \
        f"{s.get('workers') or 'one per core'} local workers, memory limit {limit} each"
    settings = (f"scenario <b>{escape(str(s.get('scenario')))}</b>, {escape(str(s.get('dtype')))}, seed {s.get('seed')}; "
                f"time limit {s.get('timeout_s'):g} s per submission; {escape(where)}; plots: {escape(str(s.get('plots')))}")
    buttons = [f'<button type="button" data-status="all">all ({len(book.rows)})</button>']
    buttons += [f'<button type="button" data-status="{st}" style="border-color:{COLORS[st][1]}">{st} ({n})</button>'
                for st, n in counts.items() if n]
    body = []
    for i, row in enumerate(book.rows, 1):
        message = escape(row.first_error)
        if row.fix:
            message += f'<div class="fix">fix to try: {escape(row.fix)}</div>'
        seconds = "" if row.seconds is None else f"{row.seconds:.2f}"
        body.append(
            f'<tr data-status="{row.status}" style="background:{COLORS[row.status][0]}">'
            f'<td class="num">{i}</td><td><code>{escape(row.file)}</code></td><td>{_badge(row.status)}</td>'
            f'<td>{escape(", ".join(row.error_codes))}</td><td>{message}</td><td>{escape(", ".join(row.warnings))}</td>'
            f'<td class="num">{seconds}</td><td>{_links(row, book.files.get(row.report, []))}</td></tr>')
    legend = "".join(f"<li>{_badge(st)} {escape(text)}</li>" for st, text in MEANING.items() if st in counts)
    incomplete = f'<div class="incomplete"><b>Incomplete:</b> {escape(book.error)}</div>\n' if book.error else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Gradebook: {len(book.rows)} submissions</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Gradebook: {len(book.rows)} submissions</h1>
{incomplete}<div class="settings">{settings}</div>
<div class="filters" role="group" aria-label="show">{''.join(buttons)} <span id="shown"></span></div>
<table>
<thead><tr><th>#</th><th>file</th><th>status</th><th>error codes</th><th>first error, and its fix</th><th>warnings</th>
<th>seconds</th><th>report</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody>
</table>
<ul class="legend">{legend}</ul>
<p class="legend">Written by keras-parity. Each submission ran in a Dask worker process, never in the process that wrote
this page; seconds count its own import, check and report, not the Keras side its worker computed once for all.</p>
<script>{_SCRIPT}</script>
</body>
</html>
"""
