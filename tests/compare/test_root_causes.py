"""One root-cause function for every door: the terminal, report.html and assert_parity's message group a run's
findings the same way, an optimizer bug is one root line, and what follows from a root carries the root's fix."""

import html
import re

import pytest

import parity
from parity.compare.findings import Finding
from parity.compare.root_causes import followers_text, root_causes
from parity.report.html import group_findings
from parity.testing import failure_message
from testkit import FIXTURES



def terminal_roots(report) -> list[str]:
    """The terminal's root-cause lines: one per root, errors and warnings."""
    return [line for line in str(report).splitlines() if line.startswith("  [")]


def page_roots(page: str, severity: str = "error") -> list[tuple[str, str]]:
    """(code, what its folded consequences say) of each finding card of one severity in report.html, in order."""
    cards = page[page.index("<h2>Findings"):].split(f'<div class="finding {severity}">')[1:]
    out = []
    for card in cards:
        code = re.search(r"<code>([^<]*)</code>", card).group(1)
        follow = re.search(r"<details><summary>(\d+ findings? that follows? from it[^<]*)</summary>", card)
        out.append((code, html.unescape(follow.group(1)) if follow else ""))
    return out


@pytest.fixture(scope="module")
def relu_without_mask(tmp_path_factory):
    out = tmp_path_factory.mktemp("nomask") / "report"
    return parity.check(str(FIXTURES / "relu_without_mask.py"), out=out, plots=False)


def test_a_relu_without_mask_is_grouped_identically_in_the_terminal_the_page_and_assert_parity(relu_without_mask):
    report = relu_without_mask
    [(root, follow)] = [(r, c) for r, c in root_causes(report.findings) if r.severity == "error"]
    assert (root.code, root.phase, root.layer, root.param) == ("mask_mismatch", "layer probe", "Relu", "dx")
    assert {f.phase for f in follow} == {"probe", "batch", "stepping"}  # every later phase, nothing left over
    assert [f for f in report.errors if f is not root] == follow
    said = followers_text(follow)
    assert said == "18 findings that follow from it: 3 in probe, 3 in batch, 12 in stepping"

    [line] = [line for line in terminal_roots(report) if line.startswith("  [error]")]
    assert line.startswith("  [error] mask_mismatch: Relu: dx at batch size 2") and f"[+{said}]" in line

    page = (report.folder / "report.html").read_text(encoding="utf-8")
    assert page_roots(page) == [("mask_mismatch", said)]
    assert page_roots(page, "warning") == []  # its kink entries belong to the mask bug: no zero_convention
    findings = page[page.index("<h2>Findings"):page.index("<h2>Dead ReLU units")]
    assert findings.count("<li><code>") == len(follow)  # each consequence once, folded under its root

    message = failure_message(report).splitlines()
    assert message[0].startswith("keras-parity: FAIL with 1 error ")
    assert message[1].startswith("  mask_mismatch [layer probe, dx, Relu]: Relu: dx at batch size 2")
    assert message[2].startswith("      fix to try: ReLU's backward must zero dout") and message[3] == f"      {said}"
    assert len(message) == 4


def test_what_follows_from_the_relu_carries_the_relus_fix_and_names_the_relu(relu_without_mask):
    [(root, follow)] = [(r, c) for r, c in root_causes(relu_without_mask.findings) if r.severity == "error"]
    for f in follow:
        assert f.consequence_of == "layer probe" and f.layer == "Relu", f
        assert f.fix == f"follows from Relu's mask_mismatch, found by the layer probe; fix that: {root.fix}", f


def test_the_page_groups_summary_json_as_the_run_did(relu_without_mask):
    summary = relu_without_mask.summary
    assert [Finding.from_json(f).as_dict() for f in summary["findings"]] == summary["findings"]  # read back whole
    by_message = [(r["message"], [c["message"] for c in follow]) for r, follow in group_findings(summary["findings"])]
    assert by_message == [(r.message, [c.message for c in follow]) for r, follow in root_causes(relu_without_mask.findings)]


def test_a_momentum_with_the_wrong_sign_is_one_root_line_that_counts_what_follows():
    report = parity.check(str(FIXTURES / "learner_momentum_sign.py"), optimizer="momentum", plots=False)
    roots = terminal_roots(report)
    assert len(roots) == 1, roots
    [(root, follow)] = root_causes(report.findings)[:1]
    assert (root.code, root.layer, root.phase) == ("sign_flip", "Momentum", "stepping")
    assert root.fix == "subtract the step: v = momentum * v - lr * grad, then params[key] += v"
    assert follow and all(f.consequence_of == "optimizer" and f.layer == "Momentum" for f in follow)
    assert roots[0].startswith("  [error] sign_flip: ") and f"[+{followers_text(follow)}]" in roots[0], roots
    assert followers_text(follow).endswith(f"{len(follow)} in stepping")
    # What follows from the optimizer is fixed in the optimizer, not in a layer's forward or backward.
    assert all(f.fix.startswith("follows from Momentum's sign_flip, found while stepping; fix that: subtract the step")
               for f in follow)
    assert failure_message(report).splitlines()[0].startswith("keras-parity: FAIL with 1 error ")


def test_a_consequence_whose_parent_is_missing_is_a_root_of_its_own():
    lost = Finding("gradient_mismatch", "error", "stepping", "stepping: dW1 differs", consequence_of="probe", param="dW1")
    warning = Finding("kink", "warning", "probe", "probe: 1 sample near the kink")
    assert root_causes([warning, lost]) == [(lost, []), (warning, [])]  # errors first, then warnings


def test_a_chain_is_followed_to_its_root_and_a_parameter_after_a_step_to_its_gradient():
    root = Finding("mask_mismatch", "error", "layer probe", "Relu: dx", layer="Relu", param="dx")
    other = Finding("gradient_mismatch", "error", "probe", "probe: dW1 differs", param="dW1")
    probe_dx = Finding("gradient_mismatch", "error", "probe", "probe: dx", consequence_of="layer probe", param="dx")
    step_w1 = Finding("update_mismatch", "error", "stepping", "stepping: W1", consequence_of="probe", param="W1")
    step_dx = Finding("gradient_mismatch", "error", "stepping", "stepping: dx", consequence_of="probe", param="dx")
    assert root_causes([root, other, probe_dx, step_w1, step_dx]) == [(root, [probe_dx, step_dx]), (other, [step_w1])]


def test_the_books_log_in_every_phase_is_one_warning_line_the_layer_probes():
    report = parity.check(str(FIXTURES / "book_softmax.py"), scenario="softmax", dtype="float64", plots=False)
    assert report.passed
    [(root, follow)] = [(r, c) for r, c in root_causes(report.findings) if r.severity == "warning"]
    assert (root.code, root.phase, root.layer) == ("convention", "layer probe", "SoftmaxWithLoss")
    assert [f.phase for f in follow] == ["probe", "batch", "stepping"]
    assert all(f.code == "convention" and f.consequence_of == "layer probe" for f in follow)
    [line] = terminal_roots(report)
    assert line.startswith("  [warning] convention: SoftmaxWithLoss: ") and f"[+{followers_text(follow)}]" in line
