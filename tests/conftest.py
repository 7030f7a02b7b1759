"""Shared fixtures: seed-scenario runs against Keras are computed once per session."""

import pytest

pytest_plugins = ["pytester"]  # tests/test_testing.py runs user test files through pytest itself

from parity.config import resolve
from parity.inputs import prepare


@pytest.fixture(scope="session")
def seed_run():
    """run_parity on the seed scenario, cached per dtype (each run fits a Keras model)."""
    from parity.runner import run_parity

    cache = {}

    def get(dtype: str):
        if dtype not in cache:
            cache[dtype] = run_parity(prepare(resolve({"dtype": dtype})))
        return cache[dtype]

    return get
