"""Crafted run directories for the trust tests: copies of tests/data/v1-run and small
campaigns, edited as someone else could have written them, and a generator that leaves a
marker file when any of its code runs."""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from farm.errors import FarmError
from farm.machine import targets
from farm.model import featurization, weights
from farm.store.records import (
    FinalistRecord,
    Manifest,
    PipelineRecord,
    RetimingRecord,
    VerdictRecord,
)
from farm.store.rundir import RunDir, now_iso
from farm.testing import fake_featurization

V1_RUN = Path(__file__).parent.parent / "data" / "v1-run"  # written by the first release

# Writes the marker the moment the file is imported, then is a valid generator.
PLANTED = textwrap.dedent('''
    import pathlib
    pathlib.Path({marker!r}).write_text("the planted generator ran")

    import halide as hl

    @hl.generator(name="planted")
    class Planted:
        input = hl.InputBuffer(hl.UInt(8), 2)
        output = hl.OutputBuffer(hl.UInt(8), 2)

        def generate(g):
            x, y = hl.Var("x"), hl.Var("y")
            g.output[x, y] = g.input[x, y]
            g.input.set_estimates([(0, 64), (0, 64)])
            g.output.set_estimates([(0, 64), (0, 64)])
''')

BRIGHTEN = (Path(__file__).parent.parent / "data" / "pygen" / "brighten_generator.py"
            ).read_text()  # a harmless generator of the user's


class StopBeforeWork(FarmError):
    """Raised where a command would start devices or Ray: every check came before it."""

    exit_code = 99


class StopSession:
    """Stands for DeviceSession (and a Cluster): the command got past every refusal."""

    local = False  # (a cluster's: nothing is built on this machine before it is entered)

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        raise StopBeforeWork("stopped before the devices: every check passed")

    def __exit__(self, *exc):
        return None


def plant(folder: Path, marker: Path, name: str = "planted.py") -> tuple[Path, str]:
    """A generator file alone in `folder` that writes `marker` when it runs; its path and
    the sha256 the farm gives it (a file alone in its folder: its text's)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(PLANTED.format(marker=str(marker)))
    return path, hashlib.sha256(path.read_text().encode()).hexdigest()


def user_generator(folder: Path) -> tuple[Path, str]:
    """A harmless generator of the user's, alone in `folder`: its path and sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "brighten.py"
    path.write_text(BRIGHTEN)
    return path, hashlib.sha256(BRIGHTEN.encode()).hexdigest()


def v1_run(path: Path, **manifest_fields) -> RunDir:
    """A copy of the first release's run, its manifest's fields replaced as given."""
    shutil.copytree(V1_RUN, path, dirs_exist_ok=True)
    if manifest_fields:
        edit_json(path / "manifest.json", lambda m: m.update(manifest_fields))
    return RunDir(path)


def add_best(run: RunDir) -> None:
    """best/runtime.json and weights/best.json (with their weights), as finalize writes
    them, for a run of dilate3x3."""
    verdict = VerdictRecord(ratio=0.8, low=0.7, high=0.9, pairs=6, verdict="faster")
    record = RetimingRecord(
        benchmark="dilate3x3", runtime_ms=0.24, finalist="beam search with round-000001",
        retimes_ms=[0.25, 0.24, None], weights="round-000001.weights",
        weights_file="best/dilate3x3.weights", seed=0, beam_size=32, random_dropout=100,
        parallelism=32, target="x86-64-linux", library="dilate3x3.a",
        finalists=[FinalistRecord("beam search with round-000001", 0.24, [0.25, 0.24, None],
                                  "round-000001.weights", beam_search=True, vs_start=verdict),
                   FinalistRecord("manual schedule", 0.5, [0.5, 0.5, 0.5], reference=True)])
    staged = run.best.staging()
    weights.write(weights.baseline(), staged / "dilate3x3.weights")
    run.best.publish(staged, record)
    (run.path / "weights").mkdir(exist_ok=True)
    weights.write(weights.baseline(), run.weights_path(0))
    weights.write(weights.baseline(), run.weights_path(1))
    weights.write(weights.baseline(), run.best_weights)
    run.best_weights_record.write_text(json.dumps({
        "weights": "round-000001.weights", "reason": "its beam search is faster",
        "beam_ms": 0.24, "compared": {"beam search with round-000001": {
            "weights": "round-000001.weights", "median_ms": 0.24,
            "vs_start": verdict.to_json()}}}))


def campaign(path: Path, pipelines: list[PipelineRecord], distinct: int = 10) -> RunDir:
    """A campaign run directory: manifest, start weights and one committed round with
    `distinct` schedules measured per pipeline."""
    host = targets.resolve(None)
    start = weights.baseline()
    run = RunDir(path)
    path.mkdir(parents=True, exist_ok=True)
    run.write_manifest(Manifest(
        run_id="crafted", benchmark="campaign", generator="campaign", benchmark_sha256="",
        target=host.compile, schedule_target=host.schedule, batch_size=8, parallelism=32,
        start_weights_sha256=start.sha256, created_at=now_iso(), campaign=True,
        pipelines=pipelines))
    run.weights_path(0).parent.mkdir(exist_ok=True)
    weights.write(start, run.weights_path(0))
    rows = []
    for k, p in enumerate(pipelines):
        for i in range(distinct):
            f = fake_featurization(1000 * (k + 1) + i, pipeline=p.name)
            ms = 1.0 + 0.37 * ((i * 7919 + k) % 11)
            rows.append({
                "sample_id": f"crafted-{k}-r000001-c{i:04d}", "run_id": "crafted",
                "round": 1, "index": i, "benchmark": p.name,
                "pipeline_id": featurization.pipeline_id(f), "schedule_id": i + 1,
                "status": "ok", "runtime_ms": ms, "runtimes_ms": [ms],
                "schedule_key": featurization.schedule_key(f), "featurization": f,
                "target": host.compile, "created_at": datetime.now(UTC)})
    run.samples.commit_round(1, rows)
    return run


def edit_json(path: Path, change) -> None:
    """Apply `change(data)` (in place, or returning the new data) to a JSON file."""
    data = json.loads(path.read_text())
    changed = change(data)
    path.write_text(json.dumps(data if changed is None else changed))


_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def set_field(data, where: str, value) -> None:
    """Set `where` ("pipelines[0].name", "acceptance.candidates[1].accuracy") in `data`."""
    steps = [int(i) if i else k for k, i in _STEP.findall(where)]
    for step in steps[:-1]:
        data = data[step]
    data[steps[-1]] = value


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


MARKUP = "<img src=x onerror=alert(1)>"
# Values a hostile or broken writer puts in a record's fields (the fuzz passes:
# tests/trust/test_malformed_records.py, tests/perf/fuzz_run_dirs.py)
BAD_VALUES = ("../../victim", "a/b", "x\x00y", "x\x1b[2Jy\u202e", MARKUP, "", None, -1,
              10**40, 1e308, math.nan, True, [], {}, [{"x": 1}])


def fields(data, prefix: str = "") -> list[str]:
    """Every field of a JSON record, nested ones (first items of lists) included."""
    out = []
    for key, value in data.items():
        where = f"{prefix}{key}"
        out.append(where)
        if isinstance(value, dict) and value and all(isinstance(v, dict)
                                                     for v in value.values()):
            first = next(iter(value))
            if isinstance(first, str) and "." not in first and "[" not in first:
                out += fields(value[first], f"{where}.{first}.")
        elif isinstance(value, dict):
            out += fields(value, f"{where}.")
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out += fields(value[0], f"{where}[0].")
    return out
