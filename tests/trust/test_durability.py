"""A run directory's files stay what their names say, whatever was moved aside."""

import os
from pathlib import Path

import pytest

from farm.rundir import RunDir
from farm.store import DAMAGED, SampleStore


def _rows(round_no, n=2):
    return [{"sample_id": f"r{round_no}-c{i}", "round": round_no, "index": i, "status": "ok",
             "runtime_ms": 1.0 + i, "featurization": b"\0" * 8} for i in range(n)]


def test_compaction_never_spans_a_round_moved_to_damaged(tmp_path):
    store = SampleStore(tmp_path)
    for r in range(1, 7):
        store.commit_round(r, _rows(r))
    (tmp_path / DAMAGED).mkdir()
    moved = tmp_path / DAMAGED / "round-000002.parquet"
    (tmp_path / "round-000002.parquet").rename(moved)
    merged = store.compact(min_files=3)
    assert merged is not None and merged.name == "rounds-000003-000006.parquet"
    assert store.lost_rounds() == [2]  # still known to be lost
    assert store.compact(min_files=1) is not None  # round 1 alone, never 1..6
    assert not [p for p in tmp_path.glob("rounds-*") if p.name.startswith("rounds-000001-0000")
                and not p.name.endswith("000001.parquet")]
    moved.rename(tmp_path / "round-000002.parquet")  # restored: read again, as its own file
    assert store.lost_rounds() == []
    assert store.committed_rounds() == [1, 2, 3, 4, 5, 6]
    assert sorted({r["round"] for r in store.read(["round"]).to_pylist()}) == [1, 2, 3, 4, 5, 6]


# --- the provisional weights' rename ---------------------------------------------------

def _on_disk(fd) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.fixture
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def test_the_provisional_weights_rename_is_on_disk_before_its_step_is_recorded(
        tmp_path, baseline, local_ray, monkeypatch):
    from farm import catalog, targets
    from farm.pool import DevicePool
    from farm.testing import (
        FakeCluster,
        ScriptedTrainer,
        SyntheticBuilder,
        open_synthetic,
        synthetic_infos,
    )
    from farm.timing import TimingConfig
    from farm.tuner import TuneSettings, autotune

    run = tmp_path / "run"
    weights_dir = str((run / "weights").resolve())
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    real_part = RunDir.write_round_part

    def fsync(fd):
        if _on_disk(fd) == weights_dir:
            events.append("weights/ synced")
        real_fsync(fd)

    def replace(src, dst):
        real_replace(src, dst)
        if Path(src).name == "provisional.weights":
            events.append("moved")

    def write_round_part(self, record):
        if "provisional_kept" in (record.steps or []):
            events.append("recorded")
        real_part(self, record)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(RunDir, "write_round_part", write_round_part)
    infos = synthetic_infos(2, seconds=0.01)
    pool = DevicePool.create(infos, SyntheticBuilder(0.01), compile_slots=4,
                             opener=open_synthetic)
    s = TuneSettings((catalog.resolve("median3x3"),), targets.resolve(None), baseline,
                     rounds=2, batch_size=8, timing=TimingConfig(), retimes=3)
    try:
        autotune(run, s, cluster=FakeCluster(infos), pool=pool,
                 trainer=ScriptedTrainer(provisional_after={1}))
    finally:
        pool.shutdown()
    moved = events.index("moved")
    assert "weights/ synced" in events[moved:events.index("recorded", moved)], events
