"""Faults while the report is written: one `error:` line saying what failed and where, exit 3, the previous report intact."""

import errno
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from parity import cli
from parity.report import folder
from parity.report import writer
from parity.errors import ReportWriteError

PREVIOUS = ["run", "--dtype", "float64", "--epochs", "1", "--no-plots", "--quiet"]


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == "" and "Traceback" not in captured.err
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    return captured.err


@pytest.fixture
def small_disk(tmp_path):
    """A 400 KB tmpfs, mounted for this test: room for a small report, not for a large one."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / f"disk-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_is_one_error_line_exit_3_and_the_previous_report_stays(small_disk, capsys):
    out = small_disk / "report"
    assert cli.main([*PREVIOUS, "--out", str(out)]) == 0
    before = files_of(out)
    assert cli.main(["run", "--dtype", "float64", "--epochs", "1", "--samples", "4000", "--quiet", "--out", str(out)]) == 3
    err = one_error_line(capsys)
    assert err.startswith(f"error: could not write the report {out}/: No space left on device (writing ")
    assert err.rstrip().endswith("the previous report there is left as it was")
    assert files_of(out) == before
    assert sorted(p.name for p in small_disk.iterdir()) == ["report"]  # no temporary folder left behind


def test_an_oserror_while_writing_a_table_names_the_table(tmp_path, capsys, monkeypatch):
    out = tmp_path / "report"
    assert cli.main([*PREVIOUS, "--out", str(out)]) == 0
    before = files_of(out)

    def full(self, frame):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writer._Table, "_write", full)
    assert cli.main(PREVIOUS[:-1] + ["--out", str(out)]) == 3
    err = one_error_line(capsys)
    assert err == (f"error: could not write the report {out}/: No space left on device (writing samples.csv); "
                   "the previous report there is left as it was\n")
    assert files_of(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_permission_lost_before_the_move_puts_the_previous_report_back(tmp_path, capsys, monkeypatch):
    out = tmp_path / "report"
    assert cli.main([*PREVIOUS, "--out", str(out)]) == 0
    before = files_of(out)
    replace = os.replace

    def denied(src, dst):
        if ".tmp-" in Path(src).name:  # the new report's move into place; the old report has already moved aside
            raise PermissionError(errno.EACCES, "Permission denied", str(dst))
        return replace(src, dst)

    monkeypatch.setattr(folder.os, "replace", denied)
    assert cli.main([*PREVIOUS, "--out", str(out)]) == 3
    err = one_error_line(capsys)
    assert err.startswith(f"error: could not move the new report into place at {out}/: Permission denied")
    assert files_of(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_folder_that_cannot_be_made_is_a_write_error_with_nothing_written(tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(folder.tempfile, "mkdtemp", refused)
    with pytest.raises(ReportWriteError, match=r"could not create the report folder .*/new/: Read-only file system; "
                                               r"nothing was written"):
        with folder.atomic_folder(tmp_path / "new"):
            pass
    assert list(tmp_path.iterdir()) == []
