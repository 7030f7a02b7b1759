"""Every door gets the user's classes from one loader, so every door checks the same classes: the grade worker
steps with a submission's own Momentum, as `parity check` does."""


import pytest

from parity import cli
from parity.grading.grade import find_submissions, grade_one
from parity.settings.config import resolve
from parity.user_code import loader
from testkit import FIXTURES

SUBMISSIONS = FIXTURES / "momentum_submissions"


class _NoLimit:
    """Stands in for a worker's Limit when a test drives the per-submission task in its own process."""

    used = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


@pytest.fixture
def loads(monkeypatch) -> list:
    """What each door handed the loader: the doors import `load` when they run, so the spy sees every call."""
    seen, real = [], loader.load
    monkeypatch.setattr(loader, "load", lambda *args, **kw: seen.append(args) or real(*args, **kw))
    return seen


def _graded(name: str, tmp_path) -> dict:
    (submission,) = find_submissions([str(SUBMISSIONS / f"{name}.py")])
    config = resolve({"optimizer": "momentum", "plots": False, "out": tmp_path / name})
    return grade_one((submission, config, "none", "csv"), _NoLimit())


def test_grade_fails_a_submission_whose_own_momentum_climbs_the_loss(tmp_path, loads):
    row = _graded("climbing", tmp_path)
    assert row["status"] == "fail", row
    assert "sign_flip" in row["error_codes"], row  # the optimizer diagnosis named the submission's own class
    assert any(args and str(args[0]).endswith("climbing.py") for args in loads)


def test_grade_passes_the_same_submission_with_the_books_momentum(tmp_path):
    assert _graded("correct", tmp_path)["status"] == "pass"


def test_check_fails_the_climbing_momentum_as_grade_does(tmp_path, loads, capsys):
    status = cli.main(["check", "--layers", str(SUBMISSIONS / "climbing.py"), "--optimizer", "momentum",
                       "--no-plots", "--out", str(tmp_path / "check")])
    assert status == 1
    assert "Momentum" in capsys.readouterr().out
    assert any(args and str(args[0]).endswith("climbing.py") for args in loads)


def test_the_python_door_and_assert_parity_go_through_the_loader(loads):
    import parity
    from parity.testing import assert_parity

    report = parity.check(str(SUBMISSIONS / "climbing.py"), optimizer="momentum", plots=False)
    assert not report.passed
    with pytest.raises(AssertionError, match="Momentum"):
        assert_parity(str(SUBMISSIONS / "climbing.py"), optimizer="momentum", plots=False)
    assert [str(args[0]) for args in loads] == [str(SUBMISSIONS / "climbing.py")] * 2
