"""What a test suite imports: `assert_parity`, and (through the pytest plugin) the `keras_parity` fixture.

    from parity.testing import assert_parity

    def test_my_layers_match_keras():
        assert_parity("my_layers.py", dtype="float64")
"""

from __future__ import annotations

from parity.api import check
from parity.result import Report

__all__ = ["assert_parity", "failure_message"]


def failure_message(report: Report, show_fix: bool = True) -> str:
    """The verdict line, then every error that is a root cause, with where it happened and its fix (unless
    `show_fix` is False: what a student reads before the due date)."""
    c, tol = report.result.config, report.result.tolerance
    roots = [f for f in report.errors if not f.consequence_of]
    follow = len(report.errors) - len(roots)
    lines = [f"keras-parity: FAIL with {len(roots)} error{'s' * (len(roots) != 1)} (scenario {c.scenario}, {c.dtype}, "
             f"rtol={tol.rtol:g}, atol={tol.atol:g})"]
    for f in roots:
        stage = ", ".join(str(part) for part in (f.phase, f.location, f.param,
                                                  f"{f.layer}.{f.method}" if f.layer and f.method else f.layer) if part)
        at = f" ({f.where})" if f.where and f.where not in f.message else ""
        lines.append(f"  {f.code} [{stage}]: {f.message}{at}")
        if f.fix and show_fix:
            lines.append(f"      fix to try: {f.fix}")
    if follow:
        lines.append(f"  ... and {follow} mismatch{'es' * (follow != 1)} in later phases that follow from these")
    return "\n".join(lines)


def assert_parity(layers=None, /, *, show_fix: bool = True, **options) -> Report:
    """parity.check(layers, **options); raises AssertionError naming every error when the verdict is fail.

    Returns the Report when it passes (warnings and all), so a test can look further. `show_fix=False` leaves the
    fixes to try out of the message: a grading test (Otter, nbgrader) shows students the cause and where it is.
    """
    report = check(layers, **options)
    if not report.passed:
        raise AssertionError(failure_message(report, show_fix))
    return report
