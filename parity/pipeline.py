"""check(user_code, config) -> Report: the one pipeline behind every door.

The CLI (`run`, `check`), the Python API, the pytest helper, `selftest`, `bench` and `grade` all
call `check`; a door only translates its inputs and renders the Report. Steps, in order: prepare
the data and architecture (the boundary: bad input raises ParityInputError before any work), the
Keras side (cached in the process per resolved configuration, the run's optimizer included), each
user class alone against Keras (the layer probes), the comparison (stepping with the user's optimizer
class when they gave one), and the report folder when the door asked for one (a ReportFolder).
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Callable

import numpy as np

from parity.errors import arg, arg_given
from parity.report.writer import ReportFolder
from parity.result import Report
from parity.settings.config import RunConfig
from parity.user_code.loader import LAYER_NAMES, UserCode

__all__ = ["check", "session_preserved", "ReportFolder"]


@contextlib.contextmanager
def session_preserved():
    """Leave the caller's session as it was: Keras's floatx and global dtype policy, NumPy's global
    random state and Python's `random` state. TensorFlow's global seed and op determinism have no
    public getter and stay as the check set them (README)."""
    np_state, py_state = np.random.get_state(), random.getstate()
    keras = sys.modules.get("keras")
    if keras is not None:
        floatx, policy = keras.config.floatx(), keras.config.dtype_policy()
    try:
        yield
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
        keras_now = sys.modules.get("keras")
        if keras_now is not None:
            keras_now.config.set_floatx(floatx if keras is not None else "float32")
            keras_now.config.set_dtype_policy(policy if keras is not None else "float32")


def _optimizer(user: UserCode | None, config: RunConfig):
    """The optimizer the NumPy side steps with: the user's class of the run's optimizer when they gave one, else the book's."""
    from parity.compare.optimizer_run import run_optimizer

    if user is None:
        return run_optimizer({}, config.optimizer, "", arg("layers"))
    return run_optimizer(user.classes, config.optimizer, user.source, arg_given("layers", user.source))


def _layer_probes(user: UserCode | None, spec) -> tuple[dict | None, list[dict], dict | None]:
    """(the user's layer classes, what probing each alone against Keras found, whose class plays each book layer)."""
    if user is None or not user.layers:
        return None, [], None
    from parity.book import layers as reference_layers
    from parity.compare.layer_probes import probe_layers

    full = {**{n: getattr(reference_layers, n) for n in LAYER_NAMES}, **user.layers}
    return user.layers, probe_layers(full, list(user.names or user.layers), spec.loss), user.whose()


def check(user: UserCode | None, config: RunConfig, *, folder: ReportFolder | None = None,
          progress: Callable | None = None) -> Report:
    """Compare the user's classes (the reference layers when None) with Keras under `config`.

    Nothing is written unless the door passes a `folder`: then the report folder is written whole
    (atomically) as the run goes. `progress` wraps the probe's chunks (a bar on a terminal); when it has a
    `stage(label)` context manager (parity.report.progress.TerminalProgress), each step shows a status line.
    """
    from parity.compare.run import compare_numpy
    from parity.keras_side.reference import reference_for
    from parity.prepare import prepare
    from parity.report.folder import check_out
    from parity.report.writer import ReportWriter, atomic_folder

    shown = getattr(progress, "stage", None)  # a status line per step, where the door draws them
    stage = shown or _silent
    with session_preserved():
        prepared = prepare(config)  # the boundary: data file, saved model; ParityInputError before any work
        config = prepared.config
        optimizer = _optimizer(user, config)  # the user's optimizer class, checked before any work
        if folder is not None:
            check_out(folder.place(config))
        reference = reference_for(prepared, shown)
        with stage("your classes, each alone against Keras") if user is not None and user.layers else _silent(""):
            kit, found, whose = _layer_probes(user, prepared.spec)
        compared = f"comparing {config.samples} samples, then stepping {config.train}"
        if folder is None:
            with stage(compared):
                result = compare_numpy(prepared, reference, kit, found, whose, progress=progress, optimizer=optimizer)
            return Report(result, prepared.data)
        with atomic_folder(folder.place(config)) as scratch:
            writer = ReportWriter(scratch, prepared.data, config, prepared.spec, folder.fmt, config.plots,
                                  folder.plot_worker)
            with stage(compared):
                result = compare_numpy(prepared, reference, kit, found, whose, on_chunk=writer.add_probe_chunk,
                                       progress=progress, optimizer=optimizer)
            with stage("writing the report" + (" and drawing its plots" if config.plots else "")):
                files = writer.finish(result)
        return Report(result, prepared.data, fmt=folder.fmt, files=files, folder=folder.place(config))


def _silent(label: str):
    """The stage of a door that shows none."""
    return contextlib.nullcontext()
