"""The default run writes what it wrote before the redesign: the same CSV bytes, the same summary.json content, up to
how the CPU's float32 kernels round.

The golden copy was written on an Intel CPU, where NumPy and TensorFlow stepped the seed model bit for bit alike. On
an AMD EPYC, TensorFlow's float32 kernels round some of Keras's steps otherwise (2.4e-7 at most): the probe's table is
still the same bytes, the stepping table the same cells but those, and the gradient table, which keeps each
gradient's largest differences, picks other rows of the same gradients."""

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

from parity import cli
from testkit import CPU_FLOAT32_ROUNDING, FIXTURES

GOLDEN = FIXTURES / "golden" / "seed_float32"
# What schema 3 added since the golden copy (schema 2): what wrote the folder, and where the Keras side came from.
ADDED = {"kind", "keras_side"}
CPU_ROUNDING = CPU_FLOAT32_ROUNDING.atol
ROUNDING_SHARE = 0.05  # of the tolerance, on every summary line: 0.02 at most on the AMD EPYC, 0 on the Intel CPU


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("golden") / "seed"
    assert cli.main(["run", "--no-plots", "--quiet", "--out", str(out)]) == 0
    return out


def _rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_the_default_runs_probe_table_is_byte_identical_to_before_the_redesign(written):
    assert (written / "samples.csv").read_bytes() == (GOLDEN / "samples.csv").read_bytes()


def test_the_default_runs_steps_table_is_the_same_up_to_the_cpus_rounding(written):
    now, before = _rows(written / "steps.csv"), _rows(GOLDEN / "steps.csv")
    assert now[0] == before[0] and len(now) == len(before)
    for row_now, row_before in zip(now[1:], before[1:]):
        for column, a, b in zip(now[0], row_now, row_before):
            if a != b:  # a number the CPU rounded otherwise, never a word or a verdict
                assert abs(float(a) - float(b)) <= CPU_ROUNDING, (column, a, b)


def test_the_default_runs_gradient_table_keeps_the_same_gradients(written):
    now, before = _rows(written / "gradients.csv"), _rows(GOLDEN / "gradients.csv")
    assert now[0] == before[0] and len(now) == len(before)
    phase, param = now[0].index("phase"), now[0].index("param")
    assert Counter((r[phase], r[param]) for r in now[1:]) == Counter((r[phase], r[param]) for r in before[1:])


def test_the_default_runs_summary_is_the_same_apart_from_version_folder_and_machine(written):
    before, now = (json.loads((folder / "summary.json").read_text()) for folder in (GOLDEN, written))
    # schema 3 added what wrote the folder, and where the Keras side came from (its versions)
    assert (before["schema_version"], now["schema_version"]) == (2, 3)
    assert set(now) - set(before) == ADDED
    assert now.pop("kind") == "report" and now.pop("keras_side")["source"] == "computed"
    for summary in (before, now):
        for key in ("version", "schema_version"):
            summary.pop(key)
        summary["config"].pop("out")
        summary.pop("environment")
    # how far apart the sides are, and what share of the tolerance that is: the CPU's rounding, on every line
    for key, bound in (("max_abs_diff", CPU_ROUNDING), ("tolerance_used", ROUNDING_SHARE)):
        lines_now, lines_before = now.pop(key), before.pop(key)
        assert lines_now.keys() == lines_before.keys()
        assert max(lines_now.values()) <= bound and max(lines_before.values()) <= bound
    assert now == before
