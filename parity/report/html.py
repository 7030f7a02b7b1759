"""report.html: a run's summary as one self-contained page for a learner (no scripts, no external files).

`render_html` is a pure function of the summary dict (what `parity.report.writer.summary` returns, as in
summary.json) and the PNG bytes of the plots: the report writer calls it, and so can a notebook's
`_repr_html_`. Every key may be missing (no plots, a sigmoid model without ReLU units, a summary
from an older version): a missing part is left out or said to be absent, never an error. Every
string from the summary is escaped, since messages can hold a user's text.
"""

from __future__ import annotations

import base64

from parity.compare.findings import Finding
from parity.compare.root_causes import followers_text, root_causes
from parity.report.dead_filters import dead_filters_table
from parity.report.html_tables import PHASES, dead_units_table, differences_table, esc, key_values, message, modes_paragraph, number

__all__ = ["CAPTIONS", "group_findings", "render_html"]

_WHERE = (("sample", "sample"), ("batch", "batch"), ("step", "step"))

# What each plot is for and where to look: a learner reads these before the picture.
CAPTIONS = {
    "lesson.png": (
        "The lesson, sample by sample: a dead ReLU zeroes dW for that sample, not W. Each column is one hidden ReLU "
        "unit; each sample goes alone through both sides at the fitted weights, sorted by x (or, with more than one "
        "input, by the unit's pre-activation z). Top: the unit's weight W, "
        "the same on every sample and not 0. Below: its gradient dW for that sample. Grey marks the samples where the "
        "unit is dead (its pre-activation z = xW + b <= 0): there dW is exactly 0 on both sides, while W is not. Keras "
        "is an open circle, NumPy a dot inside it when the sides agree; a NumPy dot in red is a dW that is not 0 where "
        "Keras's is exactly 0, which is what a Relu whose backward forgets its mask does."),
    "pool_routing.png": (
        "Where max pooling sent the gradient, on one sample. Going forward, each window of the pooling's input "
        "(the squares between the light blue lines) passes on only its largest value; going back, the window's "
        "gradient goes to that one cell and every other cell of the window gets exactly 0. The middle row is the "
        "pooling's input, one column per feature map (darker: larger). An orange square marks the cell Keras's autodiff "
        "sent the gradient to, a blue dot the cell your Pooling.backward sent it to: with a correct Pooling every "
        "dot sits inside a square. A red cell is one that only one side sent gradient to: a backward that picks the "
        "wrong cell, or spreads the gradient over the window, shows red. A grey x marks a tie (a window whose maximum "
        "appears twice, such as a window of zeros after a ReLU): either cell is right, so a tie is never red. The "
        "top row is the filter that made each map, as Keras's fit learned it (both sides start from it); the bottom "
        "row is how far the two sides' gradients for that filter, dW, are apart on this sample (its largest "
        "difference above it, red when over the tolerance). The sample shown is one where the routing differs if "
        "any does, else a failing one, else a typical one."),
    "dead_relu_map.png": (
        "Where each ReLU unit is dead, sample by sample (samples sorted by x), on each side. Grey: the unit is dead "
        "(z = xW + b <= 0) on that sample, and its dW (the gradient of the weights into it) is exactly 0 there; blue: "
        "it is alive, and gradient flowed into its dW. The left panel is the NumPy side, the right Keras's: with "
        "correct layers they are identical. Red marks a dead unit whose dW is not 0 anyway: a Relu whose backward "
        "forgets its mask shows red on the NumPy side where Keras's is grey (pink, where shown: an alive unit whose "
        "dW is 0). The black tick is each first-layer unit's kink x* = -b/w, where it switches between dead and "
        "alive."),
    "stepping.png": (
        "One optimizer step per training sample, on both sides from the same weights. Top: how far each step moved "
        "each weight, one colour per unit, on a log scale whose bottom line is 0 (Keras an open circle, NumPy a dot: "
        "a dot inside its circle means the sides agree). A halo marks the steps on which that unit was dead: its dW is "
        "exactly 0 there, so under plain SGD its W does not move and the point sits on the 0 line. W itself is not 0; "
        "it just stays where it was. (With momentum or Adam the optimizer's state can still move it.) A Relu whose "
        "backward forgets its mask shows NumPy dots above the 0 line on those steps. Bottom: each parameter's "
        "largest difference between the sides after each step, one line per parameter, against the tolerance "
        "(dotted)."),
    "gradient_diffs.png": (
        "How far apart the two sides' gradients are, on a log scale, in each phase: the probe (each sample alone at "
        "the fitted weights), the mini-batches (gradients averaged over a batch) and stepping (one SGD step per "
        "sample). A point under the dotted red line is within tolerance; points on the grey floor are exactly equal. "
        "Small nonzero differences in the batch phase are rounding: the two sides sum a batch in a different "
        "order."),
    "regularization.png": (
        "Chapter 6, step by step: the training steps run one batch each, in training mode, on both sides from the same "
        "weights. Top rows, one panel per feature of each BatchNormalization: the batch mean and variance the layer "
        "normalized with on that step (Keras an open circle, from its own layer; NumPy a dot, of the batch its class "
        "received) and the running mean and variance after the step (Keras's moving statistics a thick orange line, "
        "NumPy's a thin blue one inside it when they agree). The running statistics follow the batch ones: running = "
        "momentum * running + (1 - momentum) * batch. A red x is a NumPy value further from Keras's than the "
        "tolerance: a BatchNormalization whose running statistics never update draws a flat blue line and red x's "
        "beside Keras's moving one. The log panel below shows how far apart the sides are after each step (the "
        "dotted red line is the tolerance). Bottom, per Dropout: the units one sample kept (blue) or dropped (grey), "
        "Keras's mask as its autodiff shows it, then the NumPy class's forward (the units its output kept) and "
        "backward (the units it let dout through); red cells differ from Keras's mask. A Dropout whose backward "
        "ignores the mask shows a red backward row. The lesson and stepping pictures are not drawn for such a "
        "model: its probe runs in test mode, forward only (no per-sample dW), and a ReLU after a BatchNormalization "
        "is almost never dead on a whole batch, which is what stepping.png's lesson needs."),
    "fit.png": (
        "The data and what the fitted model predicts, NumPy and Keras over each other. For the 1-D regression the "
        "shading shows where each first-layer ReLU unit is active: the model is a straight line wherever the same "
        "units are alive, and bends only at a kink."),
}
PICTURE_ORDER = ("lesson.png", "pool_routing.png", "regularization.png", "dead_relu_map.png", "stepping.png",
                 "gradient_diffs.png", "fit.png")

# Why a warning does not fail the run, per code: the verdict says what was excused and why.
_EXCUSES = {
    "kink": "a ReLU pre-activation lay within rounding of 0, its kink, where float rounding may put the two sides "
            "on different sides of 0; every difference on those rows follows from that",
    "convention": "the loss is the book's -log(y + 1e-7) where Keras computes it from the logits: it differs by at "
                  "most 1e-7/y, while predictions and gradients agree",
    "zero_convention": "your Relu passes gradient at exactly z = 0 where TensorFlow passes none; this matters only "
                       "at an exact 0, which real data almost never hit",
    "resync": "a step at a ReLU kink or a max-pooling tie moved the two sides apart legitimately; the NumPy side "
              "stepped on from Keras's parameters and optimizer state after it, so each later step is judged on its own",
    "drift": "the two sides' rounding, carried from step to step, moved their trajectories apart until a step "
             "differed; from Keras's own parameters and optimizer state before it, that step agrees, so the NumPy side "
             "stepped on from there",
    "unjudged": "after a step at a ReLU kink or a max-pooling tie the NumPy side could not restart from Keras's "
                "optimizer state (your class keeps it where the tool does not look), so the later steps were neither "
                "passed nor failed",
    "input_mutation": "your layer writes into an array it was given (the book's in-place style); the results were "
                      "still right, but it can change arrays the caller keeps",
    "cell_not_parsed": "a cell of your notebook that does not parse was skipped; no class the check needs is in it",
    "import_failed": "an import in your notebook failed and was skipped; the classes checked loaded without it",
    "definition_failed": "a definition in your notebook raised and was skipped; the classes checked loaded without it",
    "not_yours": "classes imported into your notebook or module are not yours, so they were not checked",
}

_CSS = """
.parity-report{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d1d1f;max-width:1200px;
  margin:0 auto;padding:0 16px 40px;line-height:1.45}
.parity-report h1{font-size:1.5em;margin:.8em 0 .2em}
.parity-report h2{font-size:1.2em;margin:1.6em 0 .4em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.parity-report .verdict{border-radius:8px;padding:14px 18px;margin:12px 0}
.parity-report .verdict.pass{background:#e8f5e9;border:2px solid #2e7d32}
.parity-report .verdict.fail{background:#fdecea;border:2px solid #c62828}
.parity-report .verdict .word{font-size:2.4em;font-weight:700;letter-spacing:.05em}
.parity-report .pass .word{color:#2e7d32}.parity-report .fail .word{color:#c62828}
.parity-report table{border-collapse:collapse;margin:.4em 0 1em;font-size:.92em}
.parity-report th,.parity-report td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
.parity-report th{background:#f5f5f5}
.parity-report td.num{text-align:right;font-variant-numeric:tabular-nums}
.parity-report td.over{background:#fdecea;color:#b71c1c;font-weight:600}
.parity-report td.excused{background:#fff8e1}
.parity-report .finding{border-left:5px solid #999;background:#fafafa;padding:8px 12px;margin:10px 0}
.parity-report .finding.error{border-color:#c62828}.parity-report .finding.warning{border-color:#f9a825}
.parity-report .finding.info{border-color:#1976d2}
.parity-report .sev{font-weight:700;text-transform:uppercase;font-size:.8em}
.parity-report .fix{margin-top:4px}.parity-report .where{color:#555;font-size:.9em}
.parity-report code{background:#f0f0f0;padding:0 3px;border-radius:3px}
.parity-report figure{margin:14px 0 26px}.parity-report img{max-width:100%;border:1px solid #eee}
.parity-report figcaption{max-width:900px;color:#333}
.parity-report .muted{color:#666}.parity-report td.unit{white-space:nowrap}
"""


def _phase_of(f: dict) -> str | None:
    if f.get("phase"):
        return f["phase"]
    return next((phase for phase, (key, _) in zip(PHASES, _WHERE) if key in f), None)


def group_findings(findings: list[dict]) -> list[tuple[dict, list[dict]]]:
    """(root, consequences) pairs of summary.json's findings, as parity.compare.root_causes groups them for the
    terminal and assert_parity: each record is read back as a Finding (its phase from where it happened, for an
    older summary without one), grouped, and handed back as the record it was."""
    typed = [Finding.from_json({**f, "phase": _phase_of(f)}) for f in findings]
    record = {id(t): f for t, f in zip(typed, findings)}
    return [(record[id(root)], [record[id(c)] for c in follow]) for root, follow in root_causes(typed)]


def _where(f: dict) -> str:
    parts = []
    phase = _phase_of(f)
    if phase:
        parts.append(f"phase {phase}")
    parts += [f"{word} {f[key]}" for key, word in _WHERE if key in f]
    if f.get("layer"):
        parts.append(f"class {f['layer']}")
    if f.get("layer_number") is not None:
        parts.append(f"Dense layer {f['layer_number']}")
    if f.get("convolution") is not None:  # a mask finding on a convolution's map (its cell is in the message)
        parts.append(f"convolution {f['convolution']}")
    if f.get("param"):
        parts.append(f"quantity {f['param']}")
    if f.get("where") and f["where"] not in str(f.get("message", "")):
        parts.append(f"at {f['where']}")
    return ", ".join(esc(p) for p in parts)


def _finding(f: dict, consequences: list[dict]) -> str:
    sev = str(f.get("severity", "info"))
    out = [f'<div class="finding {esc(sev)}"><span class="sev">{esc(sev)}</span> <code>{esc(f.get("code", "?"))}</code>'
           f' <span class="where">{_where(f)}</span><div>{message(f.get("message", ""))}</div>']
    if f.get("fix"):
        out.append(f'<div class="fix"><b>Fix to try:</b> {esc(f["fix"])}</div>')
    if consequences:
        typed = [Finding.from_json({**c, "phase": _phase_of(c)}) for c in consequences]
        out.append(f"<details><summary>{esc(followers_text(typed))}</summary><ul>")
        out += [f"<li><code>{esc(c.get('code', '?'))}</code> <span class=\"where\">{_where(c)}</span>: "
                f"{message(c.get('message', ''))}</li>" for c in consequences]
        out.append("</ul></details>")
    return "".join(out) + "</div>"


def _rows_text(rows: dict) -> str:
    parts = [f"{number(rows[p].get('rows', 0))} {unit}" for p, unit in zip(PHASES, ("samples", "batches", "steps"))
             if p in rows]
    return ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1] if parts else "every row"


def _verdict(s: dict, groups: list[tuple[dict, list[dict]]]) -> str:
    findings = s.get("findings", [])
    verdict = str(s.get("verdict") or ("fail" if any(f.get("severity") == "error" for f in findings) else "pass"))
    rows, dtype = s.get("rows", {}), s.get("dtype", "")
    tol = s.get("tolerances", {}).get(dtype, {})
    tol_text = f" (rtol {number(tol['rtol'])}, atol {number(tol['atol'])})" if "rtol" in tol and "atol" in tol else ""
    who = "Your layers" if any(str(v).startswith("yours") for v in s.get("layers", {}).values()) else "The NumPy layers"
    if verdict == "pass":
        sentence = (f"{who} compute what Keras computes: predictions, loss and gradients, and the weights after each "
                    f"SGD step, agree within the {esc(dtype)} tolerance{tol_text} on {_rows_text(rows)}.")
    else:
        errors = [(r, c) for r, c in groups if r.get("severity") == "error"]
        failed = ", ".join(f"{number(r.get('fail', 0) + r.get('error', 0))} of {number(r.get('rows', 0))} {p} rows"
                           for p, r in rows.items())
        sentence = (f"{who} do not compute what Keras computes: {len(errors)} root cause{'s' * (len(errors) != 1)} "
                    "of severity error, below, each with a fix to try" + (f" ({esc(failed)} fail)." if failed else "."))
        if errors:  # name the one that most of the run's mismatches follow from
            main, _ = max(errors, key=lambda g: len(g[1]))
            sentence += (f" The main one: <code>{esc(main.get('code'))}</code>, "
                         f"{message(main.get('message', ''))}")
    excused = _excused(rows, [r for r, _ in groups if r.get("severity") == "warning"])
    if excused and verdict == "pass":
        sentence = sentence[:-1] + ", apart from what is excused below."
    extra = "<p>Nothing was excused.</p>" if verdict == "pass" else ""
    if excused:
        extra = f"<p>Excused as warnings, which do not fail a run:</p><ul>{excused}</ul>"
    return (f'<div class="verdict {esc(verdict)}"><div class="word">{esc(verdict.upper())}</div>'
            f"<p>{sentence}</p>{extra}</div>")


def _excused(rows: dict, warnings: list[dict]) -> str:
    """One item per warning code: why it does not fail the run, and where it was seen."""
    items = []
    for code in dict.fromkeys(str(w.get("code")) for w in warnings):
        seen = [w for w in warnings if w.get("code") == code]
        counts = [f"{number(r[code])} of {number(r.get('rows', 0))} {p} rows" for p, r in rows.items() if r.get(code)]
        classes = sorted({str(w["layer"]) for w in seen if w.get("phase") == "layer probe" and w.get("layer")})
        where = counts + ([f"the layer probe of {', '.join(classes)}"] if classes else [])
        detail = "; ".join(where) if where else "; ".join(str(w.get("message", "")) for w in seen)
        why = _EXCUSES.get(code, "")
        items.append(f"<li><code>{esc(code)}</code>: {esc(why)}{'. ' if why else ''}"
                     f"<span class=muted>Seen on: {message(detail)}.</span></li>")
    return "".join(items)


def _plots(images: dict[str, bytes]) -> str:
    if not images:
        return "<p>No plots in this report (run without <code>--no-plots</code> to draw them).</p>"
    names = [n for n in PICTURE_ORDER if n in images] + sorted(n for n in images if n not in PICTURE_ORDER)
    return "".join(f'<figure><img alt="{esc(n)}" src="data:image/png;base64,{base64.b64encode(images[n]).decode()}">'
                   f"<figcaption><b>{esc(n)}</b>: {esc(CAPTIONS.get(n, ''))}</figcaption></figure>" for n in names)


def _keras_side(source: dict | None) -> str:
    """Where the Keras side came from, under the title: computed in the process, or recorded (by which Keras, where, when)."""
    if not source or not source.get("summary"):
        return ""
    recording = f" (<code>{esc(source['recording'])}</code>)" if source.get("recording") else ""
    return f"<p class=muted>Keras side: {esc(source['summary'])}{recording}</p>"


def render_html(summary: dict, images: dict[str, bytes]) -> str:
    """The whole report as one HTML page: verdict, findings by root cause, dead units, differences, plots, setup."""
    s = summary
    groups = group_findings(s.get("findings", []))  # errors, then warnings, then info, each in the run's order
    title = f"keras-parity: {s.get('scenario', 'run')}, {s.get('dtype', '')}"
    body = [f"<h1>{esc(title)}</h1>", _verdict(s, groups), _keras_side(s.get("keras_side")), modes_paragraph(s.get("modes")),
            "<h2>Findings, by root cause</h2>"]
    notes = [g for g in groups if g[0].get("severity") == "info"]
    body += [_finding(root, consequences) for root, consequences in groups if root.get("severity") != "info"] \
        or ["<p>No errors and no warnings.</p>"]
    if notes:  # observations, not failures: folded, as the dead-unit section below tells the same story
        body.append(f"<details><summary>{len(notes)} note{'s' * (len(notes) != 1)} (severity info: observations, "
                    "not failures)</summary>" + "".join(_finding(r, c) for r, c in notes) + "</details>")
    # summary["layers"] says whose class each layer is; config["layers"] is the architecture: both are kept
    setup = {**s.get("config", {}), **{name: s[key] for key, name in (("model", "model"), ("layers", "layer classes"))
                                       if key in s}}
    body += ["<h2>Dead ReLU units</h2>", dead_units_table(s), dead_filters_table(s),
             "<h2>Worst differences, per phase</h2>", differences_table(s), "<h2>Plots</h2>", _plots(images),
             "<h2>Environment</h2>", key_values(s.get("environment", {})), "<h2>Configuration</h2>", key_values(setup)]
    if s.get("files"):
        body.append(f"<p class=muted>Files of this report: {esc(', '.join(s['files']))}</p>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>'
            f'<body><div class="parity-report">{"".join(body)}</div></body></html>\n')
