"""Real featurizations for tests that train or predict: random probes of a built-in benchmark,
autoscheduled in this process (beam 1, ~0.03 s each)."""

import functools
from dataclasses import replace

import pyarrow as pa

from farm.build import compiler
from farm.candidate import RANDOM_PROBE, CandidateSpec
from farm.machine import targets
from farm.model import featurization, weights
from farm.pipelines import catalog


@functools.cache
def probes(bench: str = "median3x3", count: int = 40) -> tuple[bytes, ...]:
    """Distinct schedules' featurizations of `bench`."""
    spec = CandidateSpec(catalog.resolve(bench), targets.resolve(None), weights.baseline(),
                         **RANDOM_PROBE)
    out, keys = [], set()
    seed = 1
    while len(out) < count and seed < 20 * count:
        f = compiler.autoschedule(replace(spec, seed=seed)).featurization
        seed += 1
        if featurization.schedule_key(f) not in keys:
            keys.add(featurization.schedule_key(f))
            out.append(f)
    return tuple(out)


def table(feats, runtimes, rounds) -> pa.Table:
    """Rows with the columns training and acceptance read."""
    return pa.Table.from_pylist([
        {"sample_id": f"t-r{r:06d}-c{i:04d}", "round": r, "status": "ok",
         "runtime_ms": float(t), "pipeline_id": featurization.pipeline_id(f),
         "schedule_id": i + 1, "schedule_key": featurization.schedule_key(f),
         "featurization": f}
        for i, (f, t, r) in enumerate(zip(feats, runtimes, rounds, strict=True))])
