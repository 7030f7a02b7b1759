"""`parity bench`: the speed floors, measured side by side in one run on this machine.

Rates count both sides plus the diffs and masks (compare_traces and the per-chunk summary), never
file writing. The eager baselines (one GradientTape call per sample or step, the object layers
sample by sample) run in the same process on a subsample, so every ratio is measured under the
same load. Whole-command costs run `parity` as a subprocess: the default run against a bare import of
its libraries that ends at once as the run does (alternated, best of three each: what the run costs beyond
importing; beside it, against an import that tears its libraries down at exit), the cost per extra
sample, the default CSV format against Parquet at 1M samples, the peak memory, the cost of one more
graded submission (live, and against a recording), and a whole `parity check` against a recorded Keras side
beside the live one.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from parity.selfcheck.bench_cnn import CNN_FLOOR, CNN_RUN_FLOOR, cnn_probe, cnn_run
from parity.selfcheck.bench_commands import bare_import, command_cost, grade_class, recorded_check

__all__ = ["FLOORS", "ALONE", "floors", "run_bench", "table"]

FLOORS = {
    "probe_samples_per_s": 3_000_000,
    "probe_speedup": 10_000,
    "stepping_steps_per_s": 10_000,
    "stepping_speedup": 50,
    "extra_sample_us": 3.0,
    "default_run_beyond_imports_s": 2.5,  # the default run, plots and all, less a bare import ending as it does
    "csv_over_parquet_1M": 2.0,  # the default table format's time at 1M samples, as a multiple of Parquet's
    "peak_rss_mb_10M": 2048,
    "recheck_s": 0.5,
    "grade_extra_submission_s": 0.5,
    "recorded_check_s": 1.0,  # a cold `parity check --reference seed-float32 --no-plots` process, imports and all
    "recorded_speedup": 4.0,  # the same check computing its Keras side, over the recorded one (issue 25)
    "cnn_probe_speedup": CNN_FLOOR,  # the cnn scenario's probe over eager per-sample GradientTape (bench_cnn)
    "cnn_run_beyond_import_s": CNN_RUN_FLOOR,  # `parity run --scenario cnn`, plots and all, less the same import
}
LOWER_IS_BETTER = {"extra_sample_us", "default_run_beyond_imports_s", "csv_over_parquet_1M", "peak_rss_mb_10M",
                   "recheck_s", "grade_extra_submission_s", "recorded_check_s", "cnn_run_beyond_import_s"}
# The lines `parity bench --only NAME` measures alone: the record's part, and the floor it is judged by.
ALONE = {"cnn_probe": (cnn_probe, "cnn_probe_speedup", "speedup"),
         "cnn_run": (cnn_run, "cnn_run_beyond_import_s", "cnn_run_beyond_import_s")}


def _peak_rss_mb() -> float | None:
    """This process's peak resident memory in MB; None where the platform has no `resource` (Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def _best(fn, repeats: int = 3) -> float:
    """The fastest of a few timings: the least disturbed by a shared machine."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _inner(samples: int, steps: int, eager_samples: int, eager_steps: int) -> dict:
    """Probe and stepping rates, compiled and eager, on the seed model in float32."""
    from parity.compare.diff import compare_traces
    from parity.settings.config import resolve
    from parity.prepare import prepare
    from parity.numpy_side.closed_form import per_sample_closed_form, steps_closed_form
    from parity.numpy_side.network import build_network
    from parity.settings.resources import chunk_rows
    from parity.keras_side.reference import keras_reference, targets as _targets
    from parity.compare.stats import PhaseSummary
    from parity.settings.tolerances import tolerance_for
    from parity.keras_side.transfer import numpy_to_keras

    prepared = prepare(resolve({"samples": samples, "train": steps, "epochs": 1}))
    reference = keras_reference(prepared)
    spec, fitted, tol = prepared.spec, reference.fitted, tolerance_for("float32")
    x = reference.x
    t, _ = _targets(spec, prepared.data.y, "float32")
    hidden, relu = [i for i, _ in spec.hidden()], [i for i, s in spec.hidden() if s.activation == "relu"]

    chunk = chunk_rows(spec)

    def probe_compiled():  # as compare_numpy does it, less the findings and the writing
        bounds = [(start, min(start + chunk, samples)) for start in range(0, samples, chunk)]
        for start, stop, theirs in reference.probe_chunks(bounds):
            part = compare_traces("probe", np.arange(start, stop),
                                  per_sample_closed_form(spec, fitted, x[start:stop], t[start:stop]), theirs, tol, relu)
            PhaseSummary.of(part)

    def probe_eager():
        ours = build_network(spec, dict(fitted)).per_sample(x[:eager_samples], t[:eager_samples], hidden)
        theirs = reference.side.per_sample_eager(x[:eager_samples], t[:eager_samples])
        PhaseSummary.of(compare_traces("probe", np.arange(eager_samples), ours, theirs, tol, relu))

    def stepping(n, compiled):
        def run():
            reference.side.model.set_weights(numpy_to_keras(spec, fitted))
            if compiled:
                ours = steps_closed_form(spec, fitted, x[:n], t[:n], 0.01)
            else:  # the notebook way: layer objects, one sample at a time
                ours = build_network(spec, {k: v.copy() for k, v in fitted.items()}).step_through(x[:n], t[:n], 0.01, hidden)
            theirs = reference.side.step_through(x[:n], t[:n], 0.01, compiled=compiled)
            PhaseSummary.of(compare_traces("stepping", np.arange(n), ours, theirs, tol, relu))
        return run

    probe_compiled()  # compile once, outside the timing
    stepping(min(steps, 100), True)()
    probe_s = _best(probe_compiled)
    eager_probe_s = _best(probe_eager, repeats=1)
    step_s = _best(stepping(steps, True))
    eager_step_s = _best(stepping(eager_steps, False), repeats=1)
    probe_rate, eager_probe_rate = _rate(samples, probe_s), _rate(eager_samples, eager_probe_s)
    step_rate, eager_step_rate = _rate(steps, step_s), _rate(eager_steps, eager_step_s)
    return {
        "probe": {"samples": samples, "samples_per_s": probe_rate, "eager_samples": eager_samples,
                  "eager_samples_per_s": eager_probe_rate, "speedup": probe_rate / eager_probe_rate,
                  "vectorized_map_fallback": reference.side.vectorized_map_fallback or "none"},
        "stepping": {"steps": steps, "steps_per_s": step_rate, "eager_steps": eager_steps,
                     "eager_steps_per_s": eager_step_rate, "speedup": step_rate / eager_step_rate},
        "peak_rss_mb": _peak_rss_mb(),
    }


def _recheck() -> dict:
    """A notebook's loop: check once (Keras fits), edit a class, check again. The second check reuses the
    process's Keras side, so it costs the layer probes and the NumPy side only."""
    from parity import api
    from parity.book import layers as reference

    start = time.perf_counter()
    api.check(Relu=reference.Relu)
    first = time.perf_counter() - start

    def edited():  # a new class object each time, as re-running a notebook cell makes one
        api.check(Relu=type("Relu", (reference.Relu,), {}))

    return {"first_check_s": first, "recheck_s": _best(edited)}


def floors(measured: dict) -> dict:
    """Each floor of what was measured, with the value and whether it was met (None: not measured)."""
    return {name: {"floor": floor, "measured": measured[name],
                   "met": None if measured[name] is None else
                   (measured[name] <= floor if name in LOWER_IS_BETTER else measured[name] >= floor)}
            for name, floor in FLOORS.items() if name in measured}


def run_bench(out: Path, samples: int = 2_000_000, steps: int = 20_000, memory_check: bool = False,
              only: str | None = None) -> dict:
    """Measure everything (or the one line of ALONE named `only`), check the floors, write out/bench.json; returns
    the record."""
    if only is not None:
        measure, floor, key = ALONE[only]
        record = {only: measure()}
        return _finish(out, record, {floor: record[only][key]})
    record = _inner(samples, steps, eager_samples=200, eager_steps=200)
    record["cnn_probe"] = cnn_probe()
    record["notebook"] = _recheck()
    with tempfile.TemporaryDirectory() as tmp:
        # The default run against a bare import of its libraries, alternated and the best of three of each:
        # what the run costs beyond importing, measured under the same load.
        defaults, imports, imports_now = [], [], []
        for k in range(3):
            defaults.append(command_cost(["run", "--quiet", "--out", f"{tmp}/default{k}"])[0])
            imports.append(bare_import())
            imports_now.append(bare_import(exit_now=True))
        small_s, _ = command_cost(["run", "--samples", "1000", "--train", "160", "--no-plots", "--format", "parquet",
                               "--quiet", "--out", f"{tmp}/small"])
        big_s, _ = command_cost(["run", "--samples", "1000000", "--train", "160", "--no-plots", "--format", "parquet",
                             "--quiet", "--out", f"{tmp}/big"])
        big_csv_s, _ = command_cost(["run", "--samples", "1000000", "--train", "160", "--no-plots", "--quiet",
                                 "--out", f"{tmp}/big_csv"])
        record["commands"] = {
            "default_run_s": min(defaults), "bare_import_s": min(imports),
            "bare_import_exit_now_s": min(imports_now),
            # the run's work alone: neither the run nor this baseline tears its process down (cli._exit_now)
            "default_run_beyond_imports_s": min(defaults) - min(imports_now),
            "default_run_beyond_imports_with_teardown_s": min(defaults) - min(imports),
            "run_1k_s": small_s, "run_1M_s": big_s, "run_1M_csv_s": big_csv_s,
            "csv_over_parquet_1M": big_csv_s / big_s,
            "extra_sample_us": (big_s - small_s) / (1_000_000 - 1000) * 1e6,
        }
        if memory_check:
            wall, rss = command_cost(["run", "--samples", "10000000", "--train", "160", "--no-plots", "--format",
                                  "parquet", "--quiet", "--out", f"{tmp}/huge"])
            record["commands"] |= {"run_10M_s": wall, "peak_rss_mb_10M": rss}
    record["grade"] = grade_class()
    record["grade_recorded"] = grade_class("seed-float32")
    record["recorded"] = recorded_check()
    record["cnn_run"] = cnn_run()
    measured = {
        "probe_samples_per_s": record["probe"]["samples_per_s"], "probe_speedup": record["probe"]["speedup"],
        "stepping_steps_per_s": record["stepping"]["steps_per_s"], "stepping_speedup": record["stepping"]["speedup"],
        "extra_sample_us": record["commands"]["extra_sample_us"],
        "default_run_beyond_imports_s": record["commands"]["default_run_beyond_imports_s"],
        "csv_over_parquet_1M": record["commands"]["csv_over_parquet_1M"],
        "peak_rss_mb_10M": record["commands"].get("peak_rss_mb_10M"),
        "recheck_s": record["notebook"]["recheck_s"],
        "grade_extra_submission_s": record["grade"]["passing"]["extra_submission_s"],
        "recorded_check_s": record["recorded"]["recorded_check_s"],
        "recorded_speedup": record["recorded"]["recorded_speedup"],
        "cnn_probe_speedup": record["cnn_probe"]["speedup"],
        "cnn_run_beyond_import_s": record["cnn_run"]["cnn_run_beyond_import_s"],
    }
    return _finish(out, record, measured)


def _finish(out: Path, record: dict, measured: dict) -> dict:
    """The floors of what was measured, the machine and the stamps; out/bench.json written."""
    record["floors"] = floors(measured)
    import platform

    record["machine"] = {"python": platform.python_version(), "processor": platform.machine(),
                         "cores": __import__("os").cpu_count()}
    from parity.version import SCHEMA_VERSION, TOOL, __version__

    record = {"tool": TOOL, "version": __version__, "schema_version": SCHEMA_VERSION, "kind": "bench", **record}
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def table(record: dict) -> str:
    lines = [f"{'measure':24} {'measured':>14} {'floor':>12}  met"]
    for name, row in record["floors"].items():
        shown = "not run" if row["measured"] is None else f"{row['measured']:,.3g}" if row["measured"] < 10 \
            else f"{row['measured']:,.1f}"
        met = "-" if row["met"] is None else ("yes" if row["met"] else "NO")
        lines.append(f"{name:24} {shown:>14} {row['floor']:>12,}  {met}")
    if "cnn_run" in record:
        c = record["cnn_run"]
        lines.append(f"cnn run: {c['cnn_run_s']:.2f} s with plots, {c['cnn_run_no_plots_s']:.2f} s with --no-plots, bare "
                     f"import ending at once as the run does {c['bare_import_exit_now_s']:.2f} s (with its teardown "
                     f"{c['bare_import_s']:.2f} s, {c['cnn_run_beyond_import_with_teardown_s']:.2f} s beyond that); "
                     f"best of {c['repeats']} each, alternated; load average "
                     f"{_load(c['load_average_before'])} before, {_load(c['load_average_after'])} after")
    if "probe" not in record:  # one line measured alone (--only)
        return "\n".join(lines + ([_cnn_probe_line(record["cnn_probe"])] if "cnn_probe" in record else []))
    p, s = record["probe"], record["stepping"]
    lines.append(f"probe: {p['samples']:,} samples at {p['samples_per_s']:,.0f}/s; eager {p['eager_samples_per_s']:,.0f}/s "
                 f"on {p['eager_samples']}; vectorized_map fallback: {p['vectorized_map_fallback']}")
    lines.append(_cnn_probe_line(record["cnn_probe"]))
    cmd = record["commands"]
    lines.append(f"default run: {cmd['default_run_s']:.2f} s, bare import {cmd['bare_import_s']:.2f} s, "
                 f"{cmd['bare_import_exit_now_s']:.2f} s ending at once as the run does (best of 3 each, "
                 f"alternated); 1M samples: CSV {cmd['run_1M_csv_s']:.2f} s, Parquet {cmd['run_1M_s']:.2f} s")
    nb = record["notebook"]
    lines.append(f"notebook: first check {nb['first_check_s']:.2f} s (Keras fits); re-check of an edited class "
                 f"{nb['recheck_s']:.3f} s")
    lines.append(f"stepping: {s['steps']:,} steps at {s['steps_per_s']:,.0f}/s; eager {s['eager_steps_per_s']:,.0f}/s "
                 f"on {s['eager_steps']}")
    for key, how in (("grade", "grade"), ("grade_recorded", "grade --reference seed-float32")):
        g = record[key]
        lines.append(f"{how}: a passing class of 4 in {g['passing']['grade_4_s']:.1f} s, of 24 in "
                     f"{g['passing']['grade_24_s']:.1f} s ({g['passing']['extra_submission_s']:.2f} s per extra "
                     f"submission); a failing class (plots drawn) of 4 in {g['failing']['grade_4_s']:.1f} s, of 12 in "
                     f"{g['failing']['grade_12_s']:.1f} s ({g['failing']['extra_submission_s']:.2f} s each)")
    r = record["recorded"]
    lines.append(f"recorded: parity check --reference seed-float32 --no-plots {r['recorded_check_s']:.2f} s, the same "
                 f"check computing its Keras side {r['live_check_s']:.2f} s ({r['recorded_speedup']:.1f}x; cold "
                 f"processes, best of 3 each); with plots {r['recorded_check_with_plots_s']:.2f} s")
    return "\n".join(lines)


def _cnn_probe_line(c: dict) -> str:
    return (f"cnn probe: {c['samples']:,} samples at {c['samples_per_s']:,.0f}/s; eager {c['eager_samples_per_s']:,.1f}/s "
            f"on {c['eager_samples']} ({c['speedup']:,.0f}x); vectorized_map: {c['vectorized_map_fallback']}")


def _load(average) -> str:
    return "not known" if average is None else " / ".join(f"{v:.2f}" for v in average)
