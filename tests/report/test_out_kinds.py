"""--out never replaces a folder of another kind: a report, a gradebook, a sweep and a bench record each replace only
their own kind, refuse every other (and a folder that is not ours) with exit 2, and leave every file where it was."""

import json
from pathlib import Path

import pytest

from parity import cli
from parity.errors import ParityInputError
from parity.report.folder import KINDS, check_out, folder_kind
from parity.version import SCHEMA_VERSION, TOOL
from testkit import FIXTURES

SUBMISSIONS = FIXTURES / "submissions"


def stamp(kind: str, **extra) -> str:
    return json.dumps({"tool": TOOL, "version": "0", "schema_version": SCHEMA_VERSION, "kind": kind, **extra})


def gradebook(folder: Path) -> Path:
    """A gradebook as grade leaves it: its three files and a report folder per checked submission (35 files)."""
    for name in ("gradebook.csv", "gradebook.html"):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(name)
    (folder / "gradebook.json").write_text(stamp("gradebook"))
    for student in ("alice", "bob", "carol", "dave"):
        (folder / student).mkdir()
        (folder / student / "summary.json").write_text(stamp("report"))
        for name in ("samples.csv", "steps.csv", "gradients.csv", "report.html", "gradient_diffs.png",
                     "dead_relu_map.png", "stepping.png"):
            (folder / student / name).write_text(f"{student} {name}")
    return folder


FOLDERS = {  # kind -> how to make one, as its command leaves it
    "report": lambda f: [(f / n).write_text(n) for n in ("samples.csv", "steps.csv", "gradients.csv", "report.html")]
    and (f / "summary.json").write_text(stamp("report")),
    "gradebook": gradebook,
    "sweep": lambda f: (f / "sweep.csv").write_text("scenario,seed\n") and (f / "sweep.json").write_text(stamp("sweep")),
    "bench": lambda f: (f / "bench.json").write_text(stamp("bench")),
    "foreign": lambda f: (f / "notes.txt").write_text("mine") and (f / "summary.json").write_text('{"verdict": "pass"}'),
}


def make(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    folder.mkdir()
    FOLDERS[kind](folder)
    return folder


def command(kind: str, out: Path, tmp_path: Path) -> list[str]:
    """The command that writes a `kind` folder at `out`; each refuses a bad --out before any work."""
    return {"report": ["run", "--out", str(out)],
            "gradebook": ["grade", str(SUBMISSIONS / "correct.py"), "--out", str(out)],
            "sweep": ["sweep", "--seeds", "1-2", "--out", str(out)],
            "bench": ["bench", "--out", str(out), "--samples", "1000", "--steps", "200"]}[kind]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


PAIRS = [(writer, there) for writer in KINDS for there in [*KINDS, "foreign"] if writer != there]


@pytest.mark.parametrize("writer,there", PAIRS, ids=[f"{w}-over-{t}" for w, t in PAIRS])
def test_out_refuses_a_folder_of_another_kind_and_leaves_every_file(tmp_path, capsys, writer, there):
    folder = make(tmp_path, there)
    before = tree(folder)
    assert cli.main(command(writer, folder, tmp_path)) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and "Traceback" not in captured.err
    record, noun, _ = KINDS[writer]
    if there == "foreign":
        assert f"holds files that are not a keras-parity {noun}" in captured.err, captured.err
    else:
        theirs, their_noun, by = KINDS[there]
        assert f"holds a keras-parity {their_noun} ({theirs}, written by {by}), not a {noun}" in captured.err
    assert "(nothing was changed)" in captured.err
    assert tree(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [there]  # no temporary folder either


def test_the_issue_case_run_over_a_gradebook_removes_none_of_its_35_files(tmp_path, capsys):
    book = gradebook(tmp_path / "book")
    before = tree(book)
    assert len(before) == 35
    assert cli.main(["run", "--out", str(book)]) == 2
    assert tree(book) == before
    assert "holds a keras-parity gradebook (gradebook.json, written by parity grade), not a report" in \
        capsys.readouterr().err


@pytest.mark.parametrize("kind", list(KINDS))
def test_out_accepts_its_own_kind_a_new_and_an_empty_folder(tmp_path, kind):
    check_out(make(tmp_path, kind), kind)
    check_out(tmp_path / "new", kind)
    (tmp_path / "empty").mkdir()
    check_out(tmp_path / "empty", kind)


def test_a_folder_inside_a_gradebook_is_part_of_it(tmp_path, capsys):
    book = gradebook(tmp_path / "book")
    before = tree(book)
    assert cli.main(["run", "--out", str(book / "alice")]) == 2
    assert f"is inside {book}/, a keras-parity gradebook written by parity grade" in capsys.readouterr().err
    with pytest.raises(ParityInputError, match="is inside"):
        check_out(book / "alice" / "deeper", "report")
    assert tree(book) == before


OLDER = {  # records written before the kind was: known by the file they are
    "report": ("summary.json", {"tool": TOOL, "version": "0.1", "schema_version": 2, "verdict": "pass"}),
    "gradebook": ("gradebook.json", {"tool": TOOL, "version": "0.1", "schema_version": 2}),
    "sweep": ("sweep.json", {"tool": TOOL, "version": "0.1", "schema_version": 2}),
    "bench": ("bench.json", {"floors": {}, "probe": {"samples": 1000}}),
}


@pytest.mark.parametrize("kind", list(OLDER))
def test_older_folders_without_a_kind_are_known_by_the_record_they_hold(tmp_path, kind):
    name, record = OLDER[kind]
    (tmp_path / name).write_text(json.dumps(record))
    assert folder_kind(tmp_path) == kind


def test_a_record_of_another_tool_or_of_two_kinds_is_not_ours(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"tool": "other", "schema_version": 2}))
    assert folder_kind(tmp_path) is None
    (tmp_path / "summary.json").write_text(stamp("gradebook"))  # a summary.json that says it is a gradebook
    assert folder_kind(tmp_path) is None
    (tmp_path / "summary.json").write_text(stamp("report"))
    (tmp_path / "sweep.json").write_text(stamp("sweep"))
    assert folder_kind(tmp_path) is None
