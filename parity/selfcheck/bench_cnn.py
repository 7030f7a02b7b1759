"""`parity bench`'s lines for the cnn scenario. Its probe: samples per second of the whole per-sample comparison
(Keras's compiled vectorized gradients, the NumPy side a chunk at once, the diffs, kinks, ties and the per-chunk
summary), and its speedup over the notebook way, one eager GradientTape call and the layer objects per sample,
measured in the same process on a subsample. Its run: `parity run --scenario cnn` as a fresh process, beyond a bare
import of its libraries."""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np

from parity.selfcheck.bench_commands import bare_import, command_cost

__all__ = ["CNN_FLOOR", "CNN_RUN_FLOOR", "cnn_probe", "cnn_run"]

CNN_FLOOR = 100  # the compiled cnn probe's speedup over eager per-sample GradientTape
CNN_RUN_FLOOR = 3.0  # seconds `parity run --scenario cnn` (plots and all) may take beyond a bare import of its libraries


def _best(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def cnn_probe(samples: int = 20_000, eager_samples: int = 100) -> dict:
    """The cnn probe's rate, compiled and eager, in float32."""
    from parity.compare.diff import compare_traces
    from parity.settings.resources import chunk_rows
    from parity.compare.stats import PhaseSummary
    from parity.keras_side.reference import keras_reference, targets
    from parity.numpy_side.closed_form import per_sample_closed_form
    from parity.numpy_side.network import build_network
    from parity.prepare import prepare
    from parity.settings.config import resolve
    from parity.settings.tolerances import tolerance_for

    prepared = prepare(resolve({"scenario": "cnn", "samples": samples, "train": 160, "epochs": 1}))
    reference = keras_reference(prepared)
    spec, fitted, tol = prepared.spec, reference.fitted, tolerance_for("float32")
    x = reference.x
    t, _ = targets(spec, prepared.data.y, "float32")
    hidden, relu = [i for i, _ in spec.hidden()], [i for i, s in spec.hidden() if s.activation == "relu"]
    maps = {i: out for i, conv, _, out in spec.activated_maps() if conv.activation == "relu"}
    chunk = chunk_rows(spec)

    def compare(rows, ours, theirs):
        PhaseSummary.of(compare_traces("probe", rows, ours, theirs, tol, relu, (), maps, spec.pooled_maps()), True)

    def compiled():  # as compare_numpy does it, less the findings and the writing
        bounds = [(start, min(start + chunk, samples)) for start in range(0, samples, chunk)]
        for start, stop, theirs in reference.probe_chunks(bounds):
            compare(np.arange(start, stop), per_sample_closed_form(spec, fitted, x[start:stop], t[start:stop]), theirs)

    def eager():  # the notebook way: one GradientTape call and the layer objects per sample
        ours = build_network(spec, dict(fitted)).per_sample(x[:eager_samples], t[:eager_samples], hidden)
        compare(np.arange(eager_samples), ours, reference.side.per_sample_eager(x[:eager_samples], t[:eager_samples]))

    compiled()  # traced once, outside the timing
    rate, eager_rate = samples / _best(compiled), eager_samples / _best(eager, repeats=1)
    return {"samples": samples, "samples_per_s": rate, "eager_samples": eager_samples,
            "eager_samples_per_s": eager_rate, "speedup": rate / eager_rate, "vectorized_map_fallback": reference.side.vectorized_map_fallback or "none"}


def cnn_run(repeats: int = 3) -> dict:
    """`parity run --scenario cnn`, with its plots and with --no-plots, each against a bare import of its libraries
    (parity.selfcheck.bench_commands.BARE_IMPORT) that ends its process at once as the run does, alternated, best of
    `repeats` each: what the run costs beyond importing, measured under the same load. Beside it, the run against a
    bare import that tears its libraries down at exit. The load average (1, 5, 15 minutes) is kept, before and
    after."""
    runs, quiet, imports, imports_now = [], [], [], []
    before = os.getloadavg() if hasattr(os, "getloadavg") else None
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(repeats):
            runs.append(command_cost(["run", "--scenario", "cnn", "--quiet", "--out", f"{tmp}/plots{k}"])[0])
            imports.append(bare_import())
            quiet.append(command_cost(["run", "--scenario", "cnn", "--quiet", "--no-plots", "--out", f"{tmp}/bare{k}"])[0])
            imports_now.append(bare_import(exit_now=True))
    after = os.getloadavg() if hasattr(os, "getloadavg") else None
    # The floor's line is the run's work alone: the run ends its process at once (cli._exit_now), so does that
    # baseline. Against an import that tears its libraries down at exit, the run would gain the teardown it skips.
    return {"cnn_run_s": min(runs), "cnn_run_no_plots_s": min(quiet), "bare_import_s": min(imports),
            "bare_import_exit_now_s": min(imports_now),
            "cnn_run_beyond_import_s": min(runs) - min(imports_now),
            "cnn_run_no_plots_beyond_import_s": min(quiet) - min(imports_now), "repeats": repeats,
            "cnn_run_beyond_import_with_teardown_s": min(runs) - min(imports),
            "load_average_before": None if before is None else list(before),
            "load_average_after": None if after is None else list(after)}
