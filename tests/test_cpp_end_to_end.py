"""C++ generators through the command line with real Halide and real Ray: farm run, a
campaign of two parameter sets, and a two-node cluster whose nodes each build the
generator once in their own cache."""

import json
import socket
from pathlib import Path

import pytest
from clitools import farm
from raycluster import LocalCluster, auth_env

from farm.store.rundir import RunDir
from farm.store.samples import SampleStore

EXAMPLES = Path(__file__).parent.parent / "examples" / "cpp"
NODE = socket.gethostname().split(".")[0]


def _rows(run):
    return SampleStore(run / "samples").read().to_pylist()


@pytest.mark.slow
def test_farm_run_on_a_cpp_generator_folder(tmp_path):
    out = farm("run", EXAMPLES / "median3x3", "--beam-size", "4", "--out", tmp_path,
               check=0).stdout
    assert out.startswith("median3x3: beam 4"), out
    auto = next(line for line in out.splitlines() if "autoscheduled:" in line)
    assert "= autoschedule " in auto and "+ codegen " in auto and "+ link " in auto
    assert "manual:" in out and "failed" not in out, out
    assert "apply_schedule_median3x3" in (tmp_path / "median3x3.schedule.h").read_text()


@pytest.mark.slow
def test_a_campaign_of_two_parameter_sets_of_a_cpp_generator(tmp_path):
    run = tmp_path / "run"
    names = [f"conv3x3:accumulator_type={t}" for t in ("int16", "int32")]
    farm("autotune", *(f"{EXAMPLES / 'conv3x3'}:accumulator_type={t}" for t in ("int16",
         "int32")), "--rounds", "2", "--batch-size", "6", "--out", run, check=0)
    rows = _rows(run)
    assert sorted({r["benchmark"] for r in rows}) == names
    assert len(rows) == 2 * 2 * 6
    ids = {b: {r["pipeline_id"] for r in rows if r["benchmark"] == b and r["pipeline_id"]}
           for b in names}
    assert all(len(v) == 1 for v in ids.values()) and ids[names[0]] != ids[names[1]]
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) >= 16, [(r["status"], r["error"]) for r in rows if r["status"] != "ok"]
    for r in ok:  # a C++ candidate's row is as full as a Python one's
        assert r["autoschedule_s"] > 0 and r["codegen_s"] > 0 and r["link_s"] > 0
        assert r["schedule_source"] and r["featurization"] and r["compile_host"]
    manifest = json.loads((run / "manifest.json").read_text())
    assert [p["name"] for p in manifest["pipelines"]] == names
    # one copy of the generator's files serves both parameter sets
    assert (run / "generators" / "conv3x3" / "conv3x3_generator.cpp").is_file()
    for name in names:
        assert RunDir(run).read_retiming(name) is not None


@pytest.mark.slow
def test_each_node_builds_the_cpp_generator_once_in_its_own_cache(tmp_path):
    caches = [tmp_path / "head-cache", tmp_path / "worker-cache"]
    cluster = LocalCluster(workers=1, cpus=1,
                           node_env=[{"FARM_CACHE_DIR": str(c)} for c in caches])
    try:
        run = tmp_path / "run"
        farm("autotune", EXAMPLES / "median3x3", "--rounds", "1", "--batch-size", "8",
             "--address", cluster.address, "--out", run,
             env={**auth_env(), "FARM_CACHE_DIR": str(tmp_path / "driver-cache")}, check=0)
    finally:
        cluster.stop()
    rows = _rows(run)
    assert len(rows) == 8 and len({r["node_id"] for r in rows if r["status"] == "ok"}) == 2
    # one compile slot per node and a candidate compiling on each device: both compiled
    for cache in caches:
        built = list(cache.glob("generators/*/generator"))
        logs = list(cache.glob("generators/*/build.log"))
        assert len(built) == 1 and len(logs) == 1, (cache, built, logs)
