"""PrairieLearn's results.json (its external grading docs, "Grading results") from graded tests.

`score` is the share of the points earned, in [0, 1]; each test has `points` and `max_points`, its cause and where
it is as `message`, the details as `output`. The fix to try is never written here: PrairieLearn shows the whole
file's tests to the student. The plots go in `images` as data URLs while the file stays within PrairieLearn's
1 MB limit, in the order the report shows them; `output` names any left out. Bad input is `gradable: false`
with `format_errors` (no attempt is counted against the student); a timeout or a crash is score 0 saying why.
"""

from __future__ import annotations

import base64
import json

from parity.report.graded_tests import GradedTest
from parity.report.html import PICTURE_ORDER

__all__ = ["prairielearn_results", "prairielearn_bad_input", "prairielearn_failure", "LIMIT_BYTES", "IMAGE_ORDER"]

LIMIT_BYTES = 1_000_000  # "this file should be limited to 1 MB"
IMAGE_ORDER = PICTURE_ORDER  # as report.html shows them: one list, so a new picture takes its place in both
_CHECK = "keras-parity check"


def _size(results: dict) -> int:
    return len(json.dumps(results, indent=2, ensure_ascii=False).encode("utf-8")) + 1


def prairielearn_results(tests: list[GradedTest], headline: str, notes: list[str],
                         images: dict[str, bytes] | None = None) -> dict:
    worth = sum(t.max_points for t in tests)
    results = {"gradable": True, "score": round(sum(t.points for t in tests) / worth, 6) if worth else 0.0,
               "message": headline,
               "output": "\n".join([*[f"{t.name}: {t.cause}" for t in tests if not t.passed], *notes]),
               "tests": [{"name": t.name, "description": t.name, "points": round(t.points, 6),
                          "max_points": round(t.max_points, 6), "message": t.cause or "passed", "output": t.output}
                         for t in tests],
               "images": []}
    left_out = []
    for name in sorted(images or {}, key=lambda n: IMAGE_ORDER.index(n) if n in IMAGE_ORDER else len(IMAGE_ORDER)):
        url = "data:image/png;base64," + base64.b64encode(images[name]).decode("ascii")
        results["images"].append({"label": name, "url": url})
        if _size(results) > LIMIT_BYTES - 200:  # room for the sentence that says what was left out
            results["images"].pop()
            left_out.append(name)
    if left_out:
        results["output"] += (f"\nplots left out to keep this file within PrairieLearn's 1 MB limit: "
                              f"{', '.join(left_out)}")
    return results


def prairielearn_bad_input(message: str) -> dict:
    return {"gradable": False, "format_errors": [message],
            "message": f"keras-parity could not check this submission: {message}"}


def prairielearn_failure(why: str, max_points: float) -> dict:
    return {"gradable": True, "score": 0.0, "message": f"keras-parity could not check this submission: {why}",
            "output": why, "tests": [{"name": _CHECK, "description": _CHECK, "points": 0.0,
                                      "max_points": round(max_points, 6), "message": why, "output": why}]}
