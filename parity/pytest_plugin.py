"""The pytest plugin (entry point `pytest11: keras_parity`): the `keras_parity` fixture.

The fixture calls parity.check; the Keras side is cached in the process, so every test of a
session that uses one configuration shares one Keras fit.
"""

from __future__ import annotations

import pytest

__all__ = ["keras_parity"]


class KerasParity:
    """Call it as parity.check; `.assert_parity(...)` as parity.testing.assert_parity."""

    def __call__(self, layers=None, /, **options):
        from parity.api import check

        return check(layers, **options)

    def assert_parity(self, layers=None, /, **options):
        __tracebackhide__ = True  # noqa: F841 (pytest reads it: the failure points at the user's test)
        from parity.testing import assert_parity

        return assert_parity(layers, **options)


@pytest.fixture
def keras_parity() -> KerasParity:
    """parity.check as a fixture: `report = keras_parity(my_layers, dtype="float64")`."""
    return KerasParity()
