"""check(layers, config) -> Report: the one pipeline behind every door.

The CLI (`run`, `check`), the Python API, the pytest helper, `selftest`, `bench` and `grade` all
call `check`; a door only translates its inputs and renders the Report. Steps, in order: prepare
the data and architecture (the boundary: bad input raises ParityInputError before any work), the
Keras side (cached in the process per resolved configuration, the run's optimizer included), each
user class alone against Keras (the layer probes), the comparison (stepping with the user's optimizer
class when they gave one), and the report folder when asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import sys
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from parity.config import RunConfig
from parity.errors import ParityInputError, arg
from parity.result import Report

__all__ = ["UserLayers", "check", "reference_for", "session_preserved", "clear_cache"]

REFERENCES_KEPT = 8  # Keras sides kept per process: each holds its data and traces (a few MB at the default size)


@dataclass(frozen=True)
class UserLayers:
    """A user's classes by canonical book name (Affine, Relu, ...), and where they came from."""

    kit: dict[str, type]
    source: str  # shown in reports: "tests/fixtures/book_layers.py", "the notebook", ...
    names: tuple[str, ...] = field(default=())  # the canonical names the user provided
    classes: dict[str, type] = field(default_factory=dict)  # every class given: the run's optimizer is picked here

    def whose(self) -> dict[str, str]:
        from parity.user_layers import LAYER_NAMES

        return {n: f"yours ({self.kit[n].__name__} from {self.source})" if n in self.kit else "reference"
                for n in LAYER_NAMES}


_REFERENCES: OrderedDict = OrderedDict()


def clear_cache() -> None:
    """Forget every cached Keras side (the next check refits)."""
    _REFERENCES.clear()


def _reference_key(prepared) -> tuple:
    """What the Keras side depends on: the resolved settings that reach Keras, the data and the
    starting weights, never the NumPy classes, the report folder or the tolerances."""
    c = prepared.config
    digest = hashlib.sha256()
    for a in (prepared.data.x, prepared.data.y, *(prepared.weights or [])):
        a = np.ascontiguousarray(a)
        digest.update(str((a.dtype, a.shape)).encode())
        digest.update(a.tobytes())
    return (c.dtype, c.seed, c.train, c.epochs, c.batch_size, c.lr, c.optimizer, prepared.spec, digest.hexdigest())


def reference_for(prepared):
    """Keras's side of a prepared run: computed once per configuration in this process, then reused."""
    from parity.runner import keras_reference

    key = _reference_key(prepared)
    if key in _REFERENCES:
        _REFERENCES.move_to_end(key)
        from parity import keras_side

        keras_side.configure(prepared.config.dtype, prepared.config.seed)  # floatx for its compiled calls
        return _REFERENCES[key]
    reference = keras_reference(prepared)
    _REFERENCES[key] = reference
    while len(_REFERENCES) > REFERENCES_KEPT:
        _REFERENCES.popitem(last=False)
    return reference


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


def _optimizer(layers: UserLayers | None, config: RunConfig):
    """The optimizer the NumPy side steps with: the user's class of the run's optimizer when they gave one, else the book's."""
    from parity.optimizer_stepping import run_optimizer

    if layers is None:
        return run_optimizer({}, config.optimizer, "", arg("layers"))
    said = arg("layers")
    return run_optimizer(layers.classes, config.optimizer, layers.source,
                         f"{said}{layers.source}" if said.endswith("=") else f"{said} {layers.source}")


def check(layers: UserLayers | None, config: RunConfig, *, write: bool = False, fmt: str = "csv",
          progress: Callable | None = None, into: Path | None = None, plot_worker=None) -> Report:
    """Compare `layers` (the reference layers when None) with Keras under `config`.

    With `write`, the report folder `config.out` is written whole (atomically) as the run goes;
    without, nothing is written and the Report holds everything in memory. `into` writes that same
    folder somewhere else while it still records `config.out` as its place: `grade` has each
    submission's report written in a worker's scratch folder and moves it into its gradebook. A
    `plot_worker` (parity.plot_worker.PlotWorker, started by the CLI) draws some of the pictures.
    """
    from parity.inputs import prepare
    from parity.runner import compare_numpy

    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ParityInputError(f"{arg('format')} parquet needs pyarrow: pip install 'keras-parity[parquet]'") from None
    with session_preserved():
        prepared = prepare(config)  # the boundary: data file, saved model; ParityInputError before any work
        config = prepared.config
        optimizer = _optimizer(layers, config)  # the user's optimizer class, checked before any work
        if write:
            from parity.outputs import check_out

            check_out(into or config.out)
        reference = reference_for(prepared)
        kit, found, whose = None, [], None
        if layers is not None and layers.kit:
            from parity import layers as reference_layers
            from parity.layer_probes import probe_layers
            from parity.user_layers import LAYER_NAMES

            kit = layers.kit
            full = {**{n: getattr(reference_layers, n) for n in LAYER_NAMES}, **kit}
            found = probe_layers(full, list(layers.names or kit), prepared.spec.loss)
            whose = layers.whose()
        if not write:
            result = compare_numpy(prepared, reference, kit, found, whose, progress=progress, optimizer=optimizer)
            return Report(result, prepared.data, fmt=fmt)
        from parity.report import ReportWriter, atomic_folder

        with atomic_folder(into or config.out) as folder:
            writer = ReportWriter(folder, prepared.data, config, prepared.spec, fmt, config.plots, plot_worker)
            result = compare_numpy(prepared, reference, kit, found, whose, on_chunk=writer.add_probe_chunk,
                                   progress=progress, optimizer=optimizer)
            files = writer.finish(result)
        return Report(result, prepared.data, fmt=fmt, files=files, folder=Path(into or config.out))
