"""The reference optimizers against Keras's own, the float32-cast trap, and learners' optimizers diagnosed
against Keras: Keras steps the seed model with its optimizer's `apply`, 40 steps of one sample each."""


import numpy as np
import pytest

from parity.book import optimizers as ref
from parity.keras_side.optimizers import keras_arguments
from parity.diagnosis.optimizer import diagnose_optimizer
from parity.settings.optimizer_registry import OPTIMIZER_NAMES, optimizer_settings
from parity.diagnosis.optimizer_variants import replay
from parity.selfcheck.planted import PLANTED_OPTIMIZERS
from parity.settings.tolerances import tolerance_for
from parity.user_code.attributes import hyperparameter_differences
from parity.user_code.loader import import_layers
from optimizer_runs import STEPS, keras_run, numpy_run
from testkit import FIXTURES

optimizers_learner = import_layers(str(FIXTURES / "optimizers_learner.py"))

DTYPES = ("float32", "float64")


def excess(ours: dict, keras: dict, tol) -> float:
    """Largest |ours - keras| / (atol + rtol |keras|) over every entry and step: <= 1 is within tolerance."""
    return max(float(np.max(np.abs(ours[k].astype(np.float64) - keras[k].astype(np.float64))
                            / (tol.atol + tol.rtol * np.abs(keras[k].astype(np.float64))))) for k in keras)


def max_abs(ours: dict, keras: dict) -> float:
    return max(float(np.abs(ours[k].astype(np.float64) - keras[k].astype(np.float64)).max()) for k in keras)


def replay_with_state(settings, make, initial, grads):
    """(params, state) of a NumPy optimizer stepped on Keras's gradients, under the book's state names."""
    optimizer, p = make(), {k: v.copy() for k, v in initial.items()}
    params, state = [], []
    for step in range(STEPS):
        optimizer.update(p, {k: grads[k][step] for k in p})
        params.append({k: v.copy() for k, v in p.items()})
        state.append({s: {k: getattr(optimizer, s)[k].copy() for k in p} for s in settings.info.state})
    stack = lambda rs: {k: np.stack([r[k] for r in rs]) for k in rs[0]}  # noqa: E731
    return stack(params), {s: stack([st[s] for st in state]) for s in settings.info.state}


# -- the float32-cast trap ---------------------------------------------------------------------------
def test_keras_casts_a_python_float_hyperparameter_through_float32():
    """Measured on the seed model in float64, largest parameter difference from the book's formula after 20 (40)
    steps: with Python floats Momentum 2.7e-7 (3.7e-7), Nesterov 2.6e-7 (3.7e-7), Adam 1.3e-7 (2.6e-7); with
    numpy.float64 Momentum 0 (0), Nesterov 2.2e-16 (3.3e-16), Adam 0 (0)."""
    from parity.keras_side.backend import keras

    assert float(keras.ops.cast(0.9, "float64")) == 0.8999999761581421  # the cause
    assert float(keras.ops.cast(np.float64(0.9), "float64")) == 0.9
    tol = tolerance_for("float64")
    for name in ("momentum", "adam"):
        s = optimizer_settings(name)
        initial, plain, _ = keras_run(name, "float64", python_floats=True)
        book = replay(s.reference, initial, plain.grads, STEPS)
        after20 = {k: v[:20] for k, v in book.items()}
        assert max_abs(after20, {k: v[:20] for k, v in plain.params.items()}) > 1e-8, name
        initial, typed, _ = keras_run(name, "float64")
        book = replay(s.reference, initial, typed.grads, STEPS)
        assert max_abs({k: v[:20] for k, v in book.items()}, {k: v[:20] for k, v in typed.params.items()}) <= 1e-12
        assert excess(book, typed.params, tol) <= 1


def test_hyperparameters_go_to_keras_in_the_runs_dtype():
    args = keras_arguments(optimizer_settings("adam"), "float64")
    assert args == {"learning_rate": 0.001, "beta_1": 0.9, "beta_2": 0.999, "epsilon": 1e-7, "amsgrad": False}
    assert all(type(v) is np.float64 for k, v in args.items() if k != "amsgrad")
    assert all(type(v) is float for v in keras_arguments(optimizer_settings("momentum"), "float32").values()
               if not isinstance(v, bool))  # Keras refuses numpy.float32 and rounds Python floats itself
    assert keras_arguments(optimizer_settings("rmsprop", decay_rate=0.9), "float64") == {
        "learning_rate": 0.01, "rho": 0.9, "momentum": 0.0, "epsilon": 1e-7, "centered": False}
    assert keras_arguments(optimizer_settings("adagrad"), "float64")["initial_accumulator_value"] == 0.0
    assert keras_arguments(optimizer_settings("nesterov"), "float64")["nesterov"] is True


def test_the_build_record_names_class_arguments_and_conventions():
    _, _, record = keras_run("rmsprop", "float64")
    assert record["class"] == "keras.optimizers.RMSprop"
    assert record["arguments"]["rho"] == 0.99 and record["hyperparameters_passed_as"] == "numpy.float64"
    assert [c["name"] for c in record["conventions"]] == ["epsilon_inside_root"]
    assert record["state"] == {"h": "velocity"}


# -- each reference against Keras ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_the_books_formula_equals_keras_within_the_dtypes_tolerance(name, dtype):
    """Same gradients (Keras's autodiff at each step) fed to both sides. Largest difference measured over 40 steps,
    parameters: float64 sgd 0, momentum 0, nesterov 3.3e-16, adam 0; float32 sgd 0, momentum 0, nesterov 6.0e-7,
    adam 2.7e-7 (within 1e-5)."""
    s, tol = optimizer_settings(name), tolerance_for(dtype)
    initial, keras, _ = keras_run(name, dtype)
    params, state = replay_with_state(s, s.reference, initial, keras.grads)
    assert excess(params, keras.params, tol) <= 1
    assert set(state) == set(keras.state) == set(s.info.state)
    for book in state:
        assert excess(state[book], keras.state[book], tol) <= 1, book
    if dtype == "float64":
        assert max_abs(params, keras.params) <= 1e-12


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ["adagrad", "rmsprop"])
def test_epsilon_inside_the_root_is_keras_convention_proven_by_a_second_reference(name, dtype):
    """Keras's formula in the book's protocol matches Keras to 0 in both dtypes. The book's formula differs, over
    40 steps of the seed model: adagrad 1.3e-9 (float64; beyond 1e-12) and 1.8e-7 (float32; within 1e-5),
    rmsprop 8.6e-7 (float64) and 1.3e-4 (float32): both beyond tolerance, so rmsprop's convention shows in
    both dtypes. The accumulators themselves agree: the difference is all in the step."""
    s, tol = optimizer_settings(name), tolerance_for(dtype)
    initial, keras, _ = keras_run(name, dtype)
    params, state = replay_with_state(s, s.keras_convention_reference, initial, keras.grads)
    assert excess(params, keras.params, tol) <= 1
    assert excess(state["h"], keras.state["h"], tol) <= 1
    book, book_state = replay_with_state(s, s.reference, initial, keras.grads)
    assert excess(book_state["h"], keras.state["h"], tol) <= 1
    measured = max_abs(book, keras.params)
    expected = {("adagrad", "float64"): 1.3e-9, ("adagrad", "float32"): 1.8e-7,
                ("rmsprop", "float64"): 8.6e-7, ("rmsprop", "float32"): 1.3e-4}[name, dtype]
    assert expected / 2 < measured < expected * 2
    assert (excess(book, keras.params, tol) > 1) == ((name, dtype) != ("adagrad", "float32"))


# -- learners' optimizers against Keras, diagnosed --------------------------------------------------------
def diagnose(cls, name, dtype, **hyper):
    """Driver findings, then the diagnosis over the steps before the first failed update."""
    s, tol = optimizer_settings(name, **hyper), tolerance_for(dtype)
    initial, keras, _ = keras_run(name, dtype, **hyper)
    user, driver = numpy_run(cls, name, dtype, initial, **hyper)
    failed = [f["step"] for f in driver.findings if f["severity"] == "error"]
    held = hyperparameter_differences(driver.instance, s) if driver.constructed else {}
    start = {k: v.astype(dtype) for k, v in initial.items()}
    return driver.findings + diagnose_optimizer(s, start, user, keras, tol, cls.__name__, held,
                                                steps=min(failed, default=STEPS))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", PLANTED_OPTIMIZERS, ids=lambda c: c.name)
def test_each_planted_optimizer_bug_is_caught_named_and_blamed_on_its_class(case, dtype):
    findings = diagnose(case.cls, case.optimizer, dtype)
    errors = [f for f in findings if f["severity"] == "error"]
    assert case.expected in {f["code"] for f in errors}, findings
    assert all(f["layer"] == case.cls.__name__ for f in findings)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_the_books_classes_pass_with_their_convention_warnings_only(name, dtype):
    findings = diagnose(optimizer_settings(name).info.reference, name, dtype)
    assert all(f["severity"] == "warning" for f in findings), findings
    conventions = [f for f in findings if f["code"] == "convention"]
    shows = name in ("adagrad", "rmsprop") and (name, dtype) != ("adagrad", "float32")
    assert len(conventions) == len(findings) == int(shows)
    if shows:
        assert conventions[0]["size"] > tolerance_for(dtype).atol
        assert conventions[0]["keras_vs_convention_reference"] <= tolerance_for(dtype).atol


def test_the_velocity_first_nesterov_is_named():
    [f] = diagnose(ref.NesterovVelocityFirst, "nesterov", "float64")
    # its first step is -(1 + mu + mu**2) lr g where Keras's is -(1 + mu) lr g; the velocities still agree there
    assert (f["code"], f["cause"], f["step"]) == ("update_mismatch", "nesterov_velocity_first", 0)
    assert "state" not in f


def test_the_papers_adam_with_a_hard_coded_epsilon_is_one_convention_naming_both_facts():
    """Algorithm 1 of the Adam paper (eps on sqrt(v_hat)) with eps = 1e-8, against Keras built with 1e-7: a replay
    with the class's epsilon matches it, so its epsilon is a convention, not a failure; both facts are named."""
    [f] = diagnose(optimizers_learner.Adam, "adam", "float64")
    assert (f["code"], f["severity"], f["cause"], f["epsilon"]) == ("convention", "warning", "epsilon_on_corrected",
                                                                      1e-8)
    assert "with epsilon 1e-08 (which it holds) where the run's Keras optimizer was built with 1e-07" in f["message"]
    assert f["evidence"] <= 1e-15


@pytest.mark.parametrize("epsilon", [1e-8, 1e-6, 1e-5])
@pytest.mark.parametrize("name", ["adagrad", "rmsprop", "adam"])
def test_the_books_formula_with_a_literal_epsilon_is_a_convention_found_by_replay(name, epsilon):
    """The book's class with another epsilon written into it (nothing held): the replays of the common values find
    it, and Keras (built with 1e-7) is shown to compute its own formula, so it is a convention, not a bug."""
    book = optimizer_settings(name).info.reference
    literal = type(f"{book.__name__}Literal", (book,), {"update": _literal_update(book, epsilon)})
    [f] = diagnose(literal, name, "float64")
    assert (f["code"], f["severity"], f["epsilon"]) == ("convention", "warning", epsilon)
    assert "a literal in its update, found by replaying the common values" in f["message"]
    assert f["user_vs_book"] <= 1e-15 and f["keras_vs_convention_reference"] <= tolerance_for("float64").atol


def _literal_update(book: type, epsilon: float):
    def update(self, params, grads):
        self.__dict__["eps"] = epsilon  # what a literal does: the update uses it; the class-level eps stays 1e-7
        try:
            book.update(self, params, grads)
        finally:
            del self.__dict__["eps"]
    return update


def test_learner_keyword_variants_are_driven_to_a_pass():
    assert diagnose(optimizers_learner.momentum, "momentum", "float64") == []
    [f] = diagnose(optimizers_learner.RMSProp, "rmsprop", "float64")
    assert f["code"] == "convention" and f["layer"] == "RMSProp"


def test_a_hard_coded_decay_rate_is_named_against_the_runs():
    taking_rho = diagnose(optimizers_learner.RMSProp, "rmsprop", "float64", decay_rate=0.9)
    assert [f["code"] for f in taking_rho] == ["convention"]  # it takes rho: the run's 0.9 arrives
    hard_coded = next(c.cls for c in PLANTED_OPTIMIZERS if c.expected == "hyperparameter")
    [f] = diagnose(hard_coded, "rmsprop", "float64", decay_rate=0.95)
    assert (f["code"], f["severity"], f["held"]) == ("hyperparameter", "error", {"decay_rate": (0.9, 0.95)})
    assert "your RMSpropHardCodedDecay uses decay_rate 0.9; the run's is 0.95" in f["message"]
