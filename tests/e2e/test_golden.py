"""The default run writes what it wrote before the redesign: the same CSV bytes, the same summary.json content."""

import json
from pathlib import Path

import pytest

from parity import cli
from testkit import FIXTURES

GOLDEN = FIXTURES / "golden" / "seed_float32"
TABLES = ("samples.csv", "steps.csv", "gradients.csv")
# What schema 3 added since the golden copy (schema 2): what wrote the folder, and where the Keras side came from.
ADDED = {"kind", "keras_side"}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("golden") / "seed"
    assert cli.main(["run", "--no-plots", "--quiet", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("table", TABLES)
def test_the_default_runs_table_is_byte_identical_to_before_the_redesign(written, table):
    assert (written / table).read_bytes() == (GOLDEN / table).read_bytes()


def test_the_default_runs_summary_is_the_same_apart_from_version_folder_and_machine(written):
    before, now = (json.loads((folder / "summary.json").read_text()) for folder in (GOLDEN, written))
    # schema 3 added what wrote the folder, and where the Keras side came from (its versions)
    assert (before["schema_version"], now["schema_version"]) == (2, 3)
    assert set(now) - set(before) == {"kind", "keras_side"}
    assert now.pop("kind") == "report" and now.pop("keras_side")["source"] == "computed"
    for summary in (before, now):
        for key in ("version", "schema_version"):
            summary.pop(key)
        summary["config"].pop("out")
        summary.pop("environment")
    assert now == before
