"""A run directory's files stay what their names say, whatever was moved aside."""

import os
import shutil
from pathlib import Path

import pytest

from farm.store.records import RetimingRecord
from farm.store.rundir import RunDir
from farm.store.samples import DAMAGED, SampleStore


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
    from farm.devices.timing import TimingConfig
    from farm.execution.pool import DevicePool
    from farm.machine import targets
    from farm.pipelines import catalog
    from farm.testing import (
        FakeCluster,
        ScriptedTrainer,
        SyntheticBuilder,
        open_synthetic,
        synthetic_infos,
    )
    from farm.tuning.loop import autotune
    from farm.tuning.settings import TuneSettings

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


# --- best/: published whole, and put back after a crash --------------------------------

def _publish(run: RunDir, ms: float, pipeline: str = "") -> Path:
    staged = run.best.staging(pipeline)
    (staged / "gen.a").write_bytes(b"archive")
    (staged / "gen.schedule.h").write_text("// schedule")
    run.best.publish(staged, RetimingRecord(benchmark="gen", runtime_ms=ms, finalist="x"),
                     pipeline)
    return staged


def test_best_is_published_only_after_its_files_and_folder_are_on_disk(tmp_path,
                                                                     monkeypatch):
    """A power cut after the rename must not leave a best/ whose runtime.json names empty
    files: every file of the staged folder, and the folder, are fsynced before it."""
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    staged = run.best.staging()
    (staged / "gen.a").write_bytes(b"archive")  # as finalize writes them: not synced
    (staged / "gen.h").write_text("// header")
    synced: set[str] = set()
    unsynced_when_published: list[set[str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        synced.add(_on_disk(fd))
        real_fsync(fd)

    def replace(src, dst):
        if Path(src) == staged:
            wanted = {str(p.resolve()) for p in [staged, *staged.iterdir()]}
            unsynced_when_published.append(wanted - synced)
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    run.best.publish(staged, RetimingRecord(benchmark="gen", runtime_ms=1.0, finalist="x"))
    assert unsynced_when_published == [set()]
    assert run.read_retiming().runtime_ms == 1.0


@pytest.mark.parametrize("pipeline", ["", "box:radius=2"])
def test_a_best_moved_aside_by_a_crash_is_put_back_when_the_run_is_read(tmp_path,
                                                                        pipeline):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    staged = _publish(run, 1.0, pipeline)
    aside = staged.with_name(staged.name.removesuffix(".new") + ".old")
    os.replace(run.best_path(pipeline), aside)  # the crash: between publish's two renames
    assert RunDir(run.path).read_retiming(pipeline).runtime_ms == 1.0
    assert run.best_path(pipeline).is_dir() and not aside.exists()


@pytest.mark.parametrize("pipeline", ["", "box:radius=2"])
def test_a_best_moved_aside_is_dropped_once_the_new_one_is_in_place(tmp_path, pipeline):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    staged = _publish(run, 1.0, pipeline)
    aside = staged.with_name(staged.name.removesuffix(".new") + ".old")
    shutil.copytree(run.best_path(pipeline), aside)
    _publish(run, 2.0, pipeline)
    shutil.copytree(run.best_path(pipeline), aside, dirs_exist_ok=True)  # the crash: before
    with RunDir(run.path):  # publish's last step
        assert not aside.exists()
    assert run.read_retiming(pipeline).runtime_ms == 2.0


def test_a_reader_leaves_the_swap_of_a_running_driver_alone(tmp_path):
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    _publish(run, 1.0)
    with RunDir(run.path):  # a driver, in the middle of best.publish
        os.replace(run.best_dir, run.path / ".best.old")
        assert RunDir(run.path).read_retiming() is None
        assert (run.path / ".best.old").is_dir()
        os.replace(run.path / ".best.old", run.best_dir)
