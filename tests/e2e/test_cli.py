"""The command line: every report file, exit statuses 0/1/2, one-line errors, byte-identical reruns.

The module's three real processes are queued with the session (start_early) and run on the machine's other core;
the runs that are only compared by their files run in this process, their Keras sides shared with the session."""

import contextlib
import io
import json
import subprocess
import sys
from concurrent.futures import Executor, Future
from pathlib import Path

import pandas as pd
import pytest

from parity import cli
from testkit import ROOT

PLOTS = ["lesson.png", "gradient_diffs.png", "dead_relu_map.png", "stepping.png", "fit.png"]
BROKEN = ("import numpy as np\n\n\nclass Relu:\n    def forward(self, x):\n        self.mask = x <= 0\n"
          "        return np.where(self.mask, 0, x)\n\n    def backward(self, dout):\n"
          "        return dout  # forgets the mask: gradient flows through dead units\n")


def parity(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "parity.cli", *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=300)


def start_early(folder: Path, lane: Executor) -> tuple[Path, dict[str, Future]]:
    """The real processes, queued with the session (conftest's started_early): the default run (plots, exit 0),
    a float64 run, a broken Relu (exit 1), and the full collections of TensorFlow's import under Python's defaults
    and of a whole default run under the `parity` process's collection policy."""
    # What a user's module registers to run at exit still runs, though a check ends its process at once (cli._exit_now).
    at_exit = "\n\nimport atexit\n\natexit.register(lambda: open(__file__ + '.at-exit', 'w').write('ran'))\n"
    (folder / "broken.py").write_text(BROKEN + at_exit)
    runs = {"run": ["run", "--out", str(folder / "a")],
            "float64": ["run", "--dtype", "float64", "--no-plots", "--quiet", "--out", str(folder / "f64")],
            "broken": ["check", "--layers", str(folder / "broken.py"), "--dtype", "float64", "--epochs", "2",
                       "--no-plots", "--out", str(folder / "broken")]}
    started = {name: lane.submit(parity, *args) for name, args in runs.items()}
    # Full collections: TensorFlow's import under Python's defaults, and a whole default run as `parity` runs it.
    started["collections_main"] = lane.submit(_full_collections, "import")
    started["collections_command"] = lane.submit(_full_collections, "command", str(folder / "collected"))
    return folder, started


FULL_COLLECTIONS = ("import gc, sys\n"
                    "full = []\n"
                    "gc.callbacks.append(lambda phase, info: full.append(1) if phase == 'stop' and info['generation'] == 2 "
                    "else None)\n"
                    "from parity import cli\n"
                    "if sys.argv[1] == 'import':\n"
                    "    import parity.keras_side.side\n"
                    "else:\n"
                    "    assert cli.command(['run', '--quiet', '--out', sys.argv[2]]) == 0\n"
                    "print(len(full))\n")


def _full_collections(*args: str) -> int:
    done = subprocess.run([sys.executable, "-c", FULL_COLLECTIONS, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=True)
    return int(done.stdout)


@pytest.fixture(scope="module")
def processes(started_early) -> tuple[Path, dict[str, Future]]:
    return started_early[__name__]


@pytest.fixture(scope="module")
def in_process(processes):
    """Runs whose files are compared with the processes' files, made in this process:
    b (the default run again, without plots, quiet), f64_again (float64 again) and all (every gradient entry)."""
    base, _ = processes
    statuses, printed = {}, io.StringIO()
    with contextlib.redirect_stdout(printed):
        for name, args in {"b": ["--no-plots", "--quiet"], "f64_again": ["--dtype", "float64", "--no-plots", "--quiet"],
                           "all": ["--no-plots", "--quiet", "--all-gradients"]}.items():
            statuses[name] = cli.main(["run", *args, "--out", str(base / name)])
    return statuses, printed.getvalue()


@pytest.fixture(scope="module")
def float32_runs(processes, in_process):
    """The default run twice: a in its own process (with plots), b in this one (without)."""
    base, started = processes
    return base, started["run"].result()


@pytest.fixture(scope="module")
def all_gradients(processes, in_process):
    """The default run with every gradient entry in gradients.csv."""
    statuses, _ = in_process
    assert statuses["all"] == 0
    return processes[0] / "all"


def test_default_run_passes_and_writes_every_report_file(float32_runs):
    base, first = float32_runs
    assert first.returncode == 0, first.stderr
    assert "verdict: PASS" in first.stdout
    assert "\r" not in first.stderr and "importing TensorFlow" not in first.stderr  # a pipe gets no progress bars
    files = {p.name for p in (base / "a").iterdir()}
    assert files == {"samples.csv", "steps.csv", "gradients.csv", "summary.json", "report.html", *PLOTS}
    assert all((base / "a" / name).stat().st_size > 1000 for name in PLOTS)
    assert json.loads((base / "a" / "summary.json").read_text())["files"][-2:] == ["report.html", "summary.json"]
    html = (base / "a").absolute() / "report.html"  # the last line: a path a terminal or a browser opens as is
    assert first.stdout.splitlines()[-1].startswith(f"report: {html} (beside it: samples.csv, ")


def test_samples_csv_has_the_issue_columns_and_sample_0_at_the_notebook_x(float32_runs):
    samples = pd.read_csv(float32_runs[0] / "a" / "samples.csv")
    assert len(samples) == 200
    for column in ["sample", "x", "y", "split", "pred_numpy", "pred_keras", "loss_numpy", "loss_keras",
                   "z1_0_numpy", "z1_0_keras", "dead1_0_numpy", "dead1_0_keras", "z1_1_numpy", "dead1_1_keras",
                   "dW1_max_abs_diff", "db1_max_abs_diff", "dW2_max_abs_diff", "db2_max_abs_diff",
                   "dx_max_abs_diff", "zero_patterns_agree", "verdict"]:
        assert column in samples.columns, column
    assert samples.loc[0, "sample"] == 0
    assert round(samples.loc[0, "x"], 8) == -0.70854271
    assert list(samples["split"].value_counts().sort_index()) == [40, 160]  # test, train


def test_steps_and_gradients_csv_columns(float32_runs):
    steps = pd.read_csv(float32_runs[0] / "a" / "steps.csv")
    assert len(steps) == 160
    for column in ["step", "sample", "x", "y", "loss_numpy", "loss_keras", "dW1_max_abs_diff", "W1_max_abs_diff",
                   "b2_max_abs_diff", "dead1_0_numpy", "dead1_0_keras", "moved1_0_numpy", "moved1_0_keras"]:
        assert column in steps.columns, column
    grads = pd.read_csv(float32_runs[0] / "a" / "gradients.csv")
    assert list(grads.columns) == ["phase", "sample", "step", "layer", "param", "index", "numpy", "keras",
                                   "abs_diff", "rel_diff", "zero_numpy", "zero_keras"]
    # a passing run: no failing rows, so per phase and gradient (dW1, db1, dW2, db2, dx) its 20 largest differences,
    # or all of its entries where it has fewer (16 batches hold 16 entries of db2)
    counts = grads.groupby(["phase", "layer", "param"], observed=True).size()
    assert counts["probe"].tolist() == [20] * 5 and counts["stepping"].tolist() == [20] * 5
    assert counts["batch"].tolist() == [20, 20, 20, 20, 16]  # dx (layer 0), dW1, db1, dW2, db2


def test_the_default_gradients_table_holds_the_largest_differences_of_the_full_one(float32_runs, all_gradients):
    chosen = pd.read_csv(float32_runs[0] / "a" / "gradients.csv")
    full = pd.read_csv(all_gradients / "gradients.csv")
    # per probed sample: dW1 (2) + db1 (2) + dW2 (2) + db2 (1) + dx (1) entries; per step the same
    assert (full["phase"] == "probe").sum() == 200 * 8 and (full["phase"] == "stepping").sum() == 160 * 8
    keys = ["phase", "sample", "step", "layer", "param", "index"]
    assert len(chosen.merge(full, on=list(full.columns))) == len(chosen)  # every chosen row is a row of the full table
    for (phase, layer, param), group in full.groupby(["phase", "layer", "param"], observed=True):
        picked = chosen[(chosen["phase"] == phase) & (chosen["layer"] == layer) & (chosen["param"] == param)]
        assert picked["abs_diff"].min() >= group["abs_diff"].nlargest(len(picked)).min()
        assert not picked.duplicated(keys).any()


def test_reports_show_dead_unit_has_zero_dW_and_W_unchanged(float32_runs, all_gradients):
    folder = float32_runs[0] / "a"
    steps = pd.read_csv(folder / "steps.csv")
    grads = pd.read_csv(all_gradients / "gradients.csv")
    stepping = grads[(grads["phase"] == "stepping") & (grads["layer"] == 1) & (grads["param"] == "W")]
    seen = 0
    for j in (0, 1):
        dead_steps = steps.loc[steps[f"dead1_{j}_keras"], "step"]
        seen += len(dead_steps)
        column = stepping[stepping["index"] == f"0,{j}"].set_index("step")
        assert (column.loc[dead_steps, ["numpy", "keras"]] == 0).all().all()
        assert not steps.loc[steps[f"dead1_{j}_keras"], [f"moved1_{j}_numpy", f"moved1_{j}_keras"]].any().any()
    assert seen > 0
    summary = json.loads((folder / "summary.json").read_text())
    assert all(row["W_nonzero_when_dead"] == row["dead_steps"] for row in summary["dead_relu_steps"])


def test_summary_json_holds_verdict_tolerances_and_environment(float32_runs):
    summary = json.loads((float32_runs[0] / "a" / "summary.json").read_text())
    assert summary["verdict"] == "pass" and summary["scenario"] == "seed" and summary["dtype"] == "float32"
    assert summary["tolerances"]["float32"]["rtol"] == 1e-5 and summary["tolerances"]["float32"]["reason"]
    assert summary["max_abs_diff"]["probe.dW1"] <= 1e-6
    assert {"fraction_dead", "dead_on_every_sample"} <= set(summary["dead_units"])
    assert isinstance(summary["findings"], list) and summary["config"]["train"] == 160
    env = summary["environment"]
    for key in ["python", "numpy", "tensorflow", "keras", "keras_backend", "floatx", "TF_ENABLE_ONEDNN_OPTS", "device"]:
        assert key in env, key
    assert env["floatx"] == "float32" and env["keras_backend"] == "tensorflow"


def test_same_seed_twice_gives_byte_identical_csvs_float32(float32_runs, in_process):
    base, _ = float32_runs
    statuses, printed = in_process
    assert statuses["b"] == 0 and printed == ""  # --quiet: b prints nothing
    assert {p.name for p in (base / "b").iterdir()} == {"samples.csv", "steps.csv", "gradients.csv", "summary.json",
                                                        "report.html"}  # without plots the page is still written
    assert "<img" not in (base / "b" / "report.html").read_text()
    for name in ["samples.csv", "steps.csv", "gradients.csv"]:
        assert (base / "a" / name).read_bytes() == (base / "b" / name).read_bytes(), name


def test_same_seed_twice_gives_byte_identical_csvs_float64(processes, in_process):
    base, started = processes
    done = started["float64"].result()
    assert done.returncode == 0, done.stderr
    assert in_process[0]["f64_again"] == 0
    for name in ["samples.csv", "steps.csv", "gradients.csv"]:
        assert (base / "f64" / name).read_bytes() == (base / "f64_again" / name).read_bytes(), name


def test_bad_input_from_a_real_process_is_one_line_and_exit_2(tmp_path):
    """The full table is tests/e2e/test_bad_input.py, in process; this checks the real process and its streams."""
    out = tmp_path / "report"
    done = parity("run", "--dtype", "float16", "--out", str(out))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: --dtype must be float32 or float64 (received: float16)\n"
    assert not out.exists()


def test_the_parity_process_makes_full_collections_rare_and_main_in_process_leaves_the_policy_alone(processes):
    """A full collection walks every object TensorFlow made (about 0.07 s each here): the `parity` process waits
    for 100 middle-generation collections instead of 10 before one. `main` in a caller's process changes nothing."""
    import gc

    before = gc.get_threshold()
    try:
        assert cli.main(["run", "--dtype", "float16"]) == 2
        assert gc.get_threshold() == before
        assert cli.command(["run", "--dtype", "float16"]) == 2
        assert gc.get_threshold() == (before[0], before[1], 100)
    finally:
        gc.set_threshold(*before)
    _, started = processes
    assert started["collections_main"].result() >= 3  # Python's defaults, TensorFlow's import alone: six here
    assert started["collections_command"].result() == 0  # the import and the whole default run, plots included


def test_parity_script_is_the_cli():
    done = subprocess.run([sys.executable, "scripts/run_parity.py", "--dtype", "float16"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr == "error: --dtype must be float32 or float64 (received: float16)\n"


def test_a_broken_numpy_layer_exits_1_and_names_the_gradient(processes):
    base, started = processes
    done = started["broken"].result()
    assert done.returncode == 1, done.stderr
    assert "verdict: FAIL" in done.stdout and "mask_mismatch" in done.stdout
    summary = json.loads((base / "broken" / "summary.json").read_text())
    assert summary["verdict"] == "fail"
    assert any(f["code"] == "mask_mismatch" and f.get("param") == "dW1" for f in summary["findings"])
    assert done.stdout.splitlines()[-1].startswith("report: ")  # all of it, flushed before the process ended
    assert (base / "broken.py.at-exit").read_text() == "ran"
