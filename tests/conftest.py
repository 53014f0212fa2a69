import os
import tempfile

import numpy as np
import pytest

from farm.candidate import CandidateSpec
from farm.machine import targets
from farm.model import weights
from farm.pipelines import catalog

# The tests' device leases and model registry are their own: a test never waits for, or
# writes to the log of, a farm the developer runs (farm.execution.leases), and a model the
# developer promoted never changes a test's start weights (farm.store.registry). Set
# before any Ray starts, so its workers and every `farm` a test runs inherit them.
os.environ["FARM_LEASE_DIR"] = tempfile.mkdtemp(prefix="farm-test-leases-")
os.environ["FARM_MODELS_DIR"] = tempfile.mkdtemp(prefix="farm-test-models-")



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


@pytest.fixture
def no_ray(monkeypatch):
    """Fails the test when Ray starts: for refusals that need no cluster (issue 22), which
    must come before it (starting Ray takes seconds). Ray left up by an earlier test is shut
    down first, else a command would use it without calling ray.init."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
    started = []

    def init(*args, **kwargs):
        started.append(args)
        raise AssertionError("ray.init was called: this refusal came after Ray started")

    monkeypatch.setattr(ray, "init", init)
    yield
    assert not started and not ray.is_initialized()
