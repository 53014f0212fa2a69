"""Training with Halide's own trainer: its command line, the .sample cache, bounded logs."""

import os
import subprocess

import numpy as np
import pytest
from samples import probes, table

from farm.errors import WorkFailed
from farm.model import retrain, weights


@pytest.fixture(scope="module")
def rows():
    feats = probes()
    runtimes = np.random.default_rng(7).uniform(0.3, 3.0, len(feats))
    return table(feats, runtimes, [1 + i % 3 for i in range(len(feats))])


def test_trainer_gets_the_runs_parallelism_and_relative_names(rows, tmp_path, monkeypatch):
    calls = []
    real = subprocess.run

    def spy(argv, **kw):
        calls.append((argv, kw))
        return real(argv, **kw)

    monkeypatch.setattr(retrain.subprocess, "run", spy)
    files = retrain.SampleFiles(tmp_path / "a folder with spaces" / "cache")
    result = retrain.train(files, rows, weights.baseline(), steps=3, rate=1e-4,
                           num_cores=17, timeout_s=120)
    argv, kw = calls[0]
    assert "--num_cores=17" in argv and "--epochs=3" in argv and "--rates=0.0001" in argv
    assert kw["cwd"] == files.dir and kw["timeout"] == 120
    names = kw["input"].split()
    assert len(names) == rows.num_rows and all("/" not in n for n in names)
    assert result.weights is not None and result.weights.sha256 != weights.baseline().sha256
    assert result.samples == rows.num_rows and result.loss is not None


def test_sample_files_are_written_once_and_rebuilt_when_deleted(rows, tmp_path):
    files = retrain.SampleFiles(tmp_path / "cache")
    names = files.sync(rows)
    first = {n: (tmp_path / "cache" / n).stat().st_mtime_ns for n in names}
    assert files.sync(rows) == names
    assert {n: (tmp_path / "cache" / n).stat().st_mtime_ns for n in names} == first
    (tmp_path / "cache" / names[0]).unlink()
    retrain.SampleFiles(tmp_path / "cache").sync(rows)  # a new run of the driver
    assert (tmp_path / "cache" / names[0]).exists()
    assert not list((tmp_path / "cache").glob(".*"))  # no temporary files left


def test_a_trainer_that_hangs_is_killed(rows, tmp_path):
    with pytest.raises(WorkFailed, match="killed"):
        retrain.train(retrain.SampleFiles(tmp_path), rows, weights.baseline(), steps=100000,
                      rate=1e-4, num_cores=32, timeout_s=0.5)


def test_the_log_kept_is_bounded():
    text = "\n".join([f"Unique sample: s{i}.sample : 1.0" for i in range(5000)]
                     + [f"Loss: {i} Rate: 0.5" for i in range(500)])
    kept = retrain.bounded_log(text).splitlines()
    assert len(kept) == retrain.LOG_HEAD + retrain.LOG_TAIL + 1
    assert kept[-1] == "Loss: 499 Rate: 0.5" and not any("Unique" in k for k in kept)


def test_capped_keeps_the_fastest_and_a_bounded_number(rows):
    out = retrain.capped(rows, cap=20, seed=1)
    assert out.num_rows == 20
    fastest = sorted(rows["runtime_ms"].to_pylist())[:2]
    assert set(fastest) <= set(out["runtime_ms"].to_pylist())
    assert retrain.capped(rows, cap=1000).num_rows == rows.num_rows


def test_training_is_a_function_of_its_rows_steps_rate_and_seed(tmp_path):
    """Halide's trainer draws each step's window of a pipeline's schedules from an RNG
    seeded with time() when a pipeline has more than 1024: capped to its window, with a
    recorded seed, two trainings a second apart give the same weights byte for byte."""
    import time

    from farm.testing import fake_featurization

    n = 1024 + 200
    rng = np.random.default_rng(3)
    feats = [fake_featurization(i + 1, pipeline="p") for i in range(n)]
    rows = table(feats, rng.uniform(0.5, 5.0, n), [1] * n)
    shas = []
    for k in range(2):
        tick = int(time.time())
        while int(time.time()) == tick:  # the trainer's clock seed moves on
            time.sleep(0.05)
        files = retrain.SampleFiles(tmp_path / f"files{k}")
        result = retrain.train(files, retrain.capped(rows, seed=7), weights.baseline(),
                               steps=4, rate=1e-3, num_cores=32)
        shas.append(result.weights.sha256)
    assert shas[0] == shas[1]


def test_a_killed_trainings_folder_is_removed_by_the_next(tmp_path, monkeypatch):
    """After kill -9, /tmp/farm-train-* folders were left behind for good."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    left = tmp_path / f"{retrain.TRAIN_DIR_PREFIX}{dead.pid}-abc"
    left.mkdir()
    (left / "initial.weights").write_bytes(b"x")
    alive = tmp_path / f"{retrain.TRAIN_DIR_PREFIX}{os.getpid()}-def"
    alive.mkdir()
    retrain.sweep_dead_trainings()
    assert not left.exists() and alive.exists()
