"""Gradescope's results.json (its autograder specification, "Output format") from graded tests.

One test per graded class and per phase of the whole network, each visible: its score, `status` passed or
failed, and as `output` the cause and where it is. The fix to try is never in a visible test: each failed test's
fixes are a test of their own, worth 0 points, visible `after_due_date` (instructors always see every test).
The run's terminal output goes to Gradescope's stdout capture, which `stdout_visibility: hidden` keeps from
students, since it names fixes. A submission that could not be checked (bad input, a timeout, a crash) is score
0 with one visible test saying why.
"""

from __future__ import annotations

from parity.report.graded_tests import GradedTest

__all__ = ["gradescope_results", "gradescope_failure", "FIX_VISIBILITY"]

FIX_VISIBILITY = "after_due_date"  # when students may read the fix to try
_CHECK = "keras-parity check"


def _rounded(x: float) -> float:
    return round(float(x), 6)


def gradescope_results(tests: list[GradedTest], headline: str, notes: list[str], verdict: str) -> dict:
    shown = []
    for t in tests:
        shown.append({"name": t.name, "score": _rounded(t.points), "max_score": _rounded(t.max_points),
                      "status": "passed" if t.passed else "failed", "output": t.output, "visibility": "visible"})
        if t.fixes:
            shown.append({"name": f"{t.name}: fix to try", "score": 0.0, "max_score": 0.0, "status": "failed",
                          "output": "\n".join(t.fixes), "visibility": FIX_VISIBILITY})
    output = "\n".join([headline, *[f"{t.name}: {t.cause}" for t in tests if not t.passed], *notes])
    return {"score": _rounded(sum(t.points for t in tests)), "output": output, "visibility": "visible",
            "stdout_visibility": "hidden", "tests": shown,
            "extra_data": {"tool": "keras-parity", "verdict": verdict}}


def gradescope_failure(status: str, why: str, max_score: float) -> dict:
    """`status`: bad_input, timeout or crashed; `why`: the one sentence a student reads."""
    return {"score": 0.0, "output": f"keras-parity could not check this submission: {why}", "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": [{"name": _CHECK, "score": 0.0, "max_score": _rounded(max_score), "status": "failed",
                       "output": why, "visibility": "visible"}],
            "extra_data": {"tool": "keras-parity", "verdict": status}}
