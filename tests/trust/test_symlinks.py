"""No write inside a run directory follows a symlink planted there."""

import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from crafted import campaign

from farm import cli
from farm.atomic import writable_dir
from farm.errors import BadInput, MissingPrerequisite, RunDirError
from farm.machine.cache import build_once, cache_dir
from farm.model.retrain import file_name
from farm.pipelines import catalog
from farm.pipelines.benchmark import write_files
from farm.report.comparison import write_results
from farm.report.output import pyplot, save_figure
from farm.store.records import PipelineRecord, RetimingRecord
from farm.store.rundir import RunDir, class_dir
from farm.store.samples import SampleStore

V1_RUN = Path(__file__).parents[1] / "data" / "v1-run"


def _victim(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    return victim


def test_the_write_probe_of_a_folder_does_not_write_through_a_planted_link(tmp_path):
    victim = _victim(tmp_path)
    out = tmp_path / "report"
    out.mkdir()
    (out / ".farm-write-test").symlink_to(victim)
    assert writable_dir(str(out)) == out
    assert victim.read_text() == "precious"


def test_a_plot_replaces_a_planted_link_instead_of_writing_through_it(tmp_path):
    victim = _victim(tmp_path)
    plot = tmp_path / "best.png"
    plot.symlink_to(victim)
    fig = pyplot().figure()
    fig.gca().plot([1, 2], [3, 4])
    save_figure(fig, plot)
    assert victim.read_text() == "precious"
    assert not plot.is_symlink() and plot.read_bytes()[:4] == b"\x89PNG"


# --- a benchmark's files, the sample files --------------------------------------------

def test_a_benchmarks_files_replace_links_planted_in_their_folder(tmp_path):
    """A run's generators/NAME/ is written again on every resume: a link planted there is
    replaced, and a subfolder that is a link refused."""
    victim = _victim(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = tmp_path / "run" / "generators" / "gen"
    folder.mkdir(parents=True)
    (folder / "gen_generator.cpp").symlink_to(victim)
    write_files(folder, (("gen_generator.cpp", b"// source"),), "gen")
    assert victim.read_text() == "precious"
    assert not (folder / "gen_generator.cpp").is_symlink()
    assert (folder / "gen_generator.cpp").read_bytes() == b"// source"
    (folder / "include").symlink_to(elsewhere)
    with pytest.raises(BadInput, match="is a symbolic link"):
        write_files(folder, (("include/gen.h", b"// header"),), "gen")
    assert list(elsewhere.iterdir()) == []


def test_the_sample_files_replace_a_link_planted_at_their_temporary_name(tmp_path):
    victim = _victim(tmp_path)
    run = tmp_path / "run"
    table = SampleStore(V1_RUN / "samples").read()
    folder = run / "cache" / "samples"
    folder.mkdir(parents=True)
    for sample in table["sample_id"].to_pylist():  # the fixed names it used to write to
        (folder / f".{file_name(sample)}.tmp").symlink_to(victim)
    names = RunDir(run).sample_files.sync(table)
    assert victim.read_text() == "precious"
    assert all((folder / n).is_file() and not (folder / n).is_symlink() for n in names)


# --- the cache ------------------------------------------------------------------------

@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("FARM_CACHE_DIR", str(root))
    return root


def test_a_cache_lock_planted_as_a_link_is_refused_not_truncated(tmp_path, cache):
    victim = _victim(tmp_path)
    folder = cache_dir("generators", "abc")
    (folder / "generator.lock").symlink_to(victim)
    with pytest.raises(MissingPrerequisite, match="is a symbolic link"):
        build_once(folder / "generator", lambda tmp: tmp.write_bytes(b"built"))
    assert victim.read_text() == "precious"


def test_a_cache_subfolder_planted_as_a_link_is_refused(tmp_path, cache):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    cache.mkdir()
    (cache / "generators").symlink_to(elsewhere)
    with pytest.raises(MissingPrerequisite, match="is a symbolic link"):
        cache_dir("generators", "abc")
    assert list(elsewhere.iterdir()) == []


def test_what_the_cache_builds_replaces_a_link_planted_at_its_temporary_name(tmp_path,
                                                                             cache):
    victim = _victim(tmp_path)
    folder = cache_dir("toolchain", "abc")
    (folder / f".tmp{os.getpid()}-harness.o").symlink_to(victim)  # the name it used to use

    def make(tmp: Path) -> None:
        tmp.write_bytes(b"object")

    built = build_once(folder / "harness.o", make)
    assert victim.read_text() == "precious"
    assert built.read_bytes() == b"object"


# --- farm report's folder -------------------------------------------------------------

def test_the_reports_folder_of_the_run_planted_as_a_link_is_refused(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "run"
    shutil.copytree(V1_RUN, run)
    (run / "report").symlink_to(elsewhere)
    assert cli.main(["report", str(run)]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


# --- the run directory: its lock, its folders, best/ ----------------------------------

def test_a_lock_planted_as_a_link_is_refused_not_truncated(tmp_path):
    victim = _victim(tmp_path)
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").symlink_to(victim)
    with pytest.raises(RunDirError, match=r"\.lock is a symbolic link") as refused:
        RunDir(run).open()
    assert "\n" not in str(refused.value)
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("sub", ["weights", "samples", "rounds", "training"])
def test_a_folder_of_the_run_planted_as_a_link_is_refused(tmp_path, sub):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / sub).symlink_to(elsewhere)
    with pytest.raises(BadInput, match="is a symbolic link"):
        RunDir(run).open()
    assert list(elsewhere.iterdir()) == []


def test_best_planted_as_a_link_takes_no_pipeline_out_of_the_run(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    (run.path / "best").symlink_to(elsewhere)
    staged = run.best.staging("median3x3")
    (staged / "median3x3.schedule.h").write_text("// schedule")
    with pytest.raises(BadInput, match="is a symbolic link"):
        run.best.publish(staged, RetimingRecord(benchmark="median3x3", runtime_ms=1.0,
                                                finalist="x"), "median3x3")
    assert list(elsewhere.iterdir()) == []


def test_a_cache_folder_of_the_run_planted_as_a_link_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "cache").symlink_to(elsewhere)
    with pytest.raises(BadInput, match="is a symbolic link"):
        RunDir(run).sample_files.sync(SampleStore(V1_RUN / "samples").read())
    assert list(elsewhere.iterdir()) == []


# --- a class's folder, evaluate's folder and its results ------------------------------

def test_a_class_folder_planted_as_a_link_is_refused_by_every_reader(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(V1_RUN, elsewhere)
    run = tmp_path / "run"
    (run / "classes").mkdir(parents=True)
    (run / "classes" / "A").symlink_to(elsewhere)
    before = sorted(p.name for p in elsewhere.iterdir())
    assert cli.main(["report", str(run)]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    with pytest.raises(RunDirError, match="is a symbolic link"):
        class_dir(run, "A")
    assert sorted(p.name for p in elsewhere.iterdir()) == before


def test_evaluates_folder_planted_as_a_link_is_refused(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = campaign(tmp_path / "run", [PipelineRecord(n, n, catalog.resolve(n).sha256)
                                      for n in ("median3x3", "sobel")])
    (run.path / "evaluate").symlink_to(elsewhere)
    assert cli.main(["evaluate", str(run.path)]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []


def test_results_replace_a_link_planted_at_their_parquet_file(tmp_path):
    victim = _victim(tmp_path)
    out = tmp_path / "bench.parquet"
    out.symlink_to(victim)
    schema = pa.schema([("x", pa.int64())])
    write_results([{"x": 1}], schema, out, tmp_path / "bench.png", lambda rows, png: png)
    assert victim.read_text() == "precious"
    assert not out.is_symlink() and pq.read_table(out)["x"].to_pylist() == [1]
