"""The probe is compared and handed on before Keras steps (a report's plot worker draws its pictures meanwhile), and
Keras's stepping, computed when first read, is the same whatever ran between the fit and that read."""

import numpy as np

from parity.compare.run import compare_numpy
from parity.keras_side.reference import keras_reference
from parity.prepare import prepare
from parity.settings.config import resolve

SMALL = {"samples": 60, "train": 20, "epochs": 1, "batch_size": 4}


def test_the_probe_is_handed_on_before_keras_steps():
    prepared = prepare(resolve({**SMALL, "dtype": "float64"}))
    reference = keras_reference(prepared)
    assert callable(reference.training)  # fitted, not stepped
    seen = []
    result = compare_numpy(prepared, reference,
                           on_phase=lambda phase, so_far: seen.append((phase, callable(reference.training), so_far)))
    [(first, not_stepped_yet, alone), (second, stepped_not_yet, phases)] = seen
    assert (first, second) == ("probe", "stepping") and not_stepped_yet and not stepped_not_yet
    assert alone.probe is result.probe and alone.summaries["probe"] is result.summaries["probe"]
    assert alone.stepping is None and alone.batch is None and alone.findings == []
    assert phases.stepping is result.stepping and phases.batch is result.batch and phases.findings == []
    assert not callable(reference.training) and len(result.stepping.rows) == 20 and len(result.batch.rows) == 5
    assert result.verdict == "pass"


def test_keras_steps_read_later_are_those_read_at_once_even_after_another_dtypes_run():
    later = prepare(resolve({**SMALL, "dtype": "float64", "seed": 7}))
    waiting = keras_reference(later)
    keras_reference(prepare(resolve({**SMALL, "dtype": "float32", "seed": 7}))).stepping  # floatx float32 now
    read_late = waiting.stepping
    read_at_once = keras_reference(later).stepping
    assert read_late.loss.dtype == np.float64
    for name in read_at_once.params_after:
        assert np.array_equal(read_late.params_after[name], read_at_once.params_after[name])
        assert np.array_equal(read_late.grads[name], read_at_once.grads[name])
    assert np.array_equal(read_late.loss, read_at_once.loss)
