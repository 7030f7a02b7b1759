"""The NumPy optimizers, the registry and its validation, and the optimizer diagnosis (NumPy only)."""

import numpy as np
import pytest

from parity.book import optimizers as ref
from parity.errors import ParityInputError
from parity.diagnosis.optimizer import Trajectory, diagnose_optimizer, first_parting
from parity.settings.optimizer_registry import OPTIMIZER_NAMES, OPTIMIZERS, optimizer_settings
from parity.diagnosis.optimizer_variants import replay, variants_for
from parity.settings.tolerances import tolerance_for
from testkit import HAND_COMPUTED, HAND_COMPUTED_ADAM, HAND_COMPUTED_RELATIVE, STEPS_BY_HAND, assert_close

G = {"W1": np.array([[0.5, -2.0]]), "b1": np.array([4.0])}


def start():
    return {"W1": np.array([[1.0, 1.0]]), "b1": np.array([0.0])}


# -- a hand-computed first step for each optimizer ------------------------------------------------
def test_sgd_first_step_by_hand():
    p = start()
    ref.SGD(lr=0.1).update(p, G)
    np.testing.assert_array_equal(p["W1"], [[1.0 - 0.05, 1.0 + 0.2]])
    np.testing.assert_array_equal(p["b1"], [-0.4])


def test_momentum_first_two_steps_by_hand():
    p, opt = start(), ref.Momentum(lr=0.1, momentum=0.9)
    opt.update(p, G)  # v = -0.1 g
    assert_close(p["W1"], [[0.95, 1.2]], HAND_COMPUTED)
    assert_close(opt.v["b1"], [-0.4], HAND_COMPUTED)
    opt.update(p, G)  # v = 0.9 * (-0.1 g) - 0.1 g = -0.19 g
    assert_close(opt.v["W1"], [[-0.095, 0.38]], HAND_COMPUTED)
    assert_close(p["W1"], [[0.95 - 0.095, 1.2 + 0.38]], HAND_COMPUTED)


def test_nesterov_first_two_steps_by_hand():
    p, opt = start(), ref.Nesterov(lr=0.1, momentum=0.9)
    opt.update(p, G)  # v_old = 0: p -= 1.9 * 0.1 g; then v = -0.1 g
    assert_close(p["W1"], [[1.0 - 0.095, 1.0 + 0.38]], HAND_COMPUTED)
    assert_close(opt.v["W1"], [[-0.05, 0.2]], HAND_COMPUTED)
    opt.update(p, G)  # p += 0.81 v_old - 0.19 g
    assert_close(p["W1"], [[0.905 - 0.0405 - 0.095, 1.38 + 0.162 + 0.38]], HAND_COMPUTED)


def test_nesterov_with_the_previous_velocity_equals_the_form_keras_documents():
    """Keras's SGD docstring: v = mu v - lr g; w = w + mu v - lr g. Stepping with the previous velocity is that,
    rearranged; updating the velocity first is another algorithm."""
    rng = np.random.default_rng(0)
    p, w, v, opt = {"W": np.zeros(3)}, np.zeros(3), np.zeros(3), ref.Nesterov(lr=0.1, momentum=0.9)
    for _ in range(20):
        g = rng.normal(size=3)
        opt.update(p, {"W": g})
        v = 0.9 * v - 0.1 * g
        w = w + 0.9 * v - 0.1 * g
    assert_close(p["W"], w, STEPS_BY_HAND)
    old = {"W": np.zeros(3)}
    pre = ref.NesterovVelocityFirst(lr=0.1, momentum=0.9)
    rng = np.random.default_rng(0)
    for _ in range(20):
        pre.update(old, {"W": rng.normal(size=3)})
    assert np.abs(old["W"] - w).max() > 1e-2  # the velocity-first form is another algorithm


def test_adagrad_first_step_by_hand_and_keras_convention():
    p = start()
    ref.AdaGrad(lr=0.1).update(p, G)  # h = g * g; step = 0.1 g / (|g| + 1e-7)
    assert_close(p["b1"], [-0.1 * 4.0 / (4.0 + 1e-7)], HAND_COMPUTED_RELATIVE)
    q = start()
    ref.AdaGradKerasConvention(lr=0.1).update(q, G)  # step = 0.1 g / sqrt(g * g + 1e-7)
    assert_close(q["b1"], [-0.4 / np.sqrt(16.0 + 1e-7)], HAND_COMPUTED_RELATIVE)
    assert p["b1"][0] != q["b1"][0]


def test_rmsprop_first_step_by_hand_and_keras_convention():
    p, opt = start(), ref.RMSprop(lr=0.1, decay_rate=0.99)
    opt.update(p, G)  # h = 0.01 g * g; step = 0.1 g / (0.1 |g| + 1e-7)
    assert_close(opt.h["b1"], [0.16], HAND_COMPUTED_RELATIVE)
    assert_close(p["b1"], [-0.4 / (0.4 + 1e-7)], HAND_COMPUTED_RELATIVE)
    q = start()
    ref.RMSpropKerasConvention(lr=0.1, decay_rate=0.99).update(q, G)
    assert_close(q["b1"], [-0.4 / np.sqrt(0.16 + 1e-7)], HAND_COMPUTED_RELATIVE)


def test_adam_first_step_by_hand():
    p, opt = start(), ref.Adam(lr=0.001, beta1=0.9, beta2=0.999)
    opt.update(p, G)  # m = 0.1 g, v = 0.001 g^2, lr_t = 0.001 sqrt(0.001) / 0.1
    lr_t = 0.001 * np.sqrt(0.001) / 0.1
    assert_close(opt.m["b1"], [0.4], HAND_COMPUTED_RELATIVE)
    assert_close(opt.v["b1"], [0.016], HAND_COMPUTED_ADAM)
    assert_close(p["b1"], [-lr_t * 0.4 / (np.sqrt(0.016) + 1e-7)], HAND_COMPUTED_ADAM)
    assert opt.iter == 1
    assert abs(p["b1"][0] + 0.001) < 1e-8  # Adam's first step is lr in size, whatever the gradient


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_lists_as_in_the_second_volume_give_the_dict_results(name):
    rng = np.random.default_rng(1)
    grads = [{"W1": rng.normal(size=(2, 3)), "b1": rng.normal(size=3)} for _ in range(5)]
    as_dict, as_list = {"W1": np.ones((2, 3)), "b1": np.zeros(3)}, [np.ones((2, 3)), np.zeros(3)]
    a, b = OPTIMIZERS[name].reference(), OPTIMIZERS[name].reference()
    for g in grads:
        a.update(as_dict, g)
        b.update(as_list, [g["W1"], g["b1"]])
    np.testing.assert_array_equal(as_dict["W1"], as_list[0])
    np.testing.assert_array_equal(as_dict["b1"], as_list[1])


def test_float32_parameters_stay_float32():
    p = {"W": np.ones(3, dtype=np.float32)}
    for name in OPTIMIZER_NAMES:
        OPTIMIZERS[name].reference().update(p, {"W": np.full(3, 0.5, dtype=np.float32)})
    assert p["W"].dtype == np.float32


# -- the registry and the run's settings ------------------------------------------------------------
def test_defaults_follow_the_book():
    assert {n: optimizer_settings(n).hyper for n in OPTIMIZER_NAMES} == {
        "sgd": {"lr": 0.01}, "momentum": {"lr": 0.01, "momentum": 0.9}, "nesterov": {"lr": 0.01, "momentum": 0.9},
        "adagrad": {"lr": 0.01}, "rmsprop": {"lr": 0.01, "decay_rate": 0.99},
        "adam": {"lr": 0.001, "beta1": 0.9, "beta2": 0.999}}


def test_every_book_keyword_has_a_keras_keyword():
    for info in OPTIMIZERS.values():
        assert set(info.keras_keywords) == set(info.defaults), info.name
        info.reference(**info.defaults), info.keras_reference(**info.defaults)


def test_settings_from_a_table_and_overrides():
    s = optimizer_settings({"name": "RMSprop", "lr": 0.1}, label="[train] optimizer", decay_rate=0.9)
    assert (s.name, s.hyper, s.given) == ("rmsprop", {"lr": 0.1, "decay_rate": 0.9}, ("lr", "decay_rate"))
    assert s.as_dict()["conventions"] == ["epsilon_inside_root"]


TOML = "[train] optimizer"


@pytest.mark.parametrize("spec, overrides, label, message", [
    ("adamw", {}, "--optimizer", "--optimizer must be one of sgd, momentum, nesterov, adagrad, rmsprop, adam "
                                 "(received: 'adamw'); did you mean adam?"),
    ({"lr": 0.1}, {}, TOML, "[train] optimizer has no name: give name = one of sgd"),
    ({"name": "adam", "lr": -1}, {}, TOML, "[train] optimizer.lr must be a finite number above 0 (received: -1)"),
    ({"name": "adam", "lr": float("nan")}, {}, TOML, "[train] optimizer.lr must be a finite number above 0"),
    ({"name": "adam", "beta1": 1.0}, {}, TOML, "[train] optimizer.beta1 must be a number in [0, 1) (received: 1.0)"),
    ({"name": "momentum", "momentum": True}, {}, TOML, "optimizer.momentum must be a number in [0, 1) (received: True)"),
    ({"name": "rmsprop", "decay_rate": "0.9"}, {}, TOML, "decay_rate must be a number in [0, 1) (received: '0.9')"),
    ("adam", {"momentum": 0.9}, TOML, "[train] optimizer.momentum is not a hyperparameter of adam "
                                      "(the book's Adam takes lr = 0.001, beta1 = 0.9, beta2 = 0.999)"),
    ("rmsprop", {"rho": 0.9}, TOML, "rho is Keras's name for the book's decay_rate"),
    ("adam", {"beta_1": 0.8}, TOML, "beta_1 is Keras's name for the book's beta1"),
    ("adam", {"lr_": 0.8}, TOML, "did you mean lr?"),
])
def test_bad_settings_name_the_key(spec, overrides, label, message):
    with pytest.raises(ParityInputError) as err:
        optimizer_settings(spec, label=label, **overrides)
    assert message in str(err.value)


def test_a_label_function_spells_keys_the_callers_way():
    label = lambda key: "optimizer=" if key == "name" else f"optimizer={{..., {key!r}: ...}}"  # noqa: E731
    with pytest.raises(ParityInputError, match=r"^optimizer= must be one of"):
        optimizer_settings("adamw", label=label)
    with pytest.raises(ParityInputError, match=r"^optimizer=\{\.\.\., 'lr': \.\.\.\} must be a finite number"):
        optimizer_settings({"name": "sgd", "lr": 0}, label=label)


# -- the diagnosis, on a quadratic loss ------------------------------------------------------------
TOL = tolerance_for("float64")
TARGET = {"W1": np.array([[0.3, -1.2], [2.0, 0.7]]), "b1": np.array([1.5, -0.5])}


def run(optimizer, steps=30):
    """Step an optimizer on L = sum(a (p - target)^2 / 2) with a different curvature per entry; a Trajectory."""
    params = {"W1": np.zeros((2, 2)), "b1": np.zeros(2)}
    curvature = {"W1": np.array([[1.0, 3.0], [0.5, 2.0]]), "b1": np.array([4.0, 0.25])}
    out = {k: [] for k in params}
    grads = {k: [] for k in params}
    state = {}
    for _ in range(steps):
        g = {k: curvature[k] * (params[k] - TARGET[k]) for k in params}
        optimizer.update(params, g)
        for k in params:
            out[k].append(params[k].copy())
            grads[k].append(g[k])
        for name in ("v", "h", "m"):
            if isinstance(getattr(optimizer, name, None), dict):
                state.setdefault(name, {k: [] for k in params})
                for k in params:
                    state[name][k].append(getattr(optimizer, name)[k].copy())
    stack = lambda d: {k: np.stack(v) for k, v in d.items()}  # noqa: E731
    return Trajectory(stack(out), {s: stack(v) for s, v in state.items()}, stack(grads))


ZERO = {"W1": np.zeros((2, 2)), "b1": np.zeros(2)}


def test_the_same_optimizer_on_both_sides_has_no_finding():
    s = optimizer_settings("adam", lr=0.05)
    assert diagnose_optimizer(s, ZERO, run(s.reference()), run(s.reference()), TOL, "Adam") == []


def test_a_flipped_velocity_parts_in_state_first_and_is_named_sign_flip():
    class Flipped(ref.Momentum):
        def update(self, params, grads):
            if self.v is None:
                self.v = ref.zeros_like_each(params)
            for key in params:
                self.v[key] = self.momentum * self.v[key] + self.lr * grads[key]
                params[key] += self.v[key]

    s = optimizer_settings("momentum", lr=0.05)
    keras = run(s.reference())
    assert first_parting(run(Flipped(0.05, 0.9)), keras, TOL, 30)[1][0] == ("state", "v", "W1")
    [f] = diagnose_optimizer(s, ZERO, run(Flipped(0.05, 0.9)), keras, TOL, "Flipped")
    assert (f["code"], f["severity"], f["step"], f["state"], f["layer"]) == ("sign_flip", "error", 0, "v", "Flipped")
    assert "first in state v['W1']" in f["message"]


def test_the_book_against_the_keras_convention_is_a_convention_with_its_size():
    """AdaGrad at lr 0.05 on the quadratic: the book and Keras's formula differ by ~1e-9, far above 1e-12."""
    s = optimizer_settings("adagrad", lr=0.05)
    user, keras = run(s.reference()), run(s.keras_convention_reference())
    [f] = diagnose_optimizer(s, ZERO, user, keras, TOL, "AdaGrad")
    assert (f["code"], f["severity"]) == ("convention", "warning")
    size = max(np.abs(user.params[k] - keras.params[k]).max() for k in user.params)
    assert f["size"] == size and 1e-12 < size < 1e-6
    assert f["user_vs_book"] == 0.0 and f["keras_vs_convention_reference"] == 0.0


def test_no_convention_without_evidence_that_keras_follows_it():
    s = optimizer_settings("adagrad", lr=0.05)
    not_keras = run(ref.AdaGradKerasConvention(lr=0.05, initial_accumulator_value=0.1))  # Keras's default start
    [f] = diagnose_optimizer(s, ZERO, run(s.reference()), not_keras, TOL, "AdaGrad")
    assert f["code"] != "convention" and f["severity"] == "error"


@pytest.mark.parametrize("name, cause", [(n, v.cause) for n in OPTIMIZER_NAMES
                                         for v in variants_for(optimizer_settings(n), {"W1": (2, 2), "b1": (2,)})
                                         if not v.description.startswith("Keras's") and v.cause != "shared_state"])
def test_each_replayed_bug_is_named_by_the_diagnosis(name, cause):
    s = optimizer_settings(name, lr=0.05)
    variant = next(v for v in variants_for(s, {"W1": (2, 2), "b1": (2,)}) if v.cause == cause)
    [f] = diagnose_optimizer(s, ZERO, run(variant.make()), run(s.keras_convention_reference()), TOL, "Mine")
    assert (f["code"], f.get("cause")) == (variant.code, cause)


def test_one_velocity_for_every_key_is_named_when_the_shapes_allow_it():
    s = optimizer_settings("momentum", lr=0.05)
    [shared] = [v for v in variants_for(s, {"a": (2,), "b": (2,)}) if v.cause == "shared_state"]
    with pytest.raises(ValueError, match="broadcast"):  # where NumPy cannot broadcast it, a learner's raises too
        replay(shared.make, {"a": np.zeros((2, 2)), "b": np.zeros(2)},
               {"a": np.ones((3, 2, 2)), "b": np.ones((3, 2))}, 3)
    rng = np.random.default_rng(3)
    grads = {"a": rng.normal(size=(20, 2)), "b": rng.normal(size=(20, 2))}
    start = {"a": np.zeros(2), "b": np.ones(2)}
    user = Trajectory(replay(shared.make, start, grads, 20), {}, grads)
    keras = Trajectory(replay(s.reference, start, grads, 20), {}, grads)
    [f] = diagnose_optimizer(s, start, user, keras, TOL, "Momentum")
    assert f["code"] == "shared_state"


def test_a_hard_coded_hyperparameter_is_named_with_both_values():
    s = optimizer_settings("rmsprop", lr=0.05, decay_rate=0.9)
    user = run(ref.RMSprop(lr=0.05, decay_rate=0.99))
    [f] = diagnose_optimizer(s, ZERO, user, run(s.keras_convention_reference()), TOL, "RMSprop",
                             held={"decay_rate": (0.99, 0.9)})
    assert f["code"] == "hyperparameter" and f["severity"] == "error"
    assert "your RMSprop uses decay_rate 0.99; the run's is 0.9" in f["message"]


def test_parameters_that_agree_with_a_state_that_does_not_is_a_warning():
    class NegativeVelocity(ref.Momentum):  # v = mu v + lr g; p -= v: the same steps, the opposite v
        def update(self, params, grads):
            if self.v is None:
                self.v = ref.zeros_like_each(params)
            for key in params:
                self.v[key] = self.momentum * self.v[key] + self.lr * grads[key]
                params[key] -= self.v[key]

    s = optimizer_settings("momentum", lr=0.05)
    [f] = diagnose_optimizer(s, ZERO, run(NegativeVelocity(0.05, 0.9)), run(s.reference()), TOL, "Momentum")
    assert (f["code"], f["severity"], f["step"]) == ("state_mismatch", "warning", 0)
    assert "-1 x Keras's" in f["message"]


def test_an_unknown_bug_is_an_update_mismatch_with_the_step_it_parts():
    class Drifts(ref.SGD):
        calls = 0

        def update(self, params, grads):
            Drifts.calls += 1
            super().update(params, grads)
            if Drifts.calls == 7:
                params["b1"] += 0.01

    s = optimizer_settings("sgd", lr=0.05)
    [f] = diagnose_optimizer(s, ZERO, run(Drifts(0.05)), run(s.reference()), TOL, "SGD")
    assert (f["code"], f["step"], f["param"]) == ("update_mismatch", 6, "b1")


def test_every_code_the_diagnosis_can_give_is_in_its_table():
    from parity.diagnosis.optimizer import CODES

    codes = {v.code for n in OPTIMIZER_NAMES for v in variants_for(optimizer_settings(n), {"a": (2,), "b": (2,)},
                                                                   {"epsilon": 1e-8})}
    assert codes | {"hyperparameter", "update_mismatch", "state_mismatch"} <= set(CODES)
    assert all(c.severity in ("error", "warning") and c.meaning for c in CODES.values())  # fixes: test_fixes.py
