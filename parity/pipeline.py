"""check(user_code, config) -> Report: the one pipeline behind every door.

The CLI (`run`, `check`), the Python API, the pytest helper, `selftest`, `bench` and `grade` all
call `check`; a door only translates its inputs and renders the Report. Steps, in order: prepare
the data and architecture (the boundary: bad input raises ParityInputError before any work), the
Keras side (cached in the process per resolved configuration, the run's optimizer included; or read from the
recording `config.reference` names, without TensorFlow), each
user class alone against Keras (the layer probes), the comparison (stepping with the user's optimizer
class when they gave one), and the report folder when the door asked for one (a ReportFolder).
"""

from __future__ import annotations

import contextlib
import random
import sys
from collections.abc import Callable

import numpy as np

from dataclasses import replace

from parity.errors import ParityInputError, arg
from parity.report.writer import ReportFolder
from parity.result import Report
from parity.settings.config import RunConfig
from parity.user_code.loader import LAYER_NAMES, UserCode
from parity.settings.spec import MODE_LAYERS
from parity.user_code.protocol import IMAGE_LAYERS
from parity.user_code.unmapped import refuse_layer_substitutes

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


def _optimizer(user: UserCode | None, prepared):
    """The optimizer the NumPy side steps with: the user's class of the run's optimizer when they gave one, else the
    book's; its settings mirror what the user's class holds where the user set nothing."""
    from parity.compare.optimizer_run import run_optimizer

    config = prepared.config
    return run_optimizer(user, config.optimizer, prepared.spec.shapes(), config.dtype)


def _refuse_substitutes(user: UserCode | None, spec) -> None:
    """No reference stands in silently for a layer class the user's module has under another name (a Dropout or
    BatchNormalization that can't be told its mode was refused by the loader: parity.user_code.protocol)."""
    if user is not None:
        refuse_layer_substitutes(user.unmapped, user.layers, spec.classes(), user.label,
                                 explicit=any(n in LAYER_NAMES for n in user.mapped))


def _layer_probes(user: UserCode | None, prepared) -> tuple[dict | None, list, dict | None]:
    """(the user's layer classes, what probing each alone against Keras found, whose class plays each book layer).

    Keras answers the probes, or the run's recording does for it."""
    if user is None:
        return None, [], None
    modes = {n: c for n, c in user.layers.items() if n in MODE_LAYERS}  # probed alone, whatever the architecture
    if not user.layers and not modes:
        return None, [], user.whose()
    from parity.book import layers as reference_layers
    from parity.compare.layer_probes import probe_layers

    full = {**{n: getattr(reference_layers, n) for n in LAYER_NAMES}, **user.layers, **modes}
    keras = prepared.recording.layers() if prepared.recording is not None else None
    spec = prepared.spec
    # The chapter-7 layers are listed where the model has them or the user gave them: a Dense run's list is unchanged.
    whose = {n: w for n, w in user.whose().items() if (n not in IMAGE_LAYERS or spec.features or w != "reference")
             and (n not in MODE_LAYERS or spec.regularized or w != "reference")}
    # Only the classes this architecture uses: a Dense run does not probe a Convolution or a Pooling it never builds.
    names = [n for n in (user.names or user.layers) if n not in IMAGE_LAYERS or spec.features]
    # A Dropout or BatchNormalization is probed alone whether or not the architecture has one (issue 22).
    names = [n for n in names if n not in MODE_LAYERS] + list(modes)
    return user.layers or None, probe_layers(full, names, spec.loss, keras, bool(spec.features)), whose


def _user_findings(result, user: UserCode | None):
    """The loader's notes first (statements skipped, imports failed, classes not the learner's); then every
    finding on one of the user's classes, pointed at its code where it does not say already (`where`)."""
    if user is None:
        return result
    from dataclasses import replace

    from parity.compare.findings import Finding
    from parity.user_code.guard import where_class, where_defined

    def where(f) -> str | None:
        cls = user.layers.get(f.layer)
        if f.where or cls is None:
            return f.where
        # A gradient (dx, dW1, ...) comes from backward, an output or a loss from forward.
        method = f.method or (("backward" if f.param.startswith("d") else "forward") if f.param else None)
        return (where_defined(cls, method) if method and hasattr(cls, method) else where_class(cls)) or None

    result.findings = [Finding.of(n) for n in user.notes] + [replace(f, where=where(f)) for f in result.findings]
    return result


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
        _refuse_substitutes(user, prepared.spec)
        optimizer = _optimizer(user, prepared)  # the user's optimizer class, tried and checked before any work
        if optimizer.settings != prepared.config.optimizer:  # Keras is built with what the user's class holds
            if prepared.recording is not None:  # a recorded Keras side cannot be built again with them
                raise ParityInputError(
                    f"your optimizer class holds hyperparameters that the Keras side would mirror ({optimizer.settings}), "
                    f"but {arg('reference')} was recorded with {prepared.config.optimizer}: record the Keras side with "
                    f"the class's values ({arg('optimizer')} NAME:KEY=VALUE), or check without a recording")
            prepared.config = replace(prepared.config, optimizer=optimizer.settings, lr=optimizer.settings.hyper["lr"])
        config = prepared.config
        if folder is not None:
            check_out(folder.place(config))
        reference = reference_for(prepared, shown)
        with stage("your classes, each alone against Keras") if user is not None and user.layers else _silent(""):
            kit, found, whose = _layer_probes(user, prepared)
        compared = f"comparing {config.samples} samples, then stepping {config.train} on both sides"
        if folder is None:
            with stage(compared):
                result = compare_numpy(prepared, reference, kit, found, whose, progress=progress, optimizer=optimizer)
            return Report(_user_findings(result, user), prepared.data)
        with atomic_folder(folder.place(config)) as scratch:
            writer = ReportWriter(scratch, prepared.data, config, prepared.spec, folder.fmt, config.plots,
                                  folder.plot_worker)
            with stage(compared):
                result = compare_numpy(prepared, reference, kit, found, whose, on_chunk=writer.add_probe_chunk,
                                       progress=progress, optimizer=optimizer, on_phase=writer.phase_done)
            with stage("writing the report" + (" and drawing its plots" if config.plots else "")):
                files = writer.finish(_user_findings(result, user))
        return Report(result, prepared.data, fmt=folder.fmt, files=files, folder=folder.place(config))


def _silent(label: str):
    """The stage of a door that shows none."""
    return contextlib.nullcontext()
