"""`parity sweep`: the reference layers over many seeds, scenarios and dtypes, each run through the one
pipeline on the Dask workers `grade` uses. Every run should pass: a failing verdict for layers that
are right is a false alarm. Per compared quantity and dtype, the largest share of its tolerance any
run used is the evidence behind the tolerances in parity/settings/tolerances.py.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from parity.settings.config import MAX_SEED, RunConfig, resolve
from parity.errors import ParityInputError, ToolError

__all__ = ["parse_seeds", "parse_choices", "sweep_configs", "sweep_one", "sweep", "Sweep"]

MAX_RUNS = 1_000_000
NOT_RUN = "not_run"  # only in a sweep the cluster could not finish (exit 3)


def parse_seeds(text: str) -> list[int]:
    """'0-999', '7' or '1,2,10-19' -> the seeds, in order, each once."""
    expected = f"seeds or ranges of them such as 0-999 or 1,2,10-19, each in [0, {MAX_SEED}] (received: {text})"
    seeds: dict[int, None] = {}
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        try:
            first, last = int(low), int(high if dash else low)
        except ValueError:
            raise ParityInputError(f"--seeds must be {expected}") from None
        if not 0 <= first <= last <= MAX_SEED or last - first >= MAX_RUNS:
            raise ParityInputError(f"--seeds must be {expected}")
        seeds.update(dict.fromkeys(range(first, last + 1)))
    return list(seeds)


def parse_choices(text: str | None, flag: str, allowed: tuple[str, ...], default: str) -> list[str]:
    """'seed,deep' -> ['seed', 'deep'], each one of `allowed`."""
    names = list(dict.fromkeys(n.strip() for n in (text or default).split(",")))
    bad = [n for n in names if n not in allowed]
    if bad:
        raise ParityInputError(f"{flag} must be a comma-separated list of {', '.join(allowed)} (received: {text})")
    return names


def sweep_configs(flags: dict, config_path: Path | None, seeds: list[int], scenarios: list[str],
                  dtypes: list[str]) -> list[RunConfig]:
    """One validated configuration per scenario, dtype and seed, in that order."""
    configs = [resolve(flags | {"scenario": sc, "dtype": dt, "seed": seed}, config_path)
               for sc in scenarios for dt in dtypes for seed in seeds]
    if len(configs) > MAX_RUNS:
        raise ParityInputError(f"a sweep is at most {MAX_RUNS:,} runs (received: {len(configs):,} = "
                               f"{len(scenarios)} scenarios x {len(dtypes)} dtypes x {len(seeds)} seeds)")
    return configs


def sweep_one(config: RunConfig, limit) -> dict:
    """Worker side: one run of the reference layers; its verdict, codes and tolerance shares."""
    from parity.keras_side import backend  # noqa: F401  TensorFlow loads once per worker, outside any run's limit
    from parity.pipeline import check

    with limit:
        report = check(None, config)
    return {"status": report.verdict, "error_codes": list(dict.fromkeys(f.code for f in report.errors)),
            "warnings": list(dict.fromkeys(f.code for f in report.warnings)),
            "tolerance_used": {k: float(v) for k, v in report.summary["tolerance_used"].items()},
            "seconds": limit.used}


@dataclass
class Sweep:
    rows: list[dict]
    wall_seconds: float
    record: dict = field(default_factory=dict)  # sweep.json
    error: str = ""  # why the sweep stopped before every run finished; "" when it finished

    @property
    def false_alarms(self) -> int:
        return sum(r["status"] == "fail" for r in self.rows)

    @property
    def clean(self) -> bool:
        """Every run completed and passed."""
        return all(r["status"] == "pass" for r in self.rows)


def sweep(configs: list[RunConfig], out: Path, *, timeout: float, scheduler: str | None = None,
          workers: int | None = None, memory_limit: str | int | None = "auto",
          progress: Callable | None = None) -> Sweep:
    """Run every configuration on the cluster; write out/sweep.csv and out/sweep.json whole, or nothing.
    When the cluster cannot finish (ToolError), they hold the runs that finished, the rest NOT_RUN, and
    the ToolError is raised after them."""
    from parity.report.folder import atomic_folder
    from parity.grading.workers import cluster_client, run_all

    start = time.perf_counter()
    rows: list[dict | None] = [None] * len(configs)
    lost = None
    with cluster_client(scheduler, workers, memory_limit) as client, atomic_folder(out) as folder:
        done = run_all(client, sweep_one, configs, timeout)
        try:
            for index, outcome in (progress(done, "sweeping", len(configs)) if progress else done):
                rows[index] = _row(configs[index], outcome.value if outcome.status == "done" else
                                   {"status": outcome.status, "seconds": outcome.seconds, "message": outcome.message})
        except ToolError as exc:
            lost = exc
        rows = [row or _row(c, {"status": NOT_RUN, "message": f"not run: {lost}"}) for row, c in zip(rows, configs)]
        result = Sweep(rows, time.perf_counter() - start, error=str(lost or ""))
        result.record = sweep_record(result, configs, timeout)
        (folder / "sweep.csv").write_text(sweep_csv(rows), encoding="utf-8")
        (folder / "sweep.json").write_text(json.dumps(result.record, indent=2) + "\n", encoding="utf-8")
    if lost is not None:
        finished = sum(r["status"] != NOT_RUN for r in rows)
        left = len(rows) - finished
        raise ToolError(f"{lost}; {finished} of {len(rows)} runs finished and were written to {out} (the other "
                        f"{left} {'is' if left == 1 else 'are'} marked {NOT_RUN} there)") from None
    return result


def _row(config: RunConfig, cells: dict) -> dict:
    """One run's row: its configuration, then what became of it."""
    return {"scenario": config.scenario, "dtype": config.dtype, "seed": config.seed, "error_codes": [], "warnings": [],
            "tolerance_used": {}, "seconds": None} | cells


def _largest(rows: list[dict]) -> dict:
    """dtype -> quantity -> the largest share of its tolerance any run used, and which run."""
    out: dict[str, dict[str, dict]] = {}
    for r in rows:
        for name, share in r["tolerance_used"].items():
            best = out.setdefault(r["dtype"], {}).get(name)
            if best is None or share > best["share"]:
                out[r["dtype"]][name] = {"share": share, "scenario": r["scenario"], "seed": r["seed"]}
    return {dt: dict(sorted(q.items())) for dt, q in sorted(out.items())}


def sweep_record(result: Sweep, configs: list[RunConfig], timeout: float) -> dict:
    from parity.version import __version__
    from parity.version import SCHEMA_VERSION, TOOL
    from parity.settings.tolerances import tolerance_for

    rows = result.rows
    statuses = ("pass", "fail", "timeout", "crashed") + ((NOT_RUN,) if result.error else ())
    used = _largest(rows)
    seeds = sorted({c.seed for c in configs})
    return {
        "tool": TOOL, "version": __version__, "schema_version": SCHEMA_VERSION, "kind": "sweep",
        **({"error": result.error} if result.error else {}),
        "runs": len(rows), "seeds": {"count": len(seeds), "first": seeds[0], "last": seeds[-1]},
        "scenarios": list(dict.fromkeys(c.scenario for c in configs)),
        "dtypes": list(dict.fromkeys(c.dtype for c in configs)),
        "counts": {s: sum(r["status"] == s for r in rows) for s in statuses},
        "false_alarm_rate": result.false_alarms / len(rows),
        "false_alarms": [{k: r[k] for k in ("scenario", "dtype", "seed", "error_codes")}
                         for r in rows if r["status"] == "fail"][:100],
        "incomplete": [{k: r.get(k) for k in ("scenario", "dtype", "seed", "status", "message")}
                       for r in rows if r["status"] in ("timeout", "crashed")][:100],
        "tolerance_used": used,
        "largest_share": {dt: _overall(qs) for dt, qs in used.items() if qs},
        "tolerances": {dt: {"rtol": tolerance_for(dt).rtol, "atol": tolerance_for(dt).atol}
                       for dt in dict.fromkeys(c.dtype for c in configs)},
        "timeout_s": timeout,
        "wall_seconds": result.wall_seconds,
        "run_seconds": {"mean": _mean([r["seconds"] for r in rows if r["status"] in ("pass", "fail")])},
        "config": configs[0].as_dict() | {"seed": None, "scenario": None, "dtype": None, "out": None},
    }


def _overall(quantities: dict) -> dict:
    name = max(quantities, key=lambda q: quantities[q]["share"])
    return {"quantity": name, **quantities[name]}


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def sweep_csv(rows: list[dict]) -> str:
    quantities = sorted({q for r in rows for q in r["tolerance_used"]})
    columns = ["scenario", "dtype", "seed", "status", "error_codes", "warnings", "seconds", "largest_share",
               "largest_quantity", *(f"used:{q}" for q in quantities)]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        used = r["tolerance_used"]
        worst = max(used, key=used.get) if used else ""
        writer.writerow([r["scenario"], r["dtype"], r["seed"], r["status"], ";".join(r["error_codes"]),
                         ";".join(r["warnings"]), "" if r["seconds"] is None else f"{r['seconds']:.3f}",
                         repr(used[worst]) if worst else "", worst,
                         *(repr(used[q]) if q in used else "" for q in quantities)])
    return buffer.getvalue()
