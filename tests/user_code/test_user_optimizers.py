"""Learners' optimizer classes: picked, constructed, driven and read, or refused with a sentence (NumPy only)."""

import inspect

import numpy as np
import pytest

from parity.book import optimizers as ref
from parity.errors import ParityInputError
from parity.settings.optimizer_registry import optimizer_settings
from parity.user_code.attributes import hyperparameter_differences
from parity.user_code.optimizer_driver import OptimizerDriver, constructor_arguments, find_optimizer_class
from parity.user_code.loader import import_layers
from testkit import FIXTURES, HAND_COMPUTED, REORDERED, assert_close

MomentumWithItsOwnName = import_layers(str(FIXTURES / "learner_momentum_memory.py")).Momentum  # velocity in `memory`

# Imported as `--layers FILE` imports a learner's module.
optimizers_broken, optimizers_learner, optimizers_lists = (
    import_layers(str(FIXTURES / f"optimizers_{name}.py")) for name in ("broken", "learner", "lists"))

RNG = np.random.default_rng(7)
START = {"W1": RNG.normal(size=(1, 2)), "b1": np.zeros(2), "W2": RNG.normal(size=(2, 1)), "b2": np.zeros(1)}
GRADS = [{k: RNG.normal(size=v.shape) for k, v in START.items()} for _ in range(25)]


def drive(cls, settings, grads=GRADS):
    """(driver, params after each step, state after each step) for one class over the gradient sequence."""
    driver = OptimizerDriver(cls, settings, START)
    params, state = [], []
    for step, g in enumerate(grads):
        driver.update(g, step)
        params.append({k: v.copy() for k, v in driver.params.items()})
        state.append(driver.state())
    return driver, params, state


def reference_run(settings, grads=GRADS):
    optimizer, p, out = settings.reference(), {k: v.copy() for k, v in START.items()}, []
    for g in grads:
        optimizer.update(p, g)
        out.append({k: v.copy() for k, v in p.items()})
    return optimizer, out


def assert_same_run(ours, theirs):
    for a, b in zip(ours, theirs, strict=True):
        for k in START:
            assert_close(a[k], b[k], REORDERED)


# -- picking the class -------------------------------------------------------------------------------
def test_class_names_match_case_insensitively():
    assert find_optimizer_class(vars(optimizers_learner), "momentum", "--layers x.py") is optimizers_learner.momentum
    assert find_optimizer_class(vars(optimizers_learner), "rmsprop", "--layers x.py") is optimizers_learner.RMSProp


def test_a_near_miss_class_name_is_suggested():
    with pytest.raises(ParityInputError) as err:
        find_optimizer_class(vars(optimizers_broken), "momentum", "--layers broken.py")
    assert str(err.value) == ("--layers broken.py has no class Momentum for the optimizer momentum (names match "
                              "case-insensitively); your module has `Momentmu`: did you mean Momentum?")


def test_a_missing_class_lists_what_was_found():
    with pytest.raises(ParityInputError, match=r"has no class Nesterov .*found: Adam, Momentum$"):
        find_optimizer_class(vars(optimizers_lists), "nesterov", "--layers lists.py")


def test_an_update_without_grads_is_refused_naming_its_signature():
    with pytest.raises(ParityInputError) as err:
        find_optimizer_class(vars(optimizers_broken), "nesterov", "--layers broken.py")
    assert "Nesterov.update(self, params) cannot be called as update(params, grads)" in str(err.value)


# -- constructing it -----------------------------------------------------------------------------------
def test_keyword_variants_receive_the_runs_values():
    s = optimizer_settings("rmsprop", lr=0.05, decay_rate=0.9)
    assert constructor_arguments(optimizers_learner.RMSProp, s, "x") == {"lr": 0.05, "rho": 0.9}
    m = optimizer_settings("momentum")
    assert constructor_arguments(optimizers_learner.momentum, m, "x") == {"learning_rate": 0.01, "momentum": 0.9}
    a = optimizer_settings("adam")
    assert constructor_arguments(optimizers_learner.Adam, a, "x") == {"learning_rate": 0.001, "beta_1": 0.9,
                                                                      "beta_2": 0.999}
    assert constructor_arguments(optimizers_learner.AdaGrad, optimizer_settings("adagrad"), "x") == {"lr": 0.01}


def test_a_class_that_cannot_be_constructed_is_refused_naming_both_signatures():
    with pytest.raises(ParityInputError) as err:
        constructor_arguments(optimizers_broken.SGD, optimizer_settings("sgd"), "--layers broken.py")
    assert str(err.value) == ("--layers broken.py: SGD(lr, weight_decay) cannot be constructed with the run's "
                              "hyperparameters: its parameter 'weight_decay' has no default and is not one of the "
                              "book's keywords (lr); expected SGD(lr=0.01)")


def test_a_hard_coded_epsilon_is_read_from_the_instance():
    s = optimizer_settings("adam")
    instance = optimizers_learner.Adam(**constructor_arguments(optimizers_learner.Adam, s, "x"))
    assert hyperparameter_differences(instance, s) == {"epsilon": (1e-8, 1e-7)}
    book = ref.RMSprop(lr=0.01, decay_rate=0.99)
    assert hyperparameter_differences(book, optimizer_settings("rmsprop", decay_rate=0.9)) == {"decay_rate": (0.99, 0.9)}
    assert hyperparameter_differences(book, optimizer_settings("rmsprop")) == {}


def test_a_constructor_that_raises_is_a_finding_on_that_class():
    driver = OptimizerDriver(optimizers_broken.RMSprop, optimizer_settings("rmsprop"), START)
    assert not driver.constructed and driver.update(GRADS[0], 0) is False
    [f] = driver.findings
    assert (f["code"], f["severity"], f["layer"], f["method"]) == ("layer_error", "error", "RMSprop", "__init__")
    assert "NotImplementedError: RMSprop is next week's exercise" in f["message"]
    assert f["where"].endswith("optimizers_broken.py:47")


# -- driving it ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"])
def test_the_books_classes_driven_give_the_books_trajectory_and_state(name):
    s = optimizer_settings(name)
    driver, params, state = drive(s.info.reference, s)
    optimizer, expected = reference_run(s)
    assert_same_run(params, expected)
    assert set(state[-1]) == set(s.info.state)
    for book in s.info.state:
        for k in START:
            np.testing.assert_array_equal(state[-1][book][k], getattr(optimizer, book)[k])
    assert driver.container == "dict" and driver.findings == []
    assert driver.counter() == (25 if name == "adam" else None)


def test_lazy_state_under_other_names_and_a_rebinding_update_are_read_as_the_books():
    s = optimizer_settings("momentum")
    driver, params, state = drive(optimizers_learner.momentum, s)
    optimizer, expected = reference_run(s)
    assert_same_run(params, expected)
    assert_close(state[-1]["v"]["W2"], optimizer.v["W2"], REORDERED)  # `velocity`
    assert drive(optimizers_learner.RMSProp, optimizer_settings("rmsprop"))[2][-1]["h"].keys() == START.keys()  # `cache`


def test_a_step_counter_named_t_or_count_is_read():
    assert drive(optimizers_learner.Adam, optimizer_settings("adam"))[0].counter() == 25  # t
    assert drive(optimizers_learner.AdaGrad, optimizer_settings("adagrad"))[0].counter() == 25  # count


@pytest.mark.parametrize("name", ["momentum", "adam"])
def test_list_parameters_from_the_second_volume_are_driven(name):
    s = optimizer_settings(name)
    driver, params, state = drive(getattr(optimizers_lists, s.info.book_class), s)
    assert driver.container == "list"
    assert_same_run(params, reference_run(s)[1])
    assert set(state[-1]) == set(s.info.state)


def test_the_papers_adam_with_its_own_epsilon_is_driven():
    driver, params, _ = drive(optimizers_learner.Adam, optimizer_settings("adam"))
    _, expected = reference_run(optimizer_settings("adam"))
    gap = max(np.abs(a[k] - b[k]).max() for a, b in zip(params, expected) for k in START)
    assert 0 < gap < 1e-6 and driver.findings == []  # eps on sqrt(v_hat), 1e-8: close to the book's, not equal


def test_an_exception_in_update_is_a_finding_with_file_and_line_and_changes_nothing():
    driver, params, _ = drive(optimizers_broken.AdaGrad, optimizer_settings("adagrad"))
    for p in params:
        for k in START:
            np.testing.assert_array_equal(p[k], START[k])
    [f] = driver.findings
    assert (f["code"], f["severity"], f["layer"], f["method"], f["step"], f["count"]) == (
        "layer_error", "error", "AdaGrad", "update", 0, 25)
    line = inspect.getsource(optimizers_broken).splitlines().index(
        "                self.h[key] = np.zeros.like(val)  # the typo: np.zeros_like") + 1
    assert f["where"] == f"{optimizers_broken.__file__}:{line}"
    assert "AdaGrad.update raised AttributeError" in f["message"] and "on 25 steps, first at step 0" in f["message"]


def test_an_update_that_changes_a_shape_is_refused_for_that_step():
    driver, params, _ = drive(optimizers_broken.Adam, optimizer_settings("adam"), GRADS[:3])
    np.testing.assert_array_equal(params[-1]["W1"], START["W1"])
    [f] = driver.findings
    assert (f["code"], f["layer"], f["count"]) == ("shape_mismatch", "Adam", 3)
    assert "Adam.update left W1 with shape ()" in f["message"]


def test_an_update_that_writes_into_the_gradients_is_a_warning():
    grads = [{k: 5 * v for k, v in g.items()} for g in GRADS[:4]]
    kept = [{k: v.copy() for k, v in g.items()} for g in grads]
    driver, params, _ = drive(optimizers_broken.ClippingSGD, optimizer_settings("sgd"), grads)
    [f] = driver.findings
    assert (f["code"], f["severity"], f["count"]) == ("input_mutation", "warning", 4)
    for g, k in zip(grads, kept):  # the caller's arrays are untouched: the class got copies
        for name in START:
            np.testing.assert_array_equal(g[name], k[name])
    assert_close(params[0]["W1"], START["W1"] - 0.01 * np.clip(grads[0]["W1"], -1, 1), HAND_COMPUTED)


def test_float32_parameters_stay_float32_when_the_state_is_float64():
    start = {k: v.astype(np.float32) for k, v in START.items()}

    class Float64State(ref.Momentum):
        def update(self, params, grads):
            if self.v is None:
                self.v = {k: np.zeros(np.shape(p)) for k, p in params.items()}  # float64
            for k in params:
                self.v[k] = self.momentum * self.v[k] - self.lr * grads[k]
                params[k] = params[k] + self.v[k]  # promotes to float64

    driver = OptimizerDriver(Float64State, optimizer_settings("momentum"), start)
    driver.update({k: v.astype(np.float32) for k, v in GRADS[0].items()}, 0)
    assert {v.dtype for v in driver.params.values()} == {np.dtype(np.float32)}


def test_pytorchs_alpha_is_rmsprops_decay_rate_and_adams_lr():
    class RMSprop:  # torch.optim.RMSprop's names
        def __init__(self, lr=0.01, alpha=0.99, eps=1e-8):
            self.lr, self.alpha, self.eps = lr, alpha, eps

        def update(self, params, grads):
            pass

    s = optimizer_settings("rmsprop", decay_rate=0.9)
    kwargs = constructor_arguments(RMSprop, s, "x")
    assert kwargs == {"lr": 0.01, "alpha": 0.9, "eps": 1e-7}  # epsilon is passed where the class takes it
    assert hyperparameter_differences(RMSprop(**kwargs), s) == {}
    assert hyperparameter_differences(RMSprop(), s) == {"decay_rate": (0.99, 0.9), "epsilon": (1e-8, 1e-7)}


def test_an_update_that_returns_new_parameters_is_driven():
    class SGD:
        def __init__(self, lr=0.01):
            self.lr = lr

        def update(self, params, grads):
            return {k: params[k] - self.lr * grads[k] for k in params}  # leaves params, returns new ones

    driver, params, _ = drive(SGD, optimizer_settings("sgd"))
    assert_same_run(params, reference_run(optimizer_settings("sgd"))[1])
    assert driver.findings == []


def test_an_update_that_drops_a_parameter_is_a_finding_and_changes_nothing():
    class SGD:
        def __init__(self, lr=0.01):
            self.lr = lr

        def update(self, params, grads):
            for k in list(params):
                params[k] = params[k] - self.lr * grads[k]
            params.pop("b2")

    driver, params, _ = drive(SGD, optimizer_settings("sgd"), GRADS[:2])
    [f] = driver.findings
    assert (f["code"], f["count"]) == ("shape_mismatch", 2) and "left params without the keys" in f["message"]
    np.testing.assert_array_equal(params[-1]["W1"], START["W1"])


# -- tried before any work (issue 20) --------------------------------------------------------------------------------
from parity.settings.optimizer_registry import mirroring  # noqa: E402
from parity.user_code.optimizer_trial import try_optimizer  # noqa: E402
from parity.user_code.unmapped import refuse_layer_substitutes, unmapped_classes  # noqa: E402
from parity.user_code.update_source import idle_lines  # noqa: E402

SHAPES = {k: v.shape for k, v in START.items()}
learner = {name: import_layers(str(FIXTURES / f"learner_{name}.py"))
           for name in ("network_optimizer", "nesterov_misnamed", "adam_paper_held", "dense_layer")}


def test_an_update_that_takes_the_network_is_refused_naming_the_method_that_takes_params():
    with pytest.raises(ParityInputError) as err:
        try_optimizer(learner["network_optimizer"].Momentum, optimizer_settings("momentum"), SHAPES, "float64",
                      "--layers n.py")
    message = str(err.value)
    assert message.startswith("--layers n.py: Momentum.update(self, network, grads) cannot be driven")
    assert "'dict' object has no attribute 'layers' (" in message and "learner_network_optimizer.py:13)" in message
    assert "Momentum.updateParams(self, params, grads) does take them (it ran on them)" in message


def test_an_update_that_raises_inside_a_drivable_body_is_left_to_the_run():
    """A list fails because it walks params.keys(), a dict because of its own bug: a finding, not exit 2."""
    trial = try_optimizer(learner["nesterov_misnamed"].nefterovmomentumSGD, optimizer_settings("nesterov"), SHAPES,
                          "float64", "x")
    assert trial.container is None
    assert try_optimizer(optimizers_broken.AdaGrad, optimizer_settings("adagrad"), SHAPES, "float64", "x").container \
        is None  # np.zeros.like: an AttributeError on NumPy's function, not on the parameters


def test_what_the_class_holds_is_mirrored_where_the_user_set_nothing():
    adam = learner["adam_paper_held"].Adam
    trial = try_optimizer(adam, optimizer_settings("adam"), SHAPES, "float64", "x")
    assert (trial.container, trial.held["epsilon"]) == ("dict", 1e-8)
    mirrored, said = mirroring(optimizer_settings("adam"), trial.held)
    assert (mirrored.epsilon, said) == (1e-8, {"epsilon": (1e-8, 1e-7)})
    assert mirroring(optimizer_settings("adam", epsilon=1e-7), trial.held) == (optimizer_settings("adam", epsilon=1e-7),
                                                                              {})  # a value the user set stays
    assert mirroring(optimizer_settings("rmsprop"), {"decay_rate": 1.5}) == (optimizer_settings("rmsprop"), {})


class StepNeverAssigned:
    def update(self, params, grads):
        for key in params:
            params[key] -+ 0.1 * grads[key]  # noqa: B018


class LoopVariableRebound:
    def update(self, params, grads):
        for p, g in zip(params, grads):
            p = p - 0.1 * g  # noqa: F841


class CopyNeverReturned:
    def update(self, params, grads):
        params = {k: v.copy() for k, v in params.items()}
        for k in params:
            params[k] -= 0.1 * grads[k]


class InPlace:
    def update(self, params, grads):
        for p, g in zip(params, grads):
            p -= 0.1 * g


def test_the_lines_that_change_nothing_are_read_from_the_source():
    [(where, text, why)] = idle_lines(StepNeverAssigned)
    assert where == f"{__file__}:{inspect.getsourcelines(StepNeverAssigned)[1] + 3}"
    assert (text, why) == ("params[key] -+ 0.1 * grads[key]", "is an expression whose value is thrown away: it "
                                                                "assigns nothing (did you mean `-=`?)")
    assert "rebinds the loop's p to a new array" in idle_lines(LoopVariableRebound)[0][2]
    assert "rebinds params to a new object that is never returned" in idle_lines(CopyNeverReturned)[0][2]
    assert idle_lines(InPlace) == []


def test_an_unmapped_layer_class_is_refused_only_where_a_reference_would_take_its_place():
    unmapped = unmapped_classes(vars(learner["dense_layer"]), [])
    assert list(unmapped) == ["Dense"]
    with pytest.raises(ParityInputError, match=r"defines Dense .* the reference Affine in its place"):
        refuse_layer_substitutes(unmapped, {"Relu": object}, {"Affine", "Relu", "MeanSquaredError"}, "x", False)
    # its forward takes x, not (y, t): it cannot be the loss the reference supplies
    refuse_layer_substitutes(unmapped, {"Affine": object, "Relu": object}, {"Affine", "Relu", "MeanSquaredError"},
                             "x", False)
    refuse_layer_substitutes(unmapped, {"Relu": object}, {"Affine", "Relu"}, "x", explicit=True)  # the user mapped

    class Dropout:  # the book's other layers are never candidates
        def forward(self, x):
            return x

        def backward(self, dout):
            return dout

    assert unmapped_classes({"Dropout": Dropout, "TimeAffine": Dropout}, []) == {}


# -- resuming at another run's state (parity.compare.resync) -------------------------------------------------
RESUMED = [("sgd", ref.SGD), ("momentum", ref.Momentum), ("nesterov", ref.Nesterov), ("adagrad", ref.AdaGrad),
           ("rmsprop", ref.RMSprop), ("adam", ref.Adam), ("momentum", optimizers_learner.momentum),
           ("adam", optimizers_learner.Adam), ("adagrad", optimizers_learner.AdaGrad),
           ("momentum", optimizers_lists.Momentum), ("adam", optimizers_lists.Adam)]


@pytest.mark.parametrize("name, cls", RESUMED, ids=[f"{n}-{c.__module__.rpartition('.')[2]}" for n, c in RESUMED])
def test_a_driver_resumed_at_a_runs_state_steps_on_as_that_run(name, cls):
    s = optimizer_settings(name)
    whole, params, state = drive(cls, s)  # 25 steps
    resumed = OptimizerDriver(cls, s, params[9])
    # Replayed with other gradients: what the 10 updates leave in the state is replaced; their count is kept.
    assert resumed.resume(GRADS[15:25], state[9]) == ""
    for k in START:
        np.testing.assert_array_equal(resumed.params[k], params[9][k])
    for step, g in enumerate(GRADS[10:], start=10):
        resumed.update(g, step)
        for k in START:  # the same arithmetic on the same values: equal, not close
            np.testing.assert_array_equal(resumed.params[k], params[step][k])
    assert resumed.counter() == whole.counter() and resumed.findings == []


def test_a_state_under_a_name_the_tool_does_not_know_is_not_set_and_says_why():
    s = optimizer_settings("momentum")
    _, params, _ = drive(ref.Momentum, s, GRADS[:3])
    v = {k: np.ones_like(a) for k, a in START.items()}
    resumed = OptimizerDriver(MomentumWithItsOwnName, s, params[2])
    assert resumed.resume(GRADS[:3], {"v": v}) == (
        "Momentum keeps no v the tool can set (it looks under the names the book and common variants "
        "use, one array per parameter)")
