"""parity grade and parity sweep on Dask workers: planted submissions get the status and codes a single
`parity check` gives; a hang, an exit and a memory hog cost their own limit, once, and nothing else.

No two grading runs share a cluster, so a run that kills workers can take no other test down with it.
The planted class is graded on a scheduler and two worker processes started on 127.0.0.1 by a process of its own
(queued with the session, conftest's started_early) and reached with --scheduler (as `dask scheduler` plus
`dask worker --nthreads 1 --memory-limit 2GB` would, with Dask's default of retrying a task whose worker died);
every other run starts grade's own local cluster. Dead workers, killed clusters and frozen ones:
tests/grading/test_grade_deadlines.py.
"""

import contextlib
import csv
import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import time
from concurrent.futures import Executor, Future
from pathlib import Path

import pytest

from parity import cli
from testkit import FIXTURES, ROOT

# Its tests start clusters whose workers import TensorFlow and fit Keras: the planted class's fixture took 230 s on
# this 2-core machine at load 17 (40 s quiet), beyond the suite's 300 s a test (pyproject.toml).
pytestmark = pytest.mark.timeout(600)

SUBMISSIONS = FIXTURES / "submissions"
TIMEOUT = 10  # seconds per submission: an honest check takes about 2 s here (the hang costs the whole of it)
EXPECTED = {"buggy_relu": "fail", "correct": "pass", "exits": "crashed", "hangs": "timeout", "memory_hog": "crashed",
            "syntax_error": "bad_input"}


@pytest.fixture(scope="module")
def planted_log(tmp_path_factory):
    """The planted modules append their name here each time they run (inherited by worker processes)."""
    path = tmp_path_factory.mktemp("planted") / "ran.txt"
    before = os.environ.get("PARITY_PLANTED_LOG")
    os.environ["PARITY_PLANTED_LOG"] = str(path)
    yield path
    if before is None:
        del os.environ["PARITY_PLANTED_LOG"]
    else:
        os.environ["PARITY_PLANTED_LOG"] = before


@contextlib.contextmanager
def planted_cluster():
    """A scheduler and two workers of its own for the planted class: three of its submissions kill their worker."""
    import dask
    from distributed import LocalCluster

    memory = {"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False,
              "distributed.worker.memory.pause": False}
    with dask.config.set(memory):
        local = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", scheduler_port=0,
                             memory_limit="2GB", dashboard_address=None, silence_logs=logging.CRITICAL,
                             scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    with local:
        yield local


def grade_planted_here(out: Path) -> tuple[int, dict]:
    """The planted folder graded through the CLI on a cluster of its own, closed when the grading ends: the exit
    status, and what its scheduler recorded (each submission's events, each worker's removal, the memory hog's end)."""
    with planted_cluster() as cluster:
        status = cli.main(["grade", str(SUBMISSIONS), "--out", str(out), "--scheduler", cluster.scheduler_address,
                           "--timeout", str(TIMEOUT), "--no-plots", "--quiet"])
        return status, _events(cluster)


# Runs grade_planted_here in a process of its own: this module, loaded from its file (testkit beside it in tests/).
GRADE_PLANTED = ("import importlib.util, os, pickle, sys\n"
                 "here, out, result = sys.argv[1:]\n"
                 "sys.path.insert(0, os.path.dirname(os.path.dirname(here)))\n"
                 "spec = importlib.util.spec_from_file_location('planted_grade', here)\n"
                 "module = importlib.util.module_from_spec(spec)\n"
                 "spec.loader.exec_module(module)\n"
                 "status, events = module.grade_planted_here(module.Path(out))\n"
                 "open(result, 'wb').write(pickle.dumps((status, events)))\n")


def grade_planted(folder: Path, env: dict) -> tuple[int, Path, dict, list[str]]:
    """grade_planted_here in a process of its own, its planted modules logging to a file of its own: (its exit
    status, the gradebook folder, the scheduler's events, the planted modules that ran)."""
    log, out, result = folder / "ran.txt", folder / "book", folder / "graded.pickle"
    log.touch()
    done = subprocess.run([sys.executable, "-c", GRADE_PLANTED, __file__, str(out), str(result)], cwd=ROOT,
                          env=env | {"PARITY_PLANTED_LOG": str(log)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    status, events = pickle.loads(result.read_bytes())
    return status, out, events, log.read_text().split()


@pytest.fixture(scope="module")
def graded(started_early):
    """The planted folder's grade (grade_planted): its rows, and what its scheduler recorded."""
    status, out, events, ran = started_early[__name__]["graded"].result()
    with open(out / "gradebook.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    hog = _hog_evidence(events)
    return {"status": status, "out": out, "rows": rows, "by_name": {Path(r["file"]).stem: r for r in rows},
            "events": events, "ran": ran, "hog": hog,
            "expected": EXPECTED | {"memory_hog": {"memory": "crashed", "watchdog": "timeout"}.get(hog, hog)}}


def _events(cluster) -> dict[str, list[dict]]:
    """Everything the planted class's scheduler recorded, by topic."""
    from distributed import Client

    with Client(cluster.scheduler_address, timeout=30) as client:
        return {topic: [m for _, m in logged] for topic, logged in client.get_events().items()}


def _item(events: dict, index: int) -> list[dict]:
    """One submission's events: its topic is keras-parity-RUN-INDEX."""
    return [m for topic, logged in events.items() if topic.startswith("keras-parity-") and topic.endswith(f"-{index}")
            for m in logged]


def _hog_evidence(events: dict) -> str:
    """What the scheduler recorded of the memory hog's end: "memory" (its nanny's memory event) or "watchdog"
    (its watchdog's timeout event: on a machine so loaded that it could not fill 1.9 GB within its 10 s, its
    time ran out first, and a timeout it is). Its row must follow that evidence, whatever the clock says;
    the memory kill itself is asserted, with a limit no load reaches, in
    test_grade_starts_its_own_local_cluster_with_a_memory_limit."""
    from parity.grading.outcome import MEMORY_EVENT

    hog = _item(events, sorted(EXPECTED).index("memory_hog"))
    if any(m.get("event") == "timeout" for m in hog):
        return "watchdog"
    started = {m["worker"] for m in hog if m.get("event") == "started"}
    return "memory" if any(m.get("worker") in started for m in events.get(MEMORY_EVENT, ())) else "no evidence"


def test_each_planted_submission_gets_its_status(graded):
    assert graded["status"] == 0
    assert [Path(r["file"]).stem for r in graded["rows"]] == sorted(EXPECTED)  # the folder's files, sorted
    assert {name: r["status"] for name, r in graded["by_name"].items()} == graded["expected"]
    rows = graded["by_name"]
    hog = rows["memory_hog"]["first_error"]
    assert "memory limit (1.86 GiB)" in hog if graded["hog"] == "memory" else hog.startswith("did not finish within")
    assert "died while checking it (it exited with status 3: os._exit(3)" in rows["exits"]["first_error"]
    assert float(rows["hangs"]["seconds"]) == TIMEOUT and "--timeout" in rows["hangs"]["first_error"]


def test_a_timeout_row_names_the_class_and_method_that_was_running(graded):
    said = graded["by_name"]["hangs"]["first_error"]
    assert f"; it was running Relu.forward ({SUBMISSIONS / 'hangs.py'}:" in said, said


@pytest.mark.parametrize("name", ["correct", "buggy_relu", "syntax_error"])
def test_a_row_equals_a_single_parity_check_of_its_file(graded, name, tmp_path, capsys):
    row = graded["by_name"][name]
    capsys.readouterr()
    status = cli.main(["check", "--layers", row["file"], "--no-plots", "--quiet", "--out", str(tmp_path / "one")])
    assert {0: "pass", 1: "fail", 2: "bad_input"}[status] == row["status"]
    if status == 2:
        assert capsys.readouterr().err == f"error: {row['first_error']}\n"
        assert row["report"] == "" and not (graded["out"] / name).exists()
        return
    single = json.loads((tmp_path / "one" / "summary.json").read_text())
    errors = [f for f in single["findings"] if f["severity"] == "error"]
    assert row["error_codes"] == ";".join(dict.fromkeys(f["code"] for f in errors))
    assert row["warnings"] == ";".join(dict.fromkeys(f["code"] for f in single["findings"] if f["severity"] == "warning"))
    first = errors[0]["message"] + (f" ({errors[0]['where']})" if errors and "where" in errors[0]
                                     and errors[0]["where"] not in errors[0]["message"] else "") if errors else ""
    assert row["first_error"] == first and row["fix"] == (errors[0]["fix"] if errors else "")
    # The report folder is the one `parity check` writes: same files, same tables byte for byte, same summary
    # but for the folder it names.
    folder = graded["out"] / row["report"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    for table in ("samples.csv", "steps.csv", "gradients.csv"):
        assert (folder / table).read_bytes() == (tmp_path / "one" / table).read_bytes(), table
    graded_summary = json.loads((folder / "summary.json").read_text())
    assert graded_summary["config"].pop("out") == str(graded["out"] / name)
    single["config"].pop("out")
    assert graded_summary == single


class _NoLimit:
    """Stands in for a worker's Limit when a test drives the per-submission task in its own process."""

    used = 0.0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def test_only_failing_submissions_get_plots_and_all_share_one_keras_side(tmp_path, monkeypatch):
    from dataclasses import replace

    from parity.keras_side import reference as runner
    from parity.settings.config import resolve
    from parity.grading.grade import find_submissions, grade_one

    fits = []
    monkeypatch.setattr(runner, "keras_reference", lambda prepared, fit=runner.keras_reference: fits.append(1) or fit(prepared))
    config = resolve({})
    files, fitted = {}, []
    for sub in find_submissions([str(SUBMISSIONS / "buggy_relu.py"), str(SUBMISSIONS / "correct.py")]):
        row = grade_one((sub, replace(config, out=tmp_path / sub.folder), "failing", "csv"), _NoLimit())
        files[row["status"]], fitted = row["files"], fitted + [len(fits)]
        assert json.loads(row["files"]["summary.json"])["config"]["plots"] is (row["status"] == "fail")
    assert {"gradient_diffs.png", "dead_relu_map.png", "stepping.png", "fit.png"} <= set(files["fail"])
    assert not [name for name in files["pass"] if name.endswith(".png")]
    assert fitted[0] <= 1 and fitted[1] == fitted[0]  # Keras fitted at most once (the warm-up), then reused


def test_sys_exit_in_a_layer_is_a_crashed_row_not_a_dead_worker(tmp_path):
    from parity.settings.config import resolve
    from parity.grading.grade import find_submissions, grade_one

    (tmp_path / "quits.py").write_text("import sys\n\nclass Relu:\n    def forward(self, x):\n        sys.exit(4)\n\n"
                                       "    def backward(self, dout):\n        return dout\n")
    (sub,) = find_submissions([str(tmp_path / "quits.py")])
    row = grade_one((sub, resolve({"plots": False, "out": tmp_path / "quits"}), "none", "csv"), _NoLimit())
    assert row == {"status": "crashed", "seconds": 0.0, "first_error": "the check stopped with SystemExit: 4"}


def test_a_hang_an_exit_and_a_memory_hog_run_once_and_delay_nothing_beyond_their_limit(graded):
    # Each ran exactly once although the cluster retries tasks whose worker died: an attempt that finds
    # an earlier one started refuses to run it again.
    assert sorted(graded["ran"]) == ["exits", "hangs", "memory_hog"]
    rows = graded["rows"]
    assert all(r["status"] and r["first_error"] for r in rows if r["status"] not in ("pass",))
    # Nothing waited behind them: no other submission was ever on a worker that died (Dask would have queued the
    # next one there, to wait out a hang's whole limit and then start over). A dying worker may hold Dask's
    # retry of an earlier death, which the worker refuses to run.
    names = sorted(EXPECTED)
    held = [{names[int(key.split("-")[-2])] for key in m["processing-tasks"]}
            for m in graded["events"]["all"] if m.get("action") == "remove-worker"]
    assert set().union(*held) == {"exits", "hangs", "memory_hog"}, held
    # ... and the hang cost its limit, once.
    assert float(graded["by_name"]["hangs"]["seconds"]) == TIMEOUT and graded["ran"].count("hangs") == 1


# -- crash or timeout: told by the worker's exit status, however late its death is noticed ------------------

LATE = {  # each dies at import, so no worker needs TensorFlow for them
    "exits_late": ("import os, time\ntime.sleep(1)\nos._exit(3)\n", "crashed", "it exited with status 3"),
    "hangs_at_import": ("while True:\n    pass\n", "timeout", "--timeout"),
    # Not here: C code that holds the GIL (sum(range(10**18))), ended by the kernel timer's SIGALRM. Its
    # status reads as a timeout (the exit-status test below), but one run of this test with it hung past
    # 20 minutes and could not be reproduced in eleven more: a CI hang costs more than the case proves.
}


def test_an_exit_noticed_late_is_crashed_and_hangs_are_timeouts(planted_log, tmp_path, monkeypatch):
    """Every death here is noticed an hour late, as far as the client's clock can tell: the fallback
    (did the time run out by the moment the death was noticed?) would read both as timeouts."""
    import types

    from parity.grading import outcome

    late = types.SimpleNamespace(time=lambda: time.time() + 3600, monotonic=time.monotonic, sleep=time.sleep)
    monkeypatch.setattr(outcome, "time", late)
    for name, (source, _, _) in LATE.items():
        (tmp_path / f"{name}.py").write_text(source)
    status = cli.main(["grade", str(tmp_path), "--out", str(tmp_path / "book"), "--workers", "2", "--memory-limit",
                       "1GB", "--timeout", "3", "--no-plots", "--quiet"])
    assert status == 0
    rows = {Path(r["file"]).stem: r for r in csv.DictReader(open(tmp_path / "book" / "gradebook.csv", newline=""))}
    assert {name: rows[name]["status"] for name in LATE} == {name: want for name, (_, want, _) in LATE.items()}
    for name, (_, _, said) in LATE.items():
        assert said in rows[name]["first_error"], rows[name]["first_error"]


class _Events:
    """Stands in for a Dask client: its event log, by topic."""

    def __init__(self, **topics):
        self.topics = topics

    def get_events(self, topic):
        return [(0.0, msg) for msg in self.topics.get(topic, [])]


def _classified(exit_statuses=(), memory=(), nanny=True, watched=True):
    """How an item whose worker died reads when its death is noticed 100 s after it started, with a 2 s limit."""
    from parity.grading.outcome import MEMORY_EVENT, classify
    from parity.grading.worker_exits import EXIT_TOPIC

    started = {"event": "started", "worker": "tcp://127.0.0.1:1", "time": time.time() - 100, "used": 0.0,
               "memory_limit": 2**30, "host": "here", "pid": 41, "nanny": nanny}
    client = _Events(item=[started], **{EXIT_TOPIC: [{"host": "here", "pid": 41, "exitcode": c} for c in exit_statuses]
                                        + [{"host": "there", "pid": 41, "exitcode": 0}]},
                     **{MEMORY_EVENT: [{"worker": started["worker"], "pid": 41, "rss": 2**31} for _ in memory]})
    return classify(client, "item", 2.0, 0, watched)


@pytest.mark.parametrize("exitcode, status, said", [
    (3, "crashed", "it exited with status 3: os._exit(3)"),
    (-11, "crashed", "it was killed by SIGSEGV: a crash of the interpreter or of native code"),
    (-9, "crashed", "it was killed by SIGKILL: a kill from outside"),
    (124, "timeout", "did not finish within the 2 s limit"),  # the watchdog's status
    (-14, "timeout", "did not finish within the 2 s limit"),  # the kernel timer's SIGALRM
])
def test_a_dead_workers_exit_status_decides_crashed_or_timeout_not_the_clock(exitcode, status, said):
    outcome = _classified([exitcode])
    assert (outcome.status, said in outcome.message) == (status, True), outcome.message


def test_a_memory_kill_is_crashed_and_without_an_exit_status_the_clock_decides(monkeypatch):
    from parity.grading import outcome

    assert "memory limit (1.00 GiB) with 2.00 GiB in use" in _classified([-15], memory=[1]).message
    monkeypatch.setattr(outcome, "EXIT_WAIT_S", 0.2)
    monkeypatch.setattr(outcome, "MEMORY_WAIT_S", 0.2)
    # No nanny to tell, no plugin, or no word from it: the fallback reads a death noticed after the limit as a timeout.
    assert {_classified(nanny=False).status, _classified(watched=False).status, _classified().status} == {"timeout"}


def test_the_nannys_death_lines_are_read_as_this_dask_writes_them():
    from distributed.nanny import WorkerProcess

    from parity.grading.worker_exits import exit_event

    for exitcode in (3, 124, -11, -14):
        assert exit_event(WorkerProcess._death_message(None, 4321, exitcode))["exitcode"] == exitcode
    assert exit_event(WorkerProcess._death_message(None, 4321, 255)) is None  # "killed by unknown signal"
    assert exit_event("Closing Nanny at 'tcp://127.0.0.1:1'. Reason: nanny-close") is None


def test_gradebook_holds_csv_json_html_and_a_report_per_checked_submission(graded):
    out = graded["out"]
    with open(out / "gradebook.csv", newline="") as f:
        assert next(csv.reader(f)) == ["file", "status", "error_codes", "first_error", "fix", "warnings", "seconds",
                                       "report"]
    book = json.loads((out / "gradebook.json").read_text())
    assert book["tool"] == "keras-parity" and book["kind"] == "gradebook"
    hog_timed_out = graded["hog"] == "watchdog"
    assert book["counts"] == {"pass": 1, "fail": 1, "bad_input": 1, "timeout": 1 + hog_timed_out,
                              "crashed": 2 - hog_timed_out}
    assert sorted(p.name for p in out.iterdir()) == ["buggy_relu", "correct", "gradebook.csv", "gradebook.html",
                                                     "gradebook.json"]
    assert not list(out.parent.glob(".book.tmp-*"))
    # A gradebook is ours: grading again into it is allowed, and replaces it whole; a run may not replace it.
    from parity.errors import ParityInputError
    from parity.report.folder import check_out, folder_kind

    assert folder_kind(out) == "gradebook"
    check_out(out, "gradebook")
    with pytest.raises(ParityInputError, match="holds a keras-parity gradebook"):
        check_out(out, "report")


def _browser() -> str | None:
    for name in ("chromium-headless-shell", "chromium", "chromium-browser", "google-chrome", "chrome-headless-shell"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def dump_dom(url: str) -> tuple[str, str]:
    """The page's DOM after its scripts ran, and the browser's log, from a headless Chromium."""
    browser = _browser()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("no headless Chromium: apt-get install -y chromium-headless-shell")
        pytest.skip("no headless Chromium (apt-get install -y chromium-headless-shell)")
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=2000", "--dump-dom", url], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, done.stderr


def test_gradebook_html_loads_in_a_browser_and_filters_by_status(graded):
    page = (graded["out"] / "gradebook.html").resolve()
    dom, log = dump_dom(page.as_uri() + "#timeout")
    assert 'data-ready="yes"' in dom  # its script ran to the end
    timeouts = 1 + (graded["hog"] == "watchdog")  # the hang, and the memory hog where its time ran out first
    assert f"{timeouts} of 6 shown" in dom
    assert dom.count('<tr data-status="') == 6 and dom.count(" hidden=") == 6 - timeouts
    assert "Uncaught" not in log and "CONSOLE" not in log, log[-2000:]
    assert 'href="correct/summary.json"' in dom and "file://" not in dom.replace(page.as_uri(), "")


def test_grade_starts_its_own_local_cluster_with_a_memory_limit(planted_log, tmp_path):
    """Grade's default: a LocalCluster of its own (no retries of a task whose worker died); none of these
    submissions gets far enough to load TensorFlow."""
    hog, broken = SUBMISSIONS / "memory_hog.py", SUBMISSIONS / "syntax_error.py"
    (tmp_path / "helper.txt").write_text("not a submission")
    status = cli.main(["grade", str(broken), str(hog), str(broken), "--out", str(tmp_path / "book"), "--workers", "1",
                       "--memory-limit", "1GB", "--timeout", "30", "--quiet"])
    assert status == 0
    rows = list(csv.DictReader(open(tmp_path / "book" / "gradebook.csv", newline="")))
    assert [(Path(r["file"]).name, r["status"]) for r in rows] == [("syntax_error.py", "bad_input"),
                                                                   ("memory_hog.py", "crashed")]  # each file once
    assert "memory limit (0.93 GiB)" in rows[1]["first_error"]


def sweep_two_seeds(tmp_path: Path, env: dict) -> tuple[Path, subprocess.CompletedProcess]:
    """`parity sweep` in a process of its own, on a local cluster of its own: (its folder, the finished process)."""
    return tmp_path, subprocess.run([sys.executable, "-m", "parity.cli", "sweep", "--seeds", "3,4", "--out",
                                     str(tmp_path / "sweep"), "--workers", "1", "--memory-limit", "2GB", "--quiet"],
                                    cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def start_early(folder: Path, lane: Executor) -> dict[str, Future]:
    """The planted class's grade (two workers that import TensorFlow, the hang's 10 s) and the sweep (a worker that
    imports TensorFlow and fits two seeds), queued with the session (conftest's started_early): they run beside the
    other modules' tests instead of holding this process."""
    env = dict(os.environ)  # the session's environment, not a test's
    (folder / "graded").mkdir()
    return {"graded": lane.submit(grade_planted, folder / "graded", env),
            "sweep": lane.submit(sweep_two_seeds, folder, env)}


@pytest.fixture(scope="module")
def swept(started_early) -> tuple[Path, subprocess.CompletedProcess]:
    return started_early[__name__]["sweep"].result()


def test_sweep_reports_false_alarms_and_tolerance_shares(swept):
    tmp_path, done = swept
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    rows = list(csv.DictReader(open(tmp_path / "sweep" / "sweep.csv", newline="")))
    assert [(r["scenario"], r["dtype"], r["seed"], r["status"]) for r in rows] == [
        ("seed", "float32", "3", "pass"), ("seed", "float32", "4", "pass")]
    assert record["runs"] == 2 and record["false_alarm_rate"] == 0.0 and record["counts"]["pass"] == 2
    shares = record["tolerance_used"]["float32"]
    assert {"probe.dW1", "probe.pred", "stepping.W1", "batch.db1"} <= set(shares)
    assert all(0 <= s["share"] <= 1 and s["seed"] in (3, 4) for s in shares.values())
    worst = record["largest_share"]["float32"]
    assert worst["share"] == max(s["share"] for s in shares.values()) > 0
    assert float(max(rows, key=lambda r: float(r["largest_share"]))["largest_share"]) == worst["share"]


# -- bad input: one error line naming the flag, nothing written, no cluster started -----------------------

BAD = [
    (["grade", "nope.py", "--out", "{tmp}/b"], "error: SUBMISSIONS: no such file or folder (received: nope.py)"),
    (["grade", "{tmp}/empty", "--out", "{tmp}/b"],
     "error: SUBMISSIONS: the folder {tmp}/empty holds no .py or .ipynb files, nor students' folders of them"),
    (["grade", "{tmp}/empty/notes.txt", "--out", "{tmp}/b"],
     "error: SUBMISSIONS must be .py or .ipynb files, or folders of them (received: {tmp}/empty/notes.txt)"),
    (["grade", "{ok}"], "error: grade needs --out, the gradebook folder (received: no --out)"),
    (["grade", "{ok}", "--out", "{tmp}/b", "--timeout", "0"],
     "error: --timeout must be a positive number of seconds (received: 0)"),
    (["grade", "{ok}", "--out", "{tmp}/b", "--timeout", "soon"],
     "error: --timeout must be a number of seconds (received: soon)"),
    (["grade", "{ok}", "--out", "{tmp}/b", "--workers", "0"], "error: --workers must be at least 1 (received: 0)"),
    (["grade", "{ok}", "--out", "{tmp}/b", "--memory-limit", "2000"],
     "error: --memory-limit must be auto or a size of at least 512MiB, such as 2GB or 1.5GiB (received: 2000)"),
    (["grade", "{ok}", "--out", "{tmp}/b", "--memory-limit", "lots"],
     "error: --memory-limit must be auto or a size of at least 512MiB, such as 2GB or 1.5GiB (received: lots)"),
    (["grade", "{ok}", "--out", "{tmp}/b", "--workers", "2", "--scheduler", "tcp://127.0.0.1:8786"],
     "error: --workers applies to the local cluster; a cluster at --scheduler has its own workers"),
    (["grade", "{ok}", "--out", "{tmp}/new/b", "--scheduler", "nowhere"],
     "error: --scheduler could not reach a Dask scheduler at nowhere (missing port number"),
    (["grade", "{ok}", "--out", "{tmp}/empty"], "error: --out {tmp}/empty holds files that are not a keras-parity gradebook"),
    (["grade", "{ok}", "--out", "{tmp}/b", "--dtype", "float16"],
     "error: --dtype must be float32 or float64 (received: float16)"),
    (["grade", "{ok}", "--out", "{tmp}/b", "--no-plots", "--all-plots"], "error: --no-plots and --all-plots contradict"),
    (["sweep", "--seeds", "9-1", "--out", "{tmp}/s"],
     "error: --seeds must be seeds or ranges of them such as 0-999 or 1,2,10-19, each in [0, 4294967295] (received: 9-1)"),
    (["sweep", "--seeds", "a-b", "--out", "{tmp}/s"], "error: --seeds must be seeds or ranges of them"),
    (["sweep", "--seeds", "0-9", "--seed", "3", "--out", "{tmp}/s"],
     "error: sweep takes --seeds, a list or range such as 0-999 (received: --seed 3)"),
    (["sweep", "--seeds", "0-9", "--scenario", "seed,nope", "--out", "{tmp}/s"],
     "error: --scenario must be a comma-separated list of seed, sigmoid, softmax, deep, regularized, cnn (received: seed,nope)"),
    (["sweep", "--seeds", "0-9", "--dtype", "float32,half", "--out", "{tmp}/s"],
     "error: --dtype must be a comma-separated list of float32, float64 (received: float32,half)"),
    (["sweep", "--seeds", "0-9"], "error: sweep needs --out, the sweep folder (received: no --out)"),
]


@pytest.mark.parametrize("argv, expected", BAD, ids=[" ".join(a)[:60] for a, _ in BAD])
def test_bad_input_is_one_error_line_naming_the_flag_and_nothing_is_written(argv, expected, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a report, not a submission")
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    args = [a.format(tmp=tmp_path, ok=SUBMISSIONS / "correct.py") for a in argv]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(expected.format(tmp=tmp_path)), err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


def test_report_folders_are_named_by_stem_and_by_parent_where_stems_clash(tmp_path):
    from parity.grading.grade import find_submissions

    for who in ("alice", "bob"):
        (tmp_path / who).mkdir()
        (tmp_path / who / "layers.py").write_text("")
    (tmp_path / "carol.py").write_text("")
    (tmp_path / "gradebook.csv.py").write_text("")
    found = find_submissions([str(tmp_path / "alice" / "layers.py"), str(tmp_path / "bob" / "layers.py"),
                              str(tmp_path), str(tmp_path / "carol.py")])
    assert [s.folder for s in found] == ["alice--layers", "bob--layers", "carol", "tmp_path--gradebook.csv"
                                         .replace("tmp_path", tmp_path.name)]
    assert [Path(s.given).name for s in found] == ["layers.py", "layers.py", "carol.py", "gradebook.csv.py"]


def test_gradebook_html_escapes_what_submissions_write():
    from parity.grading.grade import Gradebook, Row
    from parity.grading.gradebook_html import render_gradebook

    hostile = Row('<img src=x onerror="alert(1)">.py', "bad_input", first_error="<script>alert(2)</script>",
                  fix='"><b>', seconds=0.0)
    page = render_gradebook(Gradebook(Path("out"), [hostile], {"scenario": "seed", "dtype": "float32", "seed": 1,
                                                               "timeout_s": 60.0, "plots": "failing", "workers": 2,
                                                               "memory_limit": 2_000_000_000}))
    assert "<script>alert" not in page and "<img" not in page and '"><b>' not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page and "memory limit 1.86 GiB each" in page
