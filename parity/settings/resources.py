"""Whether a run's sizes fit this machine's memory: checked at the boundary, before any array is made.

A run holds its data and a record per sample (the probe's per-row differences and verdicts) and per
stepping step (every gradient and parameter before and after the step on both sides, the steps table)
for the whole run; the probe's own work is done in chunks of bounded size. `estimated_bytes` counts
those, from peaks measured here beyond TensorFlow's 0.77 GB (`/usr/bin/time -f %M`, --no-plots --format
parquet): the seed model (7 parameters) at 400,000 samples and 320,000 steps, 1.15 GB (this estimate:
1.14 GB); the deep model (321 parameters) at 100,000 samples and 80,000 steps, 1.85 GB (estimate: 1.89
GB); the seed model at 10,000,000 samples and 160 steps, 0.6 GB (README, Performance; estimate: 0.96 GB).
A size whose estimate is more than the memory available now is bad input (exit 2), said with the size,
the estimate and what is available, instead of a MemoryError from deep inside NumPy, or the kernel's
out-of-memory kill, after TensorFlow has loaded.
"""

from __future__ import annotations

from collections.abc import Sequence

from parity.errors import ParityInputError, arg

__all__ = ["available_bytes", "estimated_bytes", "check_fits", "shown_bytes", "CHUNK", "chunk_rows"]

CHUNK = 262_144  # the most probe rows per chunk: larger chunks amortize each compiled call
CHUNK_VALUES = 8_000_000  # per-sample values held per chunk (both sides, differences, table rows ~ 40 bytes each)


def chunk_rows(spec) -> int:
    """Probe rows per chunk of a ModelSpec's run: as many as fit CHUNK_VALUES numbers per sample record, at most
    CHUNK (the comparison's chunks, and the probe the Keras side readies while it fits)."""
    import numpy as np

    per_sample = sum(int(np.prod(shape)) for shape in spec.shapes().values())  # one gradient entry per parameter
    per_sample += spec.input_dim + 2 * spec.output_dim + sum(s.units for _, s in spec.hidden()) + 1
    per_sample += sum(fn * oh * ow for *_, (fn, oh, ow) in spec.activated_maps())
    return int(min(CHUNK, max(1024, CHUNK_VALUES // per_sample)))


def estimated_bytes(samples: int, train: int, input_dim: int, target_dim: int, units: Sequence[int]) -> int:
    """Bytes a run of this size holds at once beyond the libraries: its data, per-sample and per-step records.

    `units` are the Dense layers' widths, output last ((): not known yet, the data alone are counted)."""
    widths = [input_dim, *units]
    params = sum(a * b + b for a, b in zip(widths, widths[1:]))
    quantities = 2 + 2 * len(units) + 1 + max(len(units) - 1, 0)  # pred, loss, dW and db per layer, dx, z per hidden
    per_sample = 8 * 2 * (input_dim + target_dim) + 8 * quantities  # float64 data and its cast; the row records
    per_step = 3000 + 64 * params  # measured: 3.4 KB a step for 7 parameters, 23 KB for 321 (docstring)
    return samples * per_sample + train * per_step


def available_bytes() -> int | None:
    """Memory available to this process now (the smaller of the machine's and its cgroup's); None when unknown."""
    found = []
    try:
        import psutil  # a dependency of dask.distributed, which keras-parity requires

        found.append(int(psutil.virtual_memory().available))
    except Exception:  # noqa: BLE001  (no psutil, or a platform it cannot read): try the kernel's own numbers
        try:
            with open("/proc/meminfo", encoding="ascii") as info:
                lines = dict(line.split(":", 1) for line in info)
            found.append(int(lines["MemAvailable"].split()[0]) * 1024)
        except (OSError, KeyError, ValueError):
            pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as limit, \
                open("/sys/fs/cgroup/memory.current", encoding="ascii") as used:
            top = limit.read().strip()
            if top != "max":
                found.append(int(top) - int(used.read().strip()))
    except (OSError, ValueError):
        pass
    return min(found) if found else None


def shown_bytes(size: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if size < 1000 or unit == "PB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.3g} {unit}"
        size /= 1000
    return ""


def check_fits(samples: int, train: int | None, input_dim: int, target_dim: int, units: Sequence[int],
               available: int | None = None) -> None:
    """ParityInputError naming --samples (and --train, when given) if the run's estimate exceeds the memory
    available; `train` None: the default 80% of the samples, stepped one by one."""
    steps = train if train is not None else max(1, int(samples * 0.8))
    need = estimated_bytes(samples, steps, input_dim, target_dim, units)
    free = available_bytes() if available is None else available
    if free is None or need <= free:
        return
    stepped = 2 * estimated_bytes(0, steps, input_dim, target_dim, units) > need  # the stepping is most of it
    sizes = f"{arg('samples')} {samples}" + ("" if not stepped else f" with {arg('train')} {train}" if train is not None
                                             else f" (stepping {steps} of them, the default 80%)")
    fewer = "fewer samples" + (f", or a smaller {arg('train')}" if stepped else "")
    raise ParityInputError(f"{sizes} needs about {shown_bytes(need)} of memory for its data and records (an estimate, "
                           f"besides TensorFlow's own), and {shown_bytes(free)} is available; use {fewer}")
