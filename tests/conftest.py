"""Shared fixtures: each configuration's Keras side is fitted once per session, whichever door asks for it, and
the work that runs outside this process starts with the session."""

import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest_plugins = ["pytester"]  # tests/e2e/test_testing.py runs user test files through pytest itself

from parity import pipeline
from parity.keras_side import reference
from parity.settings.config import resolve
from parity.user_code.loader import load

# A suite started as a background job (`cmd &` in a script) inherits SIGINT ignored, and so would every process it
# starts; the Ctrl-C tests, and --timeout's interrupt of the main thread, need Python's own handler, as a terminal
# gives it. (Ignored, `_thread.interrupt_main` does nothing and a --timeout check ends its process at the grace.)
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# The pipeline keeps the Keras sides of its last 8 configurations (a bound for a user's long-lived process); the
# suite asks for about 50, the same ones from many files, and holds every one of them (a few MB each) so that each
# configuration is fitted once per session. test_api's eviction test puts the library's bound back for its run.
LIBRARY_REFERENCES_KEPT = reference.REFERENCES_KEPT
reference.REFERENCES_KEPT = 1000


@pytest.fixture
def library_references_kept() -> int:
    """How many Keras sides the pipeline keeps in a user's process (the session keeps them all)."""
    return LIBRARY_REFERENCES_KEPT


@pytest.fixture(scope="session")
def cached_run():
    """The ParityResult of `settings` with `kit` (the reference layers when None), through the path users take:
    pipeline.check, the layer probes and the run's optimizer included, with the Keras side from its cache."""

    def run(settings: dict, kit: dict | None = None):
        return pipeline.check(load(named=kit) if kit else None, resolve(settings)).result

    return run


@pytest.fixture(scope="session")
def seed_run(cached_run):
    """The seed scenario compared with the reference layers, once per dtype."""
    cache = {}

    def get(dtype: str):
        if dtype not in cache:
            cache[dtype] = cached_run({"dtype": dtype})
        return cache[dtype]

    return get


def pytest_collection_modifyitems(items: list) -> None:
    """The modules that start work outside this process (start_early) run last, in their order: the in-process tests
    run here while the lane works through their jobs, instead of each such module waiting for its jobs midway (which
    left this process idle about 175 s of a session at load 6). A module's tests stay together, and so do its
    module-scoped fixtures."""
    late = [item for item in items if hasattr(getattr(item, "module", None), "start_early")]
    if late:
        moved = set(late)
        items[:] = [item for item in items if item not in moved] + late


def _in_background() -> None:
    """Niceness 10 for the calling thread; on Linux niceness is per thread and what a thread starts inherits it."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # elsewhere a thread id is no process id: the jobs run at normal priority
        pass


@pytest.fixture(scope="session", autouse=True)
def started_early(request, tmp_path_factory) -> dict:
    """What the selected modules run outside this process, queued before the first test, by module name.

    A module that defines `start_early(folder, lane)` (real `parity` processes, the notebook's kernel: each mostly
    importing TensorFlow on one core) submits that work to `lane`, which starts its jobs in the order they were
    queued, two at a time, and reads the futures it returned from this dict. The jobs run while the in-process tests
    run here, instead of later with this process waiting for them; at niceness 10 they yield the machine to this
    process and to test_grade's workers while they run. Two at a time: once this process is through its own tests
    it waits for the lane, and one job alone would leave a core idle (at load 4 the lane ran 175 s past this
    process's own tests). At the end, jobs no test waited for are dropped and those running are waited for.
    """
    lane = ThreadPoolExecutor(max_workers=2, thread_name_prefix="started-early", initializer=_in_background)
    handles = {}
    for module in dict.fromkeys(getattr(item, "module", None) for item in request.session.items):
        start = getattr(module, "start_early", None)
        if start is not None:
            handles[module.__name__] = start(tmp_path_factory.mktemp(module.__name__.rpartition(".")[2]), lane)
    yield handles
    lane.shutdown(wait=True, cancel_futures=True)
