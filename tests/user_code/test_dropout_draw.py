"""A Dropout's draw is driven with a mask Keras drew, whichever NumPy draw the class makes (np.random's, a
generator made in forward or held since the constructor, a binomial or a two-valued choice), in either comparison;
a draw that can't be driven is said (its own mask), and np.random is left as it was."""

import numpy as np
import pytest

from parity.user_code.dropout_draw import DRIVEN, OWN_MASK, SWAPPED, drawn, drive

RATIO = 0.3
X = np.random.default_rng(5).normal(size=(4, 6))  # nonzero everywhere: the output shows every unit
KEEP = np.random.default_rng(6).random(X.shape) > RATIO


class Draws:
    """A Dropout whose forward draws its mask with `draw(self, shape)` and keeps where `keep(values)`."""

    def __init__(self, draw, keep=lambda v: v > RATIO):
        self.draw, self.keep, self.rng = draw, keep, np.random.default_rng(0)

    def forward(self, x):
        self.mask = self.keep(self.draw(self, x.shape))
        return x * self.mask / (1.0 - RATIO)


DRAWS = {
    "np.random.rand": lambda s, shape: np.random.rand(*shape),
    "np.random.random": lambda s, shape: np.random.random(shape),
    "np.random.random_sample": lambda s, shape: np.random.random_sample(size=shape),
    "np.random.uniform": lambda s, shape: np.random.uniform(0, 1, shape),
    "np.random.uniform(size=)": lambda s, shape: np.random.uniform(size=shape),
    "default_rng() in forward": lambda s, shape: np.random.default_rng().random(shape),
    "default_rng(0).uniform in forward": lambda s, shape: np.random.default_rng(0).uniform(0.0, 1.0, shape),
    "a generator held since __init__": lambda s, shape: s.rng.random(shape),
}


class HeldRandomState(Draws):
    def __init__(self):
        super().__init__(lambda s, shape: s.rng.rand(*shape))
        self.rng = np.random.RandomState(0)


def test_a_held_random_state_is_driven_too():
    layer = HeldRandomState()
    assert drive(layer.forward, X, KEEP, holder=layer)[2] == DRIVEN


@pytest.mark.parametrize("name", list(DRAWS))
def test_each_uniform_draw_is_driven_to_keep_what_keras_kept(name):
    layer = Draws(DRAWS[name])
    out, kept, route = drive(layer.forward, X, KEEP, holder=layer)
    assert route == DRIVEN and np.array_equal(kept, KEEP)
    assert np.array_equal(out, X * KEEP / (1.0 - RATIO))


@pytest.mark.parametrize("name,draw", [
    ("np.random.binomial", lambda s, shape: np.random.binomial(1, 1 - RATIO, size=shape)),
    ("a held generator's binomial", lambda s, shape: s.rng.binomial(1, 1 - RATIO, shape)),
    ("np.random.choice([0, 1])", lambda s, shape: np.random.choice([0, 1], size=shape, p=[RATIO, 1 - RATIO])),
])
def test_a_binomial_or_a_choice_of_two_values_is_the_mask_itself(name, draw):
    layer = Draws(draw, keep=lambda v: v.astype(bool))
    out, kept, route = drive(layer.forward, X, KEEP, holder=layer)
    assert route == DRIVEN and np.array_equal(out, X * KEEP / (1.0 - RATIO))


def test_a_class_that_keeps_where_its_draw_is_small_is_driven_with_the_values_swapped():
    layer = Draws(DRAWS["np.random.rand"], keep=lambda v: v < 1 - RATIO)
    out, kept, route = drive(layer.forward, X, KEEP)
    assert route == SWAPPED and np.array_equal(out, X * KEEP / (1.0 - RATIO))


def test_a_choice_that_lists_the_kept_value_first_is_driven_swapped():
    layer = Draws(lambda s, shape: np.random.choice([1, 0], size=shape, p=[1 - RATIO, RATIO]),
                  keep=lambda v: v.astype(bool))
    assert drive(layer.forward, X, KEEP)[2] == SWAPPED


def test_a_randn_draw_is_not_driven_and_its_own_mask_is_read_from_its_output():
    layer = Draws(lambda s, shape: np.random.randn(*shape))
    out, kept, route = drive(layer.forward, X, KEEP)
    assert route == OWN_MASK
    assert np.array_equal(kept, out != 0) and not np.array_equal(kept, KEEP)


def test_a_generator_held_but_not_handed_over_is_left_alone():
    layer = Draws(DRAWS["a generator held since __init__"])
    assert drive(layer.forward, X, KEEP)[2] == OWN_MASK  # no holder: its own generator draws


def test_draws_of_another_shape_are_numpys_and_are_counted():
    with drawn(KEEP) as record:
        other = np.random.rand(3)
        mask = np.random.rand(*KEEP.shape)
    assert (record.matched, record.other) == (1, 1)
    assert 0 <= other.min() and other.max() < 1 and len(set(other)) == 3  # real draws
    assert np.array_equal(mask > RATIO, KEEP)


def test_numpy_and_the_holder_are_restored_even_when_forward_raises():
    before = (np.random.rand, np.random.default_rng, np.random.binomial, np.random.choice)
    layer = Draws(DRAWS["a generator held since __init__"])
    rng = layer.rng
    with pytest.raises(ZeroDivisionError):
        with drawn(KEEP, holder=layer):
            assert layer.rng is not rng
            1 / 0
    assert (np.random.rand, np.random.default_rng, np.random.binomial, np.random.choice) == before
    assert layer.rng is rng


def test_an_output_that_is_not_an_array_of_xs_shape_gives_no_kept_units():
    out, kept, route = drive(lambda x: None, X, KEEP)
    assert out is None and kept is None and route == OWN_MASK
