"""A run directory is data: no generator it names runs unless the user names it again, and
then only when its files hash to what the run recorded, checked before any of its code runs.

Each test plants a generator that writes a marker file the moment it is imported, and names
it from a crafted run directory: in another folder (someone else's file on a shared file
system) or as the run's own copy (generators/NAME.py, with the manifest's sha256 made to
match: whoever writes one can write the other)."""

from __future__ import annotations

import pytest
from clitools import assert_user_error, farm_here
from crafted import (
    StopBeforeWork,
    StopSession,
    add_best,
    campaign,
    plant,
    user_generator,
    v1_run,
)

from farm import api
from farm.errors import BadInput, BenchmarkError, RunDirError
from farm.machine import targets
from farm.model import weights
from farm.pipelines import catalog, cpp_generators
from farm.report.text import build_report
from farm.store.records import PipelineRecord
from farm.testing import ScriptedTrainer, SyntheticBuilder
from farm.tuning import loop
from farm.tuning.settings import TuneSettings
from farm.workflows import bench, evaluate, evaluation

WHERE = ("elsewhere", "in the run")


@pytest.fixture
def marker(tmp_path):
    found = tmp_path / "marker"
    yield found
    assert not found.exists(), "the planted generator ran"


@pytest.fixture(autouse=True)
def no_devices(monkeypatch):
    """A command that got past every refusal stops where it would open devices."""
    monkeypatch.setattr(bench, "DeviceSession", StopSession)
    monkeypatch.setattr(evaluate, "DeviceSession", StopSession)


def _planted(tmp_path, marker, where: str, run_path):
    folder = tmp_path / "someone-else" if where == "elsewhere" else run_path / "generators"
    return plant(folder, marker)


@pytest.mark.parametrize("where", WHERE)
def test_bench_run_does_not_run_the_generator_its_manifest_names(tmp_path, capsys, marker,
                                                                  where):
    path, sha = _planted(tmp_path, marker, where, tmp_path / "run")
    run = v1_run(tmp_path / "run", benchmark=f"{path}:planted", generator="planted",
                 benchmark_sha256=sha)
    assert_user_error(farm_here(capsys, "bench", "--run", run.path),
                      f"{run.manifest_path} names the generator {path}",
                      "runs no code a run directory names",
                      f"farm bench {path}:planted --run {run.path}")


@pytest.mark.parametrize("where", WHERE)
def test_evaluate_does_not_run_a_generator_the_campaign_names(tmp_path, capsys, marker,
                                                              where):
    path, sha = _planted(tmp_path, marker, where, tmp_path / "run")
    run = campaign(tmp_path / "run", [
        PipelineRecord("median3x3", "median3x3", catalog.resolve("median3x3").sha256),
        PipelineRecord("planted", f"{path}:planted", sha)])
    assert_user_error(farm_here(capsys, "evaluate", run.path),
                      f"{run.manifest_path} names the generator {path}",
                      f"--generator {path} (for planted)")
    assert not (run.path / "evaluate").exists()


def test_a_cpp_generator_a_campaign_names_is_not_built(tmp_path, capsys, monkeypatch):
    """Building a C++ generator runs the compiler on its files and then the generator."""
    built = []
    monkeypatch.setattr(cpp_generators, "executable", lambda b: built.append(b) or pytest.fail(
        "the C++ generator was built"))
    folder = tmp_path / "someone-else" / "evil"
    folder.mkdir(parents=True)
    (folder / "evil_generator.cpp").write_text("// runs as its user once built\n")
    run = campaign(tmp_path / "run", [
        PipelineRecord("median3x3", "median3x3", catalog.resolve("median3x3").sha256),
        PipelineRecord("evil", f"{folder}:evil", "")])
    assert_user_error(farm_here(capsys, "evaluate", run.path),
                      f"names the generator {folder}")
    assert not built


def test_a_named_generator_whose_files_changed_is_refused_before_it_runs(tmp_path, capsys,
                                                                         marker):
    """The user names the path, but the file there is not the one the run tuned (edited
    since, or the record was): refused with the two sha256s, before the file runs."""
    path, _ = plant(tmp_path / "mine", marker)
    run = campaign(tmp_path / "run", [
        PipelineRecord("median3x3", "median3x3", catalog.resolve("median3x3").sha256),
        PipelineRecord("planted", f"{path}:planted", "0" * 64)])
    assert_user_error(farm_here(capsys, "evaluate", run.path, "--generator", path),
                      f"planted's generator {path} changed since the run tuned it",
                      "sha256 000000000000 then")
    single = v1_run(tmp_path / "single", benchmark=f"{path}:planted", generator="planted",
                    benchmark_sha256="0" * 64)
    assert_user_error(farm_here(capsys, "bench", f"{path}:planted", "--run", single.path),
                      f"{path} changed since the run tuned it")
    with pytest.raises(catalog.SourceChanged):
        catalog.resolve(f"{path}:planted", "0" * 64)


def test_a_generator_the_user_names_with_the_sha256_the_run_recorded_is_used(tmp_path):
    path, sha = user_generator(tmp_path / "mine")
    run = campaign(tmp_path / "run", [
        PipelineRecord("median3x3", "median3x3", catalog.resolve("median3x3").sha256),
        PipelineRecord("brighten", f"{path}:brighten", sha)])
    with pytest.raises(RunDirError, match="names the generator"):
        evaluation.prepare(run.path)
    plan = evaluation.prepare(run.path, named=[str(path)])
    assert plan.benches["brighten"].path == str(path) and plan.benches["brighten"].sha256 == sha
    # the same file by another spelling of its path is the same generator
    relative = tmp_path / "mine" / ".." / "mine" / "brighten.py"
    assert evaluation.prepare(run.path, named=[f"{relative}:brighten"]).benches["brighten"]
    with pytest.raises(BadInput, match="--generator median3x3 is not the generator of a "
                       "pipeline of the run"):
        evaluation.prepare(run.path, named=["median3x3"])


def test_a_named_generator_is_read_from_the_path_the_user_gave(tmp_path, marker, monkeypatch):
    """The run names a link to the user's file; once the two are found the same file, the
    link's writer points it at the planted one (whose sha256 the run recorded): the farm
    reads the user's path, never the link."""
    mine, _ = user_generator(tmp_path / "mine")
    planted, sha = plant(tmp_path / "someone-else" / "code", marker)
    link = tmp_path / "someone-else" / "links" / "link.py"
    link.parent.mkdir()
    link.symlink_to(mine)
    real = catalog.names_path

    def then_swap(arg, path):
        same = real(arg, path)
        link.unlink()
        link.symlink_to(planted)
        return same

    monkeypatch.setattr(catalog, "names_path", then_swap)
    with pytest.raises(catalog.SourceChanged):  # the user's file, not what the run tuned
        catalog.recorded(f"{link}:planted", sha, [str(mine)], "manifest.json", "again")


def test_bench_runs_a_named_generator_that_is_the_runs(tmp_path):
    path, sha = user_generator(tmp_path / "mine")
    run = v1_run(tmp_path / "run", benchmark=f"{path}:brighten", generator="brighten",
                 benchmark_sha256=sha)
    loaded = bench.TunedRun.load(run.path)
    assert loaded.benchmark_for(f"{path}:brighten").sha256 == sha
    assert loaded.benchmark_for("median3x3").name == "median3x3"  # any other: the user's
    with pytest.raises(RunDirError, match="names the generator"):
        loaded.benchmark_for(None)


def test_bench_run_of_a_campaign_asks_for_the_benchmarks(tmp_path, capsys, marker):
    path, sha = plant(tmp_path / "someone-else", marker)
    run = campaign(tmp_path / "run", [PipelineRecord("planted", f"{path}:planted", sha)])
    assert_user_error(farm_here(capsys, "bench", "--run", run.path),
                      f"--run {run.path} is a campaign: name the benchmarks")


def test_a_builtin_a_run_names_is_benched(tmp_path):
    run = v1_run(tmp_path / "run")  # dilate3x3
    add_best(run)
    assert bench.TunedRun.load(run.path).benchmark_for(None).name == "dilate3x3"
    with pytest.raises(StopBeforeWork):
        bench.run_bench([], None, None, str(run.path), None)
    with pytest.raises(BenchmarkError, match="changed since the run tuned it"):
        catalog.recorded("dilate3x3", "0" * 64, (), "m", "again")


@pytest.mark.parametrize("where", WHERE)
def test_resume_runs_only_the_benchmarks_named_on_its_command_line(tmp_path, marker, where):
    """`farm autotune BENCH... --out RUN` resumes with the user's BENCHes: the pipelines the
    manifest lists and the user leaves out are never resolved."""
    path, sha = _planted(tmp_path, marker, where, tmp_path / "run")
    run = campaign(tmp_path / "run", [
        PipelineRecord("median3x3", "median3x3", catalog.resolve("median3x3").sha256),
        PipelineRecord("planted", f"{path}:planted", sha)])
    settings = TuneSettings(benchmarks=(catalog.resolve("median3x3"),),
                                  target=targets.resolve(None),
                                  start_weights=weights.baseline(), batch_size=8)
    with pytest.raises(StopBeforeWork):  # every check passed, and nothing ran
        loop.autotune(run.path, settings, cluster=StopSession(), builder=SyntheticBuilder(),
                      trainer=ScriptedTrainer())


def test_reading_a_run_runs_none_of_its_generators(tmp_path, capsys, marker):
    """report, export and the API read what a run names; they never load it."""
    path, sha = plant(tmp_path / "someone-else", marker)
    run = v1_run(tmp_path / "run", benchmark=f"{path}:planted", generator="planted",
                 benchmark_sha256=sha)
    add_best(run)
    assert build_report(run.path).manifest.benchmark == f"{path}:planted"
    assert farm_here(capsys, "export", run.path, "--out", tmp_path / "out").returncode == 0
    opened = api.open_run(run.path)
    assert opened.best() is not None and len(opened.rounds()) == 1
