"""How a Report shows itself: repr (what pytest prints), a notebook's HTML and figures, and the CLI's way to the page."""

import contextlib
import io
import sys
import time
import webbrowser

import pytest

import parity
from parity import cli
from testkit import FIXTURES



@pytest.fixture(scope="module")
def failing():
    return parity.check(str(FIXTURES / "relu_without_mask.py"), plots=False)


def test_repr_carries_the_verdict_and_every_root_cause_within_what_pytest_shows(failing):
    from parity.compare.root_causes import root_causes

    text = repr(failing)
    groups = [(r, f) for r, f in root_causes(failing.findings) if r.severity != "info"]
    assert text.startswith("<parity Report FAIL (scenario seed, float32): ") and len(text) <= 240  # pytest cuts at 240
    for root, followers in groups:
        assert f"[{root.severity}] {root.code} ({root.phase}, {root.layer}, {root.param}) +{len(followers)} that follow" \
            in text
    assert repr(parity.run(plots=False)) == "<parity Report PASS (scenario seed, float32): no errors, no warnings>"


def test_with_many_root_causes_repr_says_less_of_each_but_names_every_one():
    from parity.compare.root_causes import root_causes
    from parity.selfcheck.selftest import AffineTransposedDW, ReluWithoutMask, SigmoidWithoutOneMinus, SignFlipLoss

    report = parity.check(MeanSquaredError=SignFlipLoss, Affine=AffineTransposedDW, Relu=ReluWithoutMask,
                          Sigmoid=SigmoidWithoutOneMinus, plots=False)
    groups = [(r, f) for r, f in root_causes(report.findings) if r.severity != "info"]
    text = repr(report)
    assert len(groups) >= 4 and len(text) <= 240
    assert all(f"[{root.severity}] {root.code} ({root.layer})" in text for root, _ in groups), text


def test_pytest_shows_the_root_causes_for_assert_report_passed_report(pytester, failing):
    """The README's fixture example, run by pytest itself in this process (its Keras side shared)."""
    pytester.makepyfile(test_user=f'''
def test_with_the_fixture(keras_parity):
    report = keras_parity(r"{FIXTURES / 'relu_without_mask.py'}", plots=False)
    assert report.passed, report
''')
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    assert f"AssertionError: {failing!r}" in result.stdout.str()


@pytest.fixture(scope="module")
def shown():
    """The default run, shown once as a notebook shows it: (report, html, seconds)."""
    report = parity.run()
    start = time.perf_counter()
    html = report._repr_html_()
    return report, html, time.perf_counter() - start


def test_a_report_shown_again_costs_nothing_and_its_html_stays_under_200_kb(shown):
    report, html, first = shown
    start = time.perf_counter()
    again = report._repr_html_()
    second = time.perf_counter() - start
    assert again == html and second < 0.2, (first, second)
    assert len(html.encode()) <= 200_000, len(html.encode())
    assert html.count('src="data:image/png;base64,') == 5 and html.index("lesson.png") < html.index("dead_relu_map.png")
    assert report.figure("lesson") is report.figure("lesson.png")  # drawn once, kept


def test_a_failing_seed_report_stays_under_200_kb_too():
    """Red points and findings make the heavier page of the seed scenario."""
    html = parity.check(str(FIXTURES / "relu_without_mask.py"))._repr_html_()
    assert "FAIL" in html[:3000] and html.count('src="data:image/png;base64,') == 5
    assert len(html.encode()) <= 200_000, len(html.encode())


def test_a_figure_shows_as_a_picture_in_a_notebook_without_matplotlib_inline(shown):
    formatters = pytest.importorskip("IPython.core.formatters")
    from matplotlib.figure import Figure

    fig = shown[0].figure("lesson")
    assert isinstance(fig, Figure)
    data, _ = formatters.DisplayFormatter().format(fig)  # what Jupyter asks of an object it displays
    assert data["image/png"].startswith(b"\x89PNG")


def run_cli(*args, out=None) -> tuple[int, str]:
    out = out or io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = cli.main(list(args))
    return status, out.getvalue()


def test_open_opens_report_html_in_the_browser(tmp_path, monkeypatch):
    opened = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *args, **kwargs: opened.append(url) or True)
    status, printed = run_cli("run", "--no-plots", "--quiet", "--open", "--out", str(tmp_path / "r"))
    html = (tmp_path / "r" / "report.html").absolute()
    assert (status, printed) == (0, "") and html.is_file() and opened == [html.as_uri()]


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_last_line_links_to_report_html(tmp_path):
    status, printed = run_cli("run", "--no-plots", "--out", str(tmp_path / "r"), out=Terminal())
    html = (tmp_path / "r" / "report.html").absolute()
    assert status == 0
    assert printed.splitlines()[-1] == (f"report: \x1b]8;;{html.as_uri()}\x1b\\{html}\x1b]8;;\x1b\\ (beside it: "
                                        "samples.csv, steps.csv, gradients.csv, summary.json)")
    _, piped = run_cli("run", "--no-plots", "--out", str(tmp_path / "p"))
    assert "\x1b" not in piped


@pytest.mark.parametrize("command", ["run", "check"])
def test_help_shows_examples_and_the_exit_statuses(capsys, command):
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0
    assert f"examples:\n  parity {command} " in out and "--sample N" in out and "--open" in out
    assert "exit status:\n  0    parity holds\n  1    parity fails" in out and "\n  130  interrupted" in out
