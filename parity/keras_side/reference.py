"""The Keras side of a configuration: Keras fits and computes everything a check compares with, once per
configuration in a process, whatever NumPy classes are compared with it.

TensorFlow loads when a reference is first computed, not when this module is imported.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from parity.numpy_side.trace import Trace
from parity.settings.spec import ModelSpec

if TYPE_CHECKING:
    from parity.prepare import Prepared

__all__ = ["KerasReference", "keras_reference", "reference_for", "clear_cache", "targets", "keras_backend"]

REFERENCES_KEPT = 8  # Keras sides kept per process: each holds its data and traces (a few MB at the default size)


@dataclass
class KerasReference:
    """Everything Keras computes for a prepared run; independent of the NumPy layers compared with it.

    Computed in this process (`side` computes the probe chunk by chunk), or read from a recording
    (keras_side.recording: `side` is None and `probe` holds every sample): compare_numpy reads both alike."""

    fitted: dict[str, np.ndarray]  # the weights both sides start from (after the Keras fit)
    side: object  # keras_side.KerasSide, at the fitted weights: computes probe chunks on demand; None when recorded
    x: np.ndarray  # the inputs and Keras's targets, in the run's dtype
    t: np.ndarray
    # (stepping, batch): Keras's lock-step steps, and its mini-batch gradients at the fitted weights (None at batch
    # size 1); or what computes them when first read (`train`), so a run can hand out the probe's pictures first.
    training: tuple | Callable
    environment: dict
    optimizer: dict = field(default_factory=dict)  # the Keras optimizer built for the run (keras_optimizers.build_record)
    _cached: dict = field(default_factory=dict)
    probe: Trace | None = None  # a recording's whole probe; computed per chunk by `side` otherwise
    source: dict = field(default_factory=dict)  # where this Keras side came from (summary.json's keras_side)
    fallback: str | None = None  # a recording's vectorized_map_fallback
    _meanwhile: tuple | None = None  # (thread, [outcome]) while `train_meanwhile`'s thread computes the phases

    def train(self, stage=None) -> None:
        """Compute Keras's stepping and batch phases now if they are not yet (or wait for `train_meanwhile`'s thread,
        and raise what it raised): `stage(label)` is a context manager around it (a status line on a terminal)."""
        outcome = self.settle()
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(self.training):
            self.training = self.training(stage or _silent)

    def train_meanwhile(self) -> None:
        """Start computing Keras's stepping and batch phases in a second thread, while the caller does its NumPy work:
        the stepping is one compiled call, and TensorFlow releases the GIL. Call it once nothing else of the run calls
        the model before the phases are read: the steps move the model's weights, which every run of its
        architecture in this process shares. The model's next caller here (`probe_chunk`, `pool_routes`) and every
        reader of the phases (`train`) wait for the thread first; a caller that fails must still `settle()`."""
        if not callable(self.training) or self._meanwhile is not None:
            return
        import threading

        outcome: list = []

        def phases() -> None:
            try:
                outcome.append(self.training(_silent))
            except BaseException as exc:  # noqa: BLE001 - raised again in the thread that reads the phases
                outcome.append(exc)

        thread = threading.Thread(target=phases, name="keras-phases", daemon=True)
        self._meanwhile = (thread, outcome)
        thread.start()

    def settle(self) -> BaseException | None:
        """Wait for `train_meanwhile`'s thread, if one runs, and keep the phases it computed; what it raised, if it
        did (the phases are then computed again when next read)."""
        if self._meanwhile is None:
            return None
        thread, outcome = self._meanwhile
        thread.join()
        self._meanwhile = None
        if isinstance(outcome[0], BaseException):  # the thread always appends one: the phases, or what it raised
            return outcome[0]
        self.training = outcome[0]
        return None

    @property
    def stepping(self) -> Trace:
        self.train()
        return self.training[0]

    @property
    def batch(self) -> Trace | None:
        self.train()
        return self.training[1]

    @property
    def vectorized_map_fallback(self) -> str | None:
        """Why tf.vectorized_map fell back to a while loop for the probe, if it did."""
        return self.fallback if self.side is None else self.side.vectorized_map_fallback

    def probe_chunks(self, bounds: list[tuple[int, int]]):
        """Yield (start, stop, Keras's trace) for each chunk, computing the next chunk in a background
        thread while the caller works on this one: TensorFlow and NumPy both release the GIL."""
        if self.probe is not None:  # recorded: nothing to compute
            yield from ((start, stop, self.probe_chunk(start, stop)) for start, stop in bounds)
            return
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(self.probe_chunk, *bounds[0]) if bounds else None
            for k, (start, stop) in enumerate(bounds):
                trace = pending.result()
                if k + 1 < len(bounds):
                    pending = pool.submit(self.probe_chunk, *bounds[k + 1])
                yield start, stop, trace

    def probe_chunk(self, start: int, stop: int) -> Trace:
        if self.probe is not None:
            p = self.probe
            return Trace(pred=p.pred[start:stop], loss=p.loss[start:stop], dx=p.dx[start:stop],
                         grads={k: v[start:stop] for k, v in p.grads.items()},
                         z={k: v[start:stop] for k, v in p.z.items()},
                         maps={k: v[start:stop] for k, v in p.maps.items()})
        key = (start, stop)
        if key not in self._cached:
            self.settle()  # the model is not stepping in train_meanwhile's thread
            # The model is shared by every run of its architecture: put this run's weights back first.
            from parity.keras_side.transfer import numpy_to_keras

            self.side.model.set_weights(numpy_to_keras(self.side.spec, self.fitted))
            trace = self.side.per_sample(self.x[start:stop], self.t[start:stop])
            if stop - start != len(self.x):
                return trace
            self._cached[key] = trace  # a one-chunk run is probed once, whatever kits are compared with it
        return self._cached[key]

    def pool_routes(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Keras's first MaxPooling2D on these samples, at the fitted weights: its input h, and d(sum of its
        outputs)/dh by Keras's autodiff, a gradient of 1 from every pooled output, not 0 where the layer routed it.
        A sample's outputs depend on its own input alone, so one batch gives each sample's own routing.
        (len(rows), C, H, W) each, NHWC transposed to the book's NCHW."""
        from parity.keras_side.backend import keras, tensor, tf
        from parity.keras_side.transfer import numpy_to_keras

        model = self.side.model
        # At the fitted weights without setting them: the model may be stepping in train_meanwhile's thread. The scope
        # is this thread's alone (Keras keeps it in thread-local state).
        fitted = zip(model.weights, numpy_to_keras(self.side.spec, self.fitted))
        with keras.StatelessScope(state_mapping=[(v, tensor(w)) for v, w in fitted]), tf.GradientTape() as tape:
            h = tensor(self.x[rows])
            for layer in model.layers:  # the model's own layers, called as its call does, up to the pooling
                if isinstance(layer, keras.layers.MaxPooling2D):
                    tape.watch(h)
                    total = tf.reduce_sum(layer(h))
                    break
                if not isinstance(layer, keras.layers.InputLayer):
                    h = layer(h)
        routed = tape.gradient(total, h)
        return h.numpy().transpose(0, 3, 1, 2), routed.numpy().transpose(0, 3, 1, 2)


def targets(spec: ModelSpec, y: np.ndarray, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    """(NumPy side's t, Keras side's t): integer labels (n,) for the book's SoftmaxWithLoss where
    the loss is sparse, else the targets in the run's dtype; Keras always gets (n, target_dim)."""
    if spec.loss == "sparse_categorical_crossentropy":
        return y.reshape(-1).astype(np.int64), y.astype(dtype)
    return y.astype(dtype), y.astype(dtype)


def keras_backend():
    """keras_side.backend, which imports TensorFlow and Keras; where they cannot be imported (an install without
    them, for recorded checks), a ParityInputError that says how to check without them."""
    try:
        from parity.keras_side import backend
    except ImportError as exc:
        from parity.errors import ParityInputError, arg_given, first_line

        raise ParityInputError(f"TensorFlow and Keras cannot be imported here ({first_line(exc, 100)}), and this "
                               f"needs them: check with {arg_given('reference', 'FILE')}, a Keras side recorded where they are "
                               "(`parity record --out FILE`; shipped: seed-float32, ...), or install tensorflow") from None
    return backend


def _silent(label: str):
    return contextlib.nullcontext()


def keras_reference(prepared: Prepared, stage=None) -> KerasReference:
    """Fit (or load) the Keras model; Keras's stepping and batch phases come when first read, the probe per chunk.

    The fit and the stepping both use the run's Keras optimizer (keras_optimizers.build_keras_optimizer).
    `stage(label)` is a context manager around each step (a status line on a terminal)."""
    stage = stage or _silent
    with stage("importing TensorFlow"):
        backend = keras_backend()  # TensorFlow loads here, not when the CLI parses its flags
    from parity.keras_side import model as keras_model
    from parity.keras_side import side as keras_side
    from parity.keras_side.optimizers import build_record
    from parity.keras_side.transfer import keras_to_numpy, numpy_to_keras
    from parity.settings.resources import chunk_rows

    config, spec = prepared.config, prepared.spec
    x = prepared.data.x.astype(config.dtype)
    _, t = targets(spec, prepared.data.y, config.dtype)
    n = config.train
    backend.configure(config.dtype, config.seed)
    with stage(f"Keras: fitting {config.epochs} epochs" if config.epochs else "Keras: building the model"):
        side = keras_side.side_for(spec)  # one model per architecture and dtype in this process
        model = side.model
        start = prepared.weights if prepared.weights is not None else \
            keras_model.initial_weights(spec, config.seed, config.dtype)
        model.set_weights([w.astype(config.dtype) for w in start])
        # the probe's and stepping's graphs are readied while the fit's steps run (parity.keras_side.fit_loop)
        side.fit(x[:n], t[:n], config.epochs, config.batch_size, config.optimizer, config.seed,
                 probe_rows=min(len(x), chunk_rows(spec)))
        fitted = keras_to_numpy(spec, keras_model.weights_of(model), config.dtype)
    model.set_weights(numpy_to_keras(spec, fitted))  # for the probe, which comes first

    def training(stage) -> tuple[Trace, Trace | None]:
        """Run after the probe: a run hands the probe's pictures to its plot worker, which draws them meanwhile."""
        with stage(f"Keras: stepping {n} samples one by one"):
            if backend.keras.config.floatx() != config.dtype:  # another run's came between
                backend.configure(config.dtype, config.seed)
            model.set_weights(numpy_to_keras(spec, fitted))  # the model is shared by every run of its architecture
            batch = side.per_batch(x[:n], t[:n], config.batch_size) if 1 < config.batch_size <= n else None
            # BatchNormalization couples a batch: such a model steps batch-wise (parity.keras_side.train_mode)
            stepping = side.step_through(x[:n], t[:n], config.optimizer,
                                         batch=config.batch_size if spec.regularized else 1)
            model.set_weights(numpy_to_keras(spec, fitted))  # back to the fitted weights
        return stepping, batch

    environment = backend.environment()
    source = {"source": "computed", "summary": f"computed by Keras {environment['keras']} / TensorFlow "
                                             f"{environment['tensorflow']} in this process"}
    # Dropout draws its masks from the model's own seed generators, which the fit leaves where the phases after it
    # start: a model with one trains now, before another run's fit of its architecture could move them.
    later = training(stage) if spec.regularized else training
    return KerasReference(fitted, side, x, t, later, environment, build_record(config.optimizer, config.dtype),
                          source=source)


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


def reference_for(prepared, stage=None):
    """Keras's side of a prepared run: its recording's when it has one, else computed once per configuration in
    this process, then reused."""
    recording = getattr(prepared, "recording", None)
    if recording is not None:
        return recording.reference(prepared.spec, prepared.config.dtype)
    key = _reference_key(prepared)
    if key in _REFERENCES:
        _REFERENCES.move_to_end(key)
        backend = keras_backend()
        backend.configure(prepared.config.dtype, prepared.config.seed)  # floatx for its compiled calls
        return _REFERENCES[key]
    # the stage only where a door shows steps: a one-argument keras_reference (a test's stand-in) still works
    reference = keras_reference(prepared) if stage is None else keras_reference(prepared, stage)
    _REFERENCES[key] = reference
    while len(_REFERENCES) > REFERENCES_KEPT:
        _REFERENCES.popitem(last=False)
    return reference
