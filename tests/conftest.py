import numpy as np
import pytest

from farm import catalog, targets, weights
from farm.candidate import CandidateSpec


@pytest.fixture(scope="session")
def baseline():
    return weights.baseline()


@pytest.fixture(scope="session")
def host():
    return targets.resolve(None)


@pytest.fixture
def spec_for(baseline, host):
    """CandidateSpec factory for a built-in benchmark on the host."""

    def make(name, **fields):
        fields.setdefault("weights", baseline)
        return CandidateSpec(catalog.resolve(name), fields.pop("target", host), **fields)

    return make


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
