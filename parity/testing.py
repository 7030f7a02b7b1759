"""What a test suite imports: `assert_parity`, and (through the pytest plugin) the `keras_parity` fixture.

    from parity.testing import assert_parity

    def test_my_layers_match_keras():
        assert_parity("my_layers.py", dtype="float64")
"""

from __future__ import annotations

from parity.api import check
from parity.compare.root_causes import followers_text, root_causes
from parity.result import Report

__all__ = ["assert_parity", "failure_message"]


def failure_message(report: Report, show_fix: bool = True) -> str:
    """The verdict line, then every root cause of severity error: where it happened, its fix (unless `show_fix` is
    False: what a student reads before the due date), and how many findings follow from it (grouped as the
    terminal and report.html group them)."""
    c, tol = report.result.config, report.result.tolerance
    roots = [(f, follow) for f, follow in root_causes(report.findings) if f.severity == "error"]
    lines = [f"keras-parity: FAIL with {len(roots)} error{'s' * (len(roots) != 1)} (scenario {c.scenario}, {c.dtype}, "
             f"rtol={tol.rtol:g}, atol={tol.atol:g})"]
    for f, follow in roots:
        stage = ", ".join(str(part) for part in (f.phase, f.location, f.param,
                                                  f"{f.layer}.{f.method}" if f.layer and f.method else f.layer) if part)
        at = f" ({f.where})" if f.where and f.where not in f.message else ""
        lines.append(f"  {f.code} [{stage}]: {f.message}{at}")
        if f.fix and show_fix:
            lines.append(f"      fix to try: {f.fix}")
        if follow:
            lines.append(f"      {followers_text(follow)}")
    return "\n".join(lines)


def assert_parity(layers=None, /, *, show_fix: bool = True, **options) -> Report:
    """parity.check(layers, **options); raises AssertionError naming every root error when the verdict is fail.

    Returns the Report when it passes (warnings and all), so a test can look further. Its own frames are
    hidden from pytest's traceback, as numpy.testing's are: the failure points at the test that called it.
    `show_fix=False` leaves the fixes to try out of the message: a grading test (Otter, nbgrader) shows students
    the cause and where it is.
    """
    __tracebackhide__ = True  # noqa: F841 (read by pytest from the frame)
    report = check(layers, **options)
    if not report.passed:
        raise AssertionError(failure_message(report, show_fix))
    return report
