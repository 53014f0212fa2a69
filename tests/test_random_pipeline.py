"""The farm's random pipelines (BENCH `random`): a seed is one pipeline of one version."""

import pytest
from clitools import farm

from farm.build import compiler
from farm.candidate import RANDOM_PROBE, CandidateSpec
from farm.errors import BenchmarkError
from farm.machine import targets
from farm.model import featurization
from farm.pipelines import catalog
from farm.pipelines.benchmark import format_params

# Pipeline ids of version 1, pinned: a seed stays one pipeline on every node and release
# (the pipeline features do not depend on the target: two x86 targets give these ids).
PINNED = {"random:seed=0": 444625284, "random:seed=1": 1362849180,
          "random:seed=2": 1752997484, "random:seed=0,types=int": 1242618271}
PINNED_V2 = 457747002  # random:seed=0,types=int,version=2 (it draws a masked convolution)


def _pipeline_id(ref: str, target: str, baseline) -> int:
    bench = catalog.resolve(ref)
    schedule = compiler.autoschedule(CandidateSpec(bench, targets.resolve(target), baseline,
                                                   seed=1, **RANDOM_PROBE))
    return featurization.pipeline_id(schedule.featurization, format_params(bench.params))


@pytest.mark.parametrize("target", ["host", "x86-64-linux-avx-avx2-f16c-fma-sse41"])
def test_a_seed_is_one_pipeline_whatever_the_target(target, baseline):
    assert {ref: _pipeline_id(ref, target, baseline) for ref in PINNED} == PINNED


def test_the_version_is_part_of_every_pipeline_name():
    assert catalog.resolve("random").label == "random:version=1"
    assert catalog.resolve("random:seed=7").label == "random:seed=7,version=1"
    assert catalog.resolve("random:version=1,seed=7").label == "random:seed=7,version=1"


def test_version_2_is_planar_with_a_mask_and_a_seed_is_one_pipeline(baseline):
    """Version 2's images are 2-D with a second input (the stencils' mask), as the
    built-ins; its pipelines differ from version 1's of the same seed."""
    spec = CandidateSpec(catalog.resolve("random:seed=0,types=int,version=2"),
                         targets.resolve("host"), baseline)
    instance = compiler.Instance(spec)
    assert [(a.name, a.dimensions) for a in instance.arguments] == [("input", 2), ("mask", 2)]
    assert [f.dimensions() for f in instance.outputs] == [2]
    assert _pipeline_id("random:seed=0,types=int,version=2", "host", baseline) == PINNED_V2
    assert _pipeline_id("random:seed=0,types=int", "host", baseline) != PINNED_V2


def test_it_is_not_one_of_the_built_in_benchmarks():
    names = [b.name for b in catalog.builtin_benchmarks()]
    assert "random" not in names and len(names) == 6
    assert catalog.resolve("random").builtin  # travels like one: the farm carries it


@pytest.mark.parametrize("params, message", [
    ("types=complex", "types=complex: choose float or int"),
    ("version=3", "this farm draws versions 1, 2"),
    ("stages=0", "stages must be 1 to 64"),
    ("stages=99999999999", "stages must be 1 to 64"),  # refused before it builds for hours
    ("size=100000", "size 16 to 8192"),
])
def test_a_bad_parameter_is_refused_with_the_generators_reason(params, message, baseline):
    bench = catalog.resolve(f"random:{params}")
    with pytest.raises(BenchmarkError, match=message):
        compiler.check_pipeline(CandidateSpec(bench, targets.resolve("host"), baseline))


def test_its_module_does_not_shadow_pythons_random():
    import random

    assert hasattr(random, "Random") and "farm" not in (random.__file__ or "")
    assert catalog.GENERATORS["random"].name != "random.py"


def test_a_random_pipeline_is_compiled_under_a_name_libc_does_not_have(baseline):
    spec = CandidateSpec(catalog.resolve("random:seed=1"), targets.resolve("host"), baseline)
    assert compiler.function_name(spec) == "random_pipeline"


def test_farm_run_times_a_random_pipeline_and_its_manual_schedule(tmp_path):
    proc = farm("run", "random:seed=2,types=int", "--beam-size", "1", "--out", tmp_path,
                check=0)
    assert "autoscheduled:" in proc.stdout and "manual:" in proc.stdout
    assert "failed" not in proc.stdout, proc.stdout  # the manual schedule too: compute_root
    assert "output" in (tmp_path / "random.schedule.h").read_text()  # the schedule it found


@pytest.mark.slow
def test_a_random_pipeline_tunes_and_its_best_schedule_is_where_the_summary_says(tmp_path):
    """Its compiled name (random_pipeline) is not its generator's: best/ holds
    random_pipeline.a and .schedule.h, and the summary and the API find them."""
    import farm.api as fa

    summary = fa.tune(tmp_path / "run", "random:seed=2,types=int", rounds=1, batch_size=4)
    assert summary.best_schedule_path is not None and summary.best_schedule_path.exists()
    assert summary.best_schedule_path.name == "random_pipeline.schedule.h"
    best = fa.open_run(tmp_path / "run").best()
    assert best is not None and best.schedule_text and best.library_path.exists()
