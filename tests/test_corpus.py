"""The corpus of real pipelines (benchmarks/corpus/): each computes what its NumPy
reference computes, autoscheduled, and each compiles for the Hexagon class's target."""

import importlib
import pkgutil

import corpus_refs
import halide as hl
import numpy as np
import pytest

from farm.build import compiler
from farm.candidate import RANDOM_PROBE
from farm.machine import targets
from farm.pipelines import catalog

CASES = {}
for _info in pkgutil.iter_modules(corpus_refs.__path__):
    for _name, _case in importlib.import_module(f"corpus_refs.{_info.name}").CASES.items():
        CASES[_name] = (_info.name, _case)


def _spec(name, case, spec_for, **fields):
    params = ":" + ",".join(f"{k}={v}" for k, v in case.params.items()) if case.params else ""
    return spec_for(name.split("@")[0] + params, **fields)


def test_every_corpus_pipeline_has_a_reference_in_its_family():
    have = {n.split("@")[0]: fam for n, (fam, _) in CASES.items()}
    for family, benches in catalog.corpus_families().items():
        for b in benches:
            assert have.get(b.name) == family, f"{b.name} ({family}) has no reference"
            assert b.description, f"{b.name} has no description"


@pytest.mark.parametrize("name", sorted(CASES))
def test_autoscheduled_matches_reference(name, spec_for, rng):
    _, case = CASES[name]
    inputs = case.inputs(rng)
    expected = case.reference(**inputs)
    instance, _ = compiler.schedule(_spec(name, case, spec_for, seed=7, **RANDOM_PROBE))
    for input_name, array in inputs.items():
        getattr(instance.generator, input_name).set(hl.Buffer(np.ascontiguousarray(array)))
    got = np.asarray(instance.pipeline.realize(list(reversed(expected.shape))))
    assert got.dtype == expected.dtype
    if case.atol:
        np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64),
                                   rtol=0, atol=case.atol)
    else:
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", sorted(CASES))
def test_compiles_for_the_hexagon_class(name, spec_for, tmp_path):
    """Scheduled for hexagon-32-noos-hvx (HVX vectors), offloaded, compiled for Android."""
    _, case = CASES[name]
    hvx = targets.resolve("arm-64-android-hvx")
    spec = _spec(name, case, spec_for, target=hvx, seed=3, **RANDOM_PROBE)
    compiler.write_library(spec, tmp_path)
    (library,) = tmp_path.glob("*.a")
    assert _embeds_hexagon_code(library.read_bytes()), f"{name}: no Hexagon code offloaded"


EM_QDSP6 = 0xA4  # ELF e_machine of Qualcomm Hexagon


def _embeds_hexagon_code(data: bytes) -> bool:
    """Whether an ARM library carries an offloaded Hexagon shared object (an ELF whose
    e_machine is Hexagon's), as Halide embeds the HVX code of a .hexagon() stage."""
    at = data.find(b"\x7fELF")
    while at >= 0:
        if int.from_bytes(data[at + 18:at + 20], "little") == EM_QDSP6:
            return True
        at = data.find(b"\x7fELF", at + 1)
    return False
