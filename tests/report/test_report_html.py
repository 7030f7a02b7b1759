"""report.html: the renderer on hand-made summaries, then real reports opened in a real headless Chromium."""

import base64
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from parity.report.html import group_findings, render_html

ROOT_DB1 = {"code": "mask_mismatch", "severity": "error", "sample": 0, "param": "db1",
            "message": "probe: db1 differs ROOT-DB1", "fix": "FIX-FOR-DB1"}
ROOT_DX = {"code": "scale_factor", "severity": "error", "sample": 0, "param": "dx", "message": "probe: dx ROOT-DX"}
STEP_DB1 = {"code": "gradient_mismatch", "severity": "error", "step": 0, "param": "db1", "consequence_of": "probe",
            "message": "stepping: db1 CONSEQUENCE-DB1"}
STEP_W1 = {"code": "update_mismatch", "severity": "error", "step": 3, "param": "W1", "consequence_of": "probe",
           "message": "stepping: W1 CONSEQUENCE-W1"}
BATCH_DX = {"code": "scale_factor", "severity": "error", "batch": 0, "param": "dx", "consequence_of": "probe",
            "message": "batch: dx CONSEQUENCE-DX"}
KINK = {"code": "kink", "severity": "warning", "sample": 7, "message": "probe: 2 samples with a pre-activation near 0"}


def summary(**changes) -> dict:
    """A summary shaped like parity.report.writer.summary's, small enough to read in a test."""
    s = {"verdict": "fail", "scenario": "seed", "dtype": "float32",
         "tolerances": {"float32": {"rtol": 1e-5, "atol": 1e-5, "reason": "float32 rounding"},
                        "rule": "pass when |numpy - keras| <= atol + rtol * |keras|"},
         "max_abs_diff": {"probe.db1": 0.295, "stepping.db1": 0.238, "batch.db1": 1.49e-8},
         "tolerance_used": {"probe.db1": 29500.0, "stepping.db1": 23800.0, "batch.db1": 0.0014},
         "rows": {"probe": {"rows": 200, "pass": 0, "fail": 200, "kink": 0, "error": 0, "convention": 0}},
         "dead_units": {"fraction_dead": {"1.0": {"numpy": 0.0, "keras": 0.0}, "1.1": {"numpy": 1.0, "keras": 1.0}},
                        "dead_on_every_sample": ["1.1"]},
         "dead_relu_steps": [{"side": side, "unit": "1.1", "steps": 160, "dead_steps": 160, "dW_zero_when_dead": 160,
                              "W_unchanged_when_dead": 160, "W_nonzero_when_dead": 160, "W_changed_when_alive": 0}
                             for side in ("numpy", "keras")],
         "findings": [ROOT_DB1, ROOT_DX, STEP_DB1, STEP_W1, BATCH_DX],
         "environment": {"python": "3.11.7", "tensorflow": "2.21.0"},
         "config": {"seed": 1337, "epochs": 20}}
    s.update(changes)
    return s


def test_consequences_go_under_the_probe_finding_on_the_same_quantity_else_under_the_first():
    groups = group_findings([ROOT_DB1, ROOT_DX, STEP_DB1, STEP_W1, BATCH_DX])
    assert [(root["message"], [c["message"] for c in follow]) for root, follow in groups] == [
        ("probe: db1 differs ROOT-DB1", ["stepping: db1 CONSEQUENCE-DB1", "stepping: W1 CONSEQUENCE-W1"]),
        ("probe: dx ROOT-DX", ["batch: dx CONSEQUENCE-DX"])]


def test_the_page_nests_each_consequence_inside_its_root_finding():
    page = render_html(summary(), {})
    assert page.count('<div class="finding') == 2  # the three consequences are no cards of their own
    db1, dx = page.index("ROOT-DB1", page.index("<h2>Findings")), page.index("ROOT-DX", page.index("<h2>Findings"))
    assert db1 < page.index("CONSEQUENCE-DB1") < page.index("CONSEQUENCE-W1") < dx < page.index("CONSEQUENCE-DX")
    assert "2 findings that follow from it: 2 in stepping" in page
    assert "<b>Fix to try:</b> FIX-FOR-DB1" in page


def test_the_verdict_comes_first_and_names_the_main_root_cause():
    page = render_html(summary(), {})
    body = page[page.index("<body>"):]
    assert body.index('<div class="verdict fail"><div class="word">FAIL</div>') < body.index("<h2>")
    verdict = body[body.index('class="verdict'):body.index("<h2>")]
    assert "2 root causes of severity error" in verdict and "200 of 200 probe rows" in verdict
    assert "The main one: <code>mask_mismatch</code>" in verdict  # two consequences follow from it, one from dx


def test_a_pass_says_what_was_excused_and_why():
    page = render_html(summary(verdict="pass", findings=[KINK], rows={"probe": {
        "rows": 200, "pass": 198, "fail": 0, "kink": 2, "error": 0, "convention": 0}}), {})
    verdict = page[page.index('class="verdict'):page.index("<h2>")]
    assert '<div class="word">PASS</div>' in verdict and "apart from what is excused below" in verdict
    assert "<code>kink</code>: a ReLU pre-activation lay within rounding of 0" in verdict
    assert "Seen on: 2 of 200 probe rows" in verdict
    assert "Nothing was excused" in render_html(summary(verdict="pass", findings=[]), {})


def test_text_from_the_summary_is_escaped():
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    finding = {**ROOT_DB1, "message": hostile, "fix": hostile}
    page = render_html(summary(findings=[finding], environment={"python": hostile}, config={"layers": hostile},
                               scenario=hostile), {})
    assert "<script" not in page and "<img" not in page  # no tag of theirs survives; the page has none of its own
    assert page.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;") >= 5


def test_images_are_embedded_as_data_uris_in_the_teaching_order_with_captions():
    images = {"fit.png": b"\x89PNG fit", "dead_relu_map.png": b"\x89PNG map", "gradient_diffs.png": b"\x89PNG diffs"}
    page = render_html(summary(), images)
    sources = re.findall(r'<img alt="([^"]+)" src="([^"]+)"', page)
    assert [name for name, _ in sources] == ["dead_relu_map.png", "gradient_diffs.png", "fit.png"]
    for name, src in sources:
        assert src == "data:image/png;base64," + base64.b64encode(images[name]).decode()
    assert "a Relu whose backward forgets its mask shows red on the NumPy side" in page
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", page)  # nothing outside the file
    assert "<link" not in page and "<script" not in page


def test_the_page_works_without_images_and_without_most_keys():
    page = render_html(summary(), {})
    assert "<img" not in page and "No plots in this report" in page
    bare = render_html({}, {})
    assert '<div class="word">PASS</div>' in bare and "No errors and no warnings." in bare
    sigmoid = render_html(summary(dead_units={"fraction_dead": {}, "dead_on_every_sample": []}, dead_relu_steps=[],
                                  saturated_units={"1.0": {"numpy": 0.25, "keras": 0.25}}), {})
    assert "This model has no ReLU layer" in sigmoid and "saturated" in sigmoid and "25%" in sigmoid


def test_the_configuration_keeps_the_architecture_and_says_whose_classes_ran():
    page = render_html(summary(config={"layers": [{"units": 2, "activation": "relu"}]},
                               layers={"Relu": "yours (Relu from my_layers.py)", "Affine": "reference"}), {})
    setup = page[page.index("<h2>Configuration"):]
    assert "<th>layers</th><td>units: 2, activation: relu</td>" in setup
    assert "<th>layer classes</th><td>Relu: yours (Relu from my_layers.py), Affine: reference</td>" in setup


def test_dead_units_are_named_as_units_and_the_stepping_check_is_a_sentence():
    page = render_html(summary(), {})
    assert "layer 1, unit 1" in page and ">1.1<" not in page
    assert ("both sides: dead on 160 of 160 steps; on all of them dW was exactly 0 and W did not move, while W itself "
            "was nonzero") in page
    assert "dead on every sample: it never learns" in page


def test_worst_differences_mark_what_is_beyond_the_tolerance():
    page = render_html(summary(), {})
    table = page[page.index("<h2>Worst differences"):page.index("<h2>Plots")]
    assert "Furthest beyond the tolerance: <code>probe.db1</code>, 2.95e+04 times it." in table
    assert '<td class="num over">0.295 <span class=muted>(×2.95e+04)</span></td>' in table
    assert '<td class="num">1.49e-08 <span class=muted>(0.1%)</span></td>' in table


def test_the_renderer_and_the_probe_curves_import_neither_matplotlib_nor_tensorflow():
    """A notebook can render a summary, and a run without plots can stream the probe, without the heavy imports."""
    code = ("import sys, parity.report.html, parity.report.probe_curves; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'matplotlib', 'tensorflow', 'keras', 'pandas'}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


# --- real reports in a real browser -------------------------------------------------------------

MISSING_MASK = '''"""A Relu whose backward forgets its mask: the classic bug (parity.selfcheck.selftest.ReluWithoutMask)."""
import numpy as np
from parity.book.layers import Relu as _Relu


class Relu(_Relu):
    def backward(self, dout):
        return np.array(dout, copy=True)
'''


@pytest.fixture(scope="module")
def chromium():
    from headless_browser import find_chromium

    binary = find_chromium()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("no Chromium found, and CI is set: .ci/run installs chromium-headless-shell with apt-get")
        pytest.skip("no Chromium binary found (apt-get install chromium-headless-shell, or set PARITY_CHROMIUM)")
    return binary


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """The default run's report (a pass) and a check of a Relu without its mask (a fail)."""
    from parity import cli

    base = tmp_path_factory.mktemp("html")
    (base / "missing_mask.py").write_text(MISSING_MASK)
    assert cli.main(["run", "--quiet", "--out", str(base / "pass")]) == 0
    assert cli.main(["check", "--layers", str(base / "missing_mask.py"), "--quiet", "--out", str(base / "fail")]) == 1
    return {"pass": base / "pass", "fail": base / "fail"}


def _png_width(path: Path) -> int:
    return struct.unpack(">I", path.read_bytes()[16:20])[0]  # IHDR: the width follows the 8-byte signature and tag


@pytest.mark.parametrize("verdict", ["pass", "fail"])
def test_report_html_loads_in_chromium_without_errors_and_every_image_decodes(chromium, reports, verdict, tmp_path):
    from headless_browser import check_page, screenshot

    folder = reports[verdict]
    pngs = sorted(folder.glob("*.png"))
    assert len(pngs) == 5  # lesson.png first
    seen = check_page(chromium, folder / "report.html", tmp_path)
    assert seen["errors"] == []
    assert seen["images"] == len(pngs) and seen["decoded"] == len(pngs)
    assert sorted(seen["widths"]) == sorted(_png_width(p) for p in pngs)  # each image is the full PNG, decoded
    assert seen["h1"] == "keras-parity: seed, float32"
    assert seen["text"].split()[:4] == ["keras-parity:", "seed,", "float32", verdict.upper()]  # the verdict first
    shot = screenshot(chromium, folder / "report.html", tmp_path, tmp_path / "page.png")
    assert shot.stat().st_size > 10_000  # something was drawn; a person looks at it, a test cannot


def test_the_failing_report_names_the_missing_mask_and_its_fix(reports):
    page = (reports["fail"] / "report.html").read_text()
    verdict = page[page.index('class="verdict'):page.index("<h2>")]
    assert "FAIL" in verdict and "mask_mismatch" in verdict
    assert "np.where(mask, 0, dout)" in page
