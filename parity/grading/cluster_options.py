"""grade's and sweep's cluster flags (--timeout, --workers, --memory-limit, --scheduler), validated into the
keywords of `grade` and `sweep`: a bad one is a ParityInputError, before any worker starts."""

from __future__ import annotations

import argparse

from parity.errors import ParityInputError

__all__ = ["cluster_options"]


def cluster_options(args: argparse.Namespace) -> dict:
    """--timeout, --workers, --memory-limit, --scheduler, validated: grade's and sweep's keywords."""
    import math

    if not (math.isfinite(args.timeout) and args.timeout > 0):
        raise ParityInputError(f"--timeout must be a positive number of seconds (received: {args.timeout:g})")
    if args.scheduler is not None:
        for flag, given in (("--workers", args.workers), ("--memory-limit", args.memory_limit)):
            if given is not None:
                raise ParityInputError(f"{flag} applies to the local cluster; a cluster at --scheduler has its own "
                                       f"workers (set them with `dask worker --nworkers N --memory-limit SIZE`) "
                                       f"(received: {flag} {given} with --scheduler {args.scheduler})")
        return {"timeout": args.timeout, "scheduler": args.scheduler}
    if args.workers is not None and args.workers < 1:
        raise ParityInputError(f"--workers must be at least 1 (received: {args.workers})")
    limit = _memory_limit(args.memory_limit)
    _workers_fit(args.workers, limit)
    return {"timeout": args.timeout, "workers": args.workers, "memory_limit": limit}


def _workers_fit(workers: int | None, limit) -> None:
    """Local workers and their memory limit within this machine's memory: each holds TensorFlow (512 MiB at least)."""
    from parity.settings.resources import available_bytes, shown_bytes

    free = available_bytes()
    if free is None:
        return
    if workers is not None and workers * 512 * 2**20 > free:
        raise ParityInputError(f"--workers {workers} need at least {shown_bytes(workers * 512 * 2**20)} of memory "
                               f"(512 MiB each, for TensorFlow), and {shown_bytes(free)} is available; use fewer workers")
    if limit != "auto" and limit > free:
        raise ParityInputError(f"--memory-limit {shown_bytes(limit)} per worker is more than the "
                               f"{shown_bytes(free)} of memory available; give a smaller size, or auto")


def _memory_limit(text: str | None):
    if text is None or text == "auto":
        return "auto"
    from dask.utils import parse_bytes

    expected = f"auto or a size of at least 512MiB, such as 2GB or 1.5GiB (received: {text})"
    try:
        size = parse_bytes(text)
    except (ValueError, TypeError):
        raise ParityInputError(f"--memory-limit must be {expected}") from None
    if size < 512 * 2**20:  # a worker holding TensorFlow needs about 0.8 GB before any submission
        raise ParityInputError(f"--memory-limit must be {expected}")
    return size
