"""`farm import` of Halide's loop's samples folder, and `--also-train-on` its run."""

from __future__ import annotations

import shutil
import struct
import threading
from pathlib import Path

import pytest
import ray
from clitools import assert_user_error, farm

from farm.devices.timing import TimingConfig
from farm.errors import BadInput, DatasetError, RunDirError
from farm.machine import targets
from farm.model import weights
from farm.pipelines import catalog
from farm.store.records import RunKind
from farm.store.registry import Registry
from farm.store.rundir import RunDir
from farm.store.samples import SampleStore
from farm.testing import (
    ScriptedTrainer,
    autotune_on_doubles,
    fake_featurization,
    synthetic_infos,
)
from farm.tuning.settings import TuneSettings
from farm.workflows.import_loop import import_loop
from farm.workflows.models import promote

INFOS = synthetic_infos(2, seconds=0.01)
CLASS = INFOS[0].device_class.name


def _loop_folder(root, batches=2, per_batch=3, pipelines=("median3x3",)):
    """A samples folder as adams2019_autotune_loop.sh leaves it (its file names, RunGen's
    bench.txt, its seconds), one batch_B_I/N/ per sample."""
    for b in range(1, batches + 1):
        for i, name in enumerate(pipelines):
            for n in range(per_batch):
                d = root / f"batch_{b}_{i}" / str(n)
                d.mkdir(parents=True)
                stem = f"{name}_batch_{b:04d}_sample_{n:04d}"
                seconds = 0.001 * (1 + n + b / 10)
                feats = fake_featurization(b * 100 + n, pipeline=name)
                (d / f"{stem}.sample").write_bytes(  # in ms, as featurization_to_sample
                    feats + struct.pack("<fii", seconds * 1000, i, b * 10000 + n))
                (d / f"{stem}.schedule.h").write_text(f"// schedule {b}/{n}\n")
                (d / "bench.txt").write_text(
                    f"Benchmark for {name} produces best case of {seconds!r} sec/iter "
                    "(over 3 blocks of 10 iterations).\n")
    return root


def test_an_import_holds_one_row_per_sample_and_lists_what_it_skipped(tmp_path):
    folder = _loop_folder(tmp_path / "samples", pipelines=("median3x3", "sobel"))
    (folder / "batch_1_0" / "junk.sample").write_bytes(b"\0" * 100)
    (folder / "batch_2_1" / "0" / "empty.sample").write_bytes(b"")
    s = import_loop(folder, tmp_path / "run", CLASS)
    assert s.rows == 12 and s.rounds == 2 and s.pipelines == {"median3x3": 6, "sobel": 6}
    assert sorted(p.name for p, _ in s.skipped) == ["empty.sample", "junk.sample"]
    run = RunDir(tmp_path / "run")
    m = run.read_manifest()
    assert m.kind is RunKind.IMPORTED and m.campaign and m.device_class == CLASS
    rows = SampleStore(run.path / "samples").read().to_pylist()
    assert len(rows) == 12 and len({r["sample_id"] for r in rows}) == 12
    first = next(r for r in rows if r["benchmark"] == "median3x3" and r["round"] == 1
                 and r["index"] == 0)
    assert first["runtime_ms"] == pytest.approx(1.1)  # RunGen's seconds, in ms
    assert first["beam_size"] == 32 and first["schedule_source"] == "// schedule 1/0\n"
    # pipelines told apart by features (the loop gave both id 0 and 1 by argument set)
    ids = {r["benchmark"]: r["pipeline_id"] for r in rows}
    assert len(set(ids.values())) == 2 and 0 not in ids.values()


def test_farm_import_report_export_and_promote(tmp_path, baseline):
    folder = _loop_folder(tmp_path / "samples")
    loop_weights = tmp_path / "loop.weights"
    trained = weights.perturbed(baseline, 5, 0.05)
    weights.write(trained, loop_weights)
    out = farm("import", folder, "--out", tmp_path / "run", "--class", CLASS, "--weights",
               loop_weights, check=0).stdout
    assert "imported 6 samples of 1 pipeline(s) in 2 batches" in out
    assert "median3x3 (6 rows)" in out and "farm models promote" in out
    report = farm("report", tmp_path / "run", "--out", tmp_path / "rep", check=0).stdout
    assert "samples of Halide's loop, imported: median3x3" in report
    farm("export", tmp_path / "run", "--out", tmp_path / "exp", check=0)
    assert len(list((tmp_path / "exp").rglob("*.sample"))) == 6
    # the round trip: exported as Halide's loop writes samples (seconds, its file names),
    # imported back without --benchmark, the same runtimes to the microsecond
    farm("import", tmp_path / "exp", "--out", tmp_path / "again", "--class", CLASS, check=0)
    before, after = ({(r["benchmark"], r["round"], r["index"]): r["runtime_ms"]
                      for r in SampleStore(tmp_path / d / "samples").read().to_pylist()}
                     for d in ("run", "again"))
    assert before.keys() == after.keys()
    for key, ms in before.items():
        assert after[key] == pytest.approx(ms, abs=1e-3), key
    exported = next((tmp_path / "exp").glob("median3x3_batch_0001_sample_0000.sample"))
    assert struct.unpack("<f", exported.read_bytes()[-12:-8])[0] == pytest.approx(
        before[("median3x3", 1, 0)])  # ms, as Halide's own files hold
    model = promote(tmp_path / "run", registry=Registry(tmp_path / "models"))
    assert model.record.sha256 == trained.sha256 and model.record.device_class == CLASS
    # refusals: one line each
    assert_user_error(farm("import", folder, "--out", tmp_path / "run", "--class", CLASS),
                      "exists and is not empty")
    assert_user_error(farm("import", tmp_path / "none", "--out", tmp_path / "r2", "--class",
                           CLASS), "is not a folder")
    assert_user_error(farm("import", tmp_path / "rep", "--out", tmp_path / "r3", "--class",
                           CLASS), "no Halide .sample file")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _tune(run, baseline, trainer, rounds=1, **settings):
    return autotune_on_doubles(run, TuneSettings(
        (catalog.resolve("median3x3"),), targets.resolve(None), baseline, rounds=rounds,
        batch_size=6, timing=TimingConfig(), retimes=3, **settings), infos=INFOS,
        trainer=trainer)


def test_also_train_on_an_import_trains_on_its_rows_and_refuses_another_class(
        local_ray, tmp_path, baseline, capsys):
    import_loop(_loop_folder(tmp_path / "samples"), tmp_path / "imported", CLASS)
    imported = {r["sample_id"] for r in
                SampleStore(tmp_path / "imported" / "samples").read().to_pylist()}
    trainer = ScriptedTrainer()
    run = tmp_path / "run"
    _tune(run, baseline, trainer, rounds=2,
          also_train_on=(str((tmp_path / "imported").resolve()),))
    assert trainer.tables and all(imported <= t for t in trainer.tables)  # every training
    said = capsys.readouterr().out  # before round 1: which runs, how many rows
    line = f"the model trains on the run's own rows and on 6 measured rows of 1 pipeline(s) " \
        f"of {(tmp_path / 'imported').resolve()}"
    assert line in said and said.index(line) < said.index("round 1/")
    assert RunDir(run).read_manifest().also_train_on == [str((tmp_path / "imported").resolve())]
    own = SampleStore(run / "samples").read().to_pylist()
    assert not imported & {r["sample_id"] for r in own}  # its rows stay in their run
    # a resume without the flag keeps training on them; with another run it is refused
    trainer = ScriptedTrainer()
    _tune(run, baseline, trainer, rounds=3)
    assert all(imported <= t for t in trainer.tables)
    with pytest.raises(RunDirError, match="resume it without --also-train-on"):
        _tune(run, baseline, ScriptedTrainer(), rounds=4, also_train_on=(str(tmp_path),))
    # another class's samples are refused before anything is written
    import_loop(_loop_folder(tmp_path / "s2"), tmp_path / "other-class", "android-sm8250")
    with pytest.raises(BadInput, match="timed on device class android-sm8250, not"):
        _tune(tmp_path / "run2", baseline, ScriptedTrainer(),
              also_train_on=(str(tmp_path / "other-class"),))
    assert not (tmp_path / "run2" / "samples").exists()
    # a damaged sample file of it is refused before anything is written, not after round 1
    other = tmp_path / "imported-copy"
    import_loop(_loop_folder(tmp_path / "s3"), other, CLASS)
    next((other / "samples").glob("*.parquet")).write_bytes(b"not parquet")
    with pytest.raises(DatasetError, match="is corrupt"):
        _tune(tmp_path / "run3", baseline, ScriptedTrainer(), also_train_on=(str(other),))
    assert not (tmp_path / "run3" / "samples").exists()


HALIDE_LOOP = Path(__file__).parent / "data" / "halide_loop" / "median3x3"
# what that batch of adams2019_autotune_loop.sh (halide 21, this repository's
# ../shared/upstream-loop, batch size 3) printed per sample, in ms
LOOP_PRINTED_MS = {0: 0.798735, 1: 1.01832, 2: 62.6495}


@pytest.mark.parametrize("with_bench_txt", [True, False])
def test_a_real_halide_loop_folder_imports_with_the_runtimes_the_loop_printed(
        tmp_path, with_bench_txt):
    """The .sample files of Halide's own loop hold ms (featurization_to_sample multiplies
    RunGen's sec/iter by 1000): read with or without RunGen's bench.txt beside them, each
    row's runtime is what the loop printed, in ms."""
    folder = tmp_path / "loop"
    shutil.copytree(HALIDE_LOOP, folder)
    if not with_bench_txt:
        for p in folder.rglob("bench.txt"):
            p.unlink()
    import_loop(folder, tmp_path / "run", CLASS)
    rows = SampleStore(tmp_path / "run" / "samples").read().to_pylist()
    assert {r["index"]: r["runtime_ms"] for r in rows} == pytest.approx(LOOP_PRINTED_MS,
                                                                       rel=1e-6)
    assert {r["benchmark"] for r in rows} == {"median3x3"}


def test_a_long_pipeline_name_imports_exports_and_trains(tmp_path, baseline):
    """A legal 225-character name broke export and every --also-train-on training for good
    (ENAMETOOLONG), after round 1 was committed."""
    from farm.model.retrain import SampleFiles

    name = "p" * 225
    import_loop(_loop_folder(tmp_path / "samples"), tmp_path / "run", CLASS, benchmark=name)
    farm("export", tmp_path / "run", "--out", tmp_path / "exp", check=0)
    assert len(list((tmp_path / "exp").glob("*.sample"))) == 6
    rows = SampleStore(tmp_path / "run" / "samples").read()
    names = SampleFiles(tmp_path / "train").sync(rows)
    assert len(set(names)) == 6 and all(len(n) < 255 for n in names)


def test_import_reads_only_files_a_loop_writes(tmp_path):
    """A FIFO as bench.txt hung it, a link to /dev/zero raised MemoryError, a 1.5 GB
    .sample was read whole."""
    import os

    folder = _loop_folder(tmp_path / "samples", batches=1, per_batch=3)
    first, second, third = sorted(folder.rglob("*.sample"))
    bench = first.parent / "bench.txt"
    bench.unlink()
    os.mkfifo(bench)
    second.unlink()
    second.symlink_to("/dev/zero")
    with open(third, "r+b") as f:
        f.truncate(1536 << 20)  # sparse: costs no disk
    done = []
    t = threading.Thread(target=lambda: done.append(import_loop(folder, tmp_path / "run",
                                                                CLASS)))
    t.start()
    t.join(60)
    assert done, "the import hung"
    summary = done[0]
    assert summary.rows == 1  # the first: its runtime from the .sample beside the FIFO
    reasons = " ".join(why for _, why in summary.skipped)
    assert "cannot be read" in reasons and "over" in reasons
