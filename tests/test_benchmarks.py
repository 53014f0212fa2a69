"""Each built-in benchmark computes what its numpy reference computes."""

import halide as hl
import numpy as np
import pytest
from reference import REFERENCES

from farm.build import compiler
from farm.candidate import RANDOM_PROBE
from farm.machine import targets
from farm.pipelines import catalog

NAMES = sorted(REFERENCES)
WIDTH, HEIGHT = 256, 256  # multiples of the HVX schedule's 128x4 tiles and strips


def _inputs(name, rng):
    img = rng.integers(0, 256, size=(HEIGHT, WIDTH), dtype=np.uint8)
    if name.startswith("conv3x3"):
        mask = rng.integers(-128, 128, size=(3, 3), dtype=np.int8)
        return {"input": img, "mask": mask}
    return {"input": img}


def _realize(spec, inputs):
    instance, _ = compiler.schedule(spec)
    for name, array in inputs.items():
        getattr(instance.generator, name).set(hl.Buffer(array))
    return np.asarray(instance.pipeline.realize([WIDTH, HEIGHT]))


def test_builtin_list_matches_references():
    assert [b.name for b in catalog.builtin_benchmarks()] == NAMES
    assert all(b.description for b in catalog.builtin_benchmarks())


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("manual", ["cpu", "hvx-host"])
def test_manual_schedule_matches_reference(name, manual, spec_for, rng):
    inputs = _inputs(name, rng)
    spec = compiler.manual_spec(spec_for(name), manual)
    np.testing.assert_array_equal(_realize(spec, inputs), REFERENCES[name](*inputs.values()))


@pytest.mark.parametrize("name", NAMES)
def test_autoscheduled_matches_reference(name, spec_for, rng):
    inputs = _inputs(name, rng)
    spec = spec_for(name, seed=7, **RANDOM_PROBE)
    np.testing.assert_array_equal(_realize(spec, inputs), REFERENCES[name](*inputs.values()))


@pytest.mark.parametrize("name", NAMES)
def test_hvx_schedule_compiles_for_android(name, spec_for, tmp_path):
    hvx = targets.resolve("arm-64-android-hvx")
    spec = compiler.manual_spec(spec_for(name, target=hvx))
    compiler.write_library(spec, tmp_path)
    assert (tmp_path / f"{name}.a").stat().st_size > 0
    header = (tmp_path / f"{name}.h").read_text()
    assert f"int {name}(" in header
