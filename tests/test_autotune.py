"""`farm autotune` end to end: real Ray (embedded, local), real Halide, small batches."""

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from clitools import assert_user_error, farm, farm_here

from farm.candidate import DEFAULT_PARALLELISM, CandidateSpec
from farm.machine import targets
from farm.model import weights
from farm.pipelines import catalog
from farm.store.records import Manifest
from farm.store.rundir import RESUME_MAY_CHANGE, RunDir, now_iso, resume_may_change
from farm.store.samples import SampleStore
from farm.tuning.finalize import spec_from_row
from farm.tuning.settings import TuneSettings


def _rows(run):
    return SampleStore(run / "samples").read().to_pylist()


@pytest.mark.slow
def test_two_rounds_then_a_third(tmp_path):
    """24 rows, candidate models judged after round 2, then --rounds 3 adds 12."""
    run = tmp_path / "run"
    out = farm("autotune", "median3x3", "--rounds", "2", "--batch-size", "12", "--out", run,
               check=0).stdout
    rows = _rows(run)
    assert len(rows) == 24
    assert len({r["sample_id"] for r in rows}) == 24
    for rnd in (1, 2):
        ok = [r for r in rows if r["round"] == rnd and r["status"] == "ok"]
        assert len({r["schedule_key"] for r in ok}) >= 6
    # weights change only when accepted; after round 2, models trained on round 1 are judged
    record = json.loads((run / "rounds" / "round-000002.json").read_text())["acceptance"]
    assert record["held_out"] == "round 2" and record["candidates"][0]["name"] == "current"
    assert [c["accuracy"] is not None for c in record["candidates"]].count(True) >= 2
    assert record["reason"]
    typed = RunDir(run).read_round(2).acceptance  # the same record, read as the farm reads it
    assert typed.held_out == "round 2" and typed.candidates[0].name == "current"
    assert all(r["pipeline_id"] for r in rows if r["status"] == "ok")
    assert "farm run median3x3 --weights" in out and str(run / "weights") in out
    farm("autotune", "median3x3", "--rounds", "3", "--batch-size", "12", "--out", run, check=0)
    rows3 = _rows(run)
    assert len(rows3) == 36 and len({r["sample_id"] for r in rows3}) == 36
    assert {r["sample_id"] for r in rows} < {r["sample_id"] for r in rows3}


@pytest.mark.slow  # planning is covered by tests/test_plan.py, the loop by test_tuner.py
def test_one_round_records_every_candidate(tmp_path):
    run = tmp_path / "run"
    proc = farm("autotune", "dilate3x3", "--batch-size", "8", "--out", run, check=0)
    rows = sorted(_rows(run), key=lambda r: r["index"])
    assert [r["index"] for r in rows] == list(range(8))
    assert (rows[0]["beam_size"], rows[0]["random_dropout"]) == (32, 100)
    assert rows[0]["planner"] == "b32-d100@accepted"
    for r in rows[1:]:  # the planner column says how each probe was planned
        assert r["planner"].startswith(f"b{r['beam_size']}-d{r['random_dropout']}@")
    assert (rows[4]["beam_size"], rows[4]["random_dropout"]) == (4, 10)
    assert rows[3]["planner"].split("~")[0] == "b1-d1@start"
    assert len({r["seed"] for r in rows[1:]}) == 7
    assert len({r["schedule_id"] for r in rows}) == 8
    for r in rows:
        assert r["status"] in ("ok", "duplicate"), (r["status"], r["error"])
        if r["status"] == "ok":
            assert r["runtime_ms"] > 0 and len(r["runtimes_ms"]) >= 1
            assert r["runtime_ms"] == min(r["runtimes_ms"])
            assert r["featurization"] and r["schedule_source"] and r["device_id"]
            assert r["compile_s"] > 0 and r["codegen_s"] > 0 and r["link_s"] > 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["batch_size"] == 8 and manifest["generator"] == "dilate3x3"
    inv = manifest["invocations"][0]
    assert inv["versions"]["halide"].startswith("21.") and inv["devices"][0]["model"]
    assert (run / "weights" / "round-000001.weights").exists()
    best = json.loads((run / "best" / "runtime.json").read_text())
    assert best["runtime_ms"] > 0
    assert 5 <= len(best["retimes_ms"]) <= TuneSettings.retimes  # stops once decided
    for f in best["finalists"]:  # each with a verdict against the start weights' beam
        assert f["vs_start"] is None or f["vs_start"]["verdict"] in (
            "faster", "slower", "indistinguishable")
    handed = json.loads((run / "weights" / "best.json").read_text())
    assert handed["reason"] and (run / "weights" / "best.weights").exists()
    records = RunDir(run)  # the same records, read as `farm report` and `farm bench` do
    assert records.read_retiming().runtime_ms == best["runtime_ms"]
    assert records.read_best_weights_record().reason == handed["reason"]
    assert records.read_round(1).acceptance.held_out == "round 1"
    # every sample can be rebuilt with exactly the weights that planned it (start, accepted,
    # or perturbed for a redraw), as the final re-timing and `farm bench` rebuild them
    base = CandidateSpec(catalog.resolve("dilate3x3"), targets.resolve(None),
                         weights.baseline())
    for r in rows:
        if r["status"] == "ok" and r["index"] > 0:
            assert spec_from_row(r, base, RunDir(run)).weights.sha256 == r["weights_sha256"]
    assert weights.load(run / best["weights_file"]).sha256 in {r["weights_sha256"] for r in rows}\
        | {weights.load(p).sha256 for p in (run / "weights").glob("*.weights")}
    assert (run / "best" / "dilate3x3.schedule.h").exists()
    assert (run / "best" / "dilate3x3.a").stat().st_size > 0
    assert "distinct schedules measured" in proc.stdout
    # the run is complete: the same command again does no work and says how to go on
    again = farm("autotune", "dilate3x3", "--batch-size", "8", "--out", run, check=0)
    assert "raise --rounds" in again.stdout
    assert len(_rows(run)) == 8


TINY = (Path(__file__).parent / "data" / "pygen" / "brighten_generator.py").read_text()


def test_user_generator_and_duplicates_are_caught_before_codegen(tmp_path):
    gen = tmp_path / "tiny.py"
    gen.write_text(TINY)
    run = tmp_path / "run"
    farm("autotune", f"{gen}:brighten", "--batch-size", "10", "--parallelism", "4",
         "--out", run, check=0)
    rows = _rows(run)
    assert len(rows) == 10
    assert (run / "generator.py").read_text() == TINY
    redrawn = [r for r in rows if r["attempts"] > 1]
    assert redrawn, "a one-stage pipeline has few schedules; some draws must repeat"
    assert any("~noise" in r["planner"] for r in redrawn)  # third draws perturb the weights
    for r in rows:
        if r["status"] != "duplicate":
            continue
        assert r["runtime_ms"] is None and r["duplicate_of"] is not None  # never timed
        if r["index"] > 0:  # a probe is caught before codegen (beam search is built first)
            assert r["codegen_s"] is None
    measured = [r["schedule_key"] for r in rows if r["status"] == "ok"]
    assert len(measured) == len(set(measured))  # no schedule gets two ok rows


def test_resume_refuses_mixed_settings(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({
        "run_id": "abcd1234", "benchmark": "median3x3", "generator": "median3x3",
        "benchmark_sha256": "x", "target": "t", "schedule_target": "t", "batch_size": 8,
        "parallelism": 32, "start_weights_sha256": "w", "created_at": "then"}))
    assert_user_error(farm("autotune", "sobel", "--out", run, "--batch-size", "8"),
                      str(run), "generator")


def test_a_changed_setting_on_resume_is_refused_before_ray_starts(tmp_path, capsys, no_ray,
                                                                  baseline):
    """The run's manifest against the new settings, read before Ray starts; the refusal
    lists what may change, from the list the README quotes."""
    run = tmp_path / "run"
    run.mkdir()
    bench, host = catalog.resolve("median3x3"), targets.resolve("host")
    RunDir(run).write_manifest(Manifest(
        run_id="abcd1234", benchmark=bench.ref, generator=bench.label,
        benchmark_sha256=bench.sha256, target=host.compile, schedule_target=host.schedule,
        batch_size=8, parallelism=DEFAULT_PARALLELISM, start_weights_sha256=baseline.sha256,
        created_at=now_iso()))
    before = (run / "manifest.json").read_bytes()
    assert_user_error(farm_here(capsys, "autotune", "median3x3", "--out", run, "--batch-size",
                                "4"),
                      f"farm autotune: error: {run} holds a run with --batch-size 8, not 4; "
                      f"resume it with the same settings (only {resume_may_change()} may "
                      "change) or use a new --out")
    assert sorted(p.name for p in run.iterdir()) == ["manifest.json"]
    assert (run / "manifest.json").read_bytes() == before


def test_a_changed_source_on_resume_is_refused_naming_the_source(tmp_path, capsys, no_ray,
                                                                 baseline):
    """A generator edited since the run began (even by whitespace) makes other rows: the
    refusal says it is the source that changed, not a setting the user gave."""
    run = tmp_path / "run"
    run.mkdir()
    bench, host = catalog.resolve("median3x3"), targets.resolve("host")
    RunDir(run).write_manifest(Manifest(
        run_id="abcd1234", benchmark=bench.ref, generator=bench.label,
        benchmark_sha256="0" * 64, target=host.compile, schedule_target=host.schedule,
        batch_size=8, parallelism=DEFAULT_PARALLELISM, start_weights_sha256=baseline.sha256,
        created_at=now_iso()))
    assert_user_error(farm_here(capsys, "autotune", "median3x3", "--out", run, "--batch-size",
                                "8"),
                      f"{run} holds a run with generator source sha256 0000000000000000, not "
                      f"{bench.sha256[:16]} (the benchmark's or generator's source changed "
                      "since the run began: restore that source")


def test_the_readme_says_what_may_change_on_resume_as_the_refusal_does():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    text = " ".join(readme.replace("`", "").split())
    assert f"only {resume_may_change()} may change." in text
    assert "--train-steps" in RESUME_MAY_CHANGE and "--batch-size" not in RESUME_MAY_CHANGE


def test_sample_files_are_parquet_with_the_design_columns(tmp_path):
    from farm.store.samples import SCHEMA

    for column in ("sample_id", "round", "benchmark", "pipeline_id", "schedule_id", "seed",
                   "beam_size", "random_dropout", "parallelism", "target", "weights_sha256",
                   "device_id", "node_id", "host", "status", "error", "compile_s",
                   "runtime_ms", "runtimes_ms", "schedule_source", "featurization",
                   "created_at"):
        assert column in SCHEMA.names
    assert pq  # imported for readers of this test: the dataset is plain Parquet


@pytest.mark.slow
def test_a_campaign_of_two_pipelines_end_to_end(tmp_path):
    """Real Halide, real Ray: two built-ins, one model, best/NAME/ for each, a report with a
    line per pipeline."""
    run = tmp_path / "run"
    out = farm("autotune", "median3x3", "sobel", "--rounds", "1", "--batch-size", "6",
               "--out", run, check=0).stdout
    rows = _rows(run)
    assert sorted((r["benchmark"], r["index"]) for r in rows) == \
        [(b, i) for b in ("median3x3", "sobel") for i in range(6)]
    ids = {b: {r["pipeline_id"] for r in rows if r["benchmark"] == b and r["pipeline_id"]}
           for b in ("median3x3", "sobel")}
    assert len(ids["median3x3"]) == len(ids["sobel"]) == 1 and ids["median3x3"] != ids["sobel"]
    for name in ("median3x3", "sobel"):
        best = RunDir(run).read_retiming(name)
        assert best is not None and best.benchmark == name
        assert (run / "best" / name / f"{name}.schedule.h").is_file()
        assert f"best {name}: " in out
    assert (run / "weights" / "best.weights").is_file()
    report = farm("report", run, check=0).stdout
    assert "campaign of median3x3, sobel" in report and "per pipeline" in report
    assert (run / "report" / "sobel" / "best_so_far.png").is_file()


def test_a_campaign_is_not_mixed_into_a_run_of_one_benchmark(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_text(json.dumps({
        "run_id": "abcd1234", "benchmark": "median3x3", "generator": "median3x3",
        "benchmark_sha256": catalog.resolve("median3x3").sha256, "target": "t",
        "schedule_target": "t", "batch_size": 8, "parallelism": 32,
        "start_weights_sha256": "w", "created_at": "then"}))
    assert_user_error(farm("autotune", "median3x3", "sobel", "--out", run, "--batch-size",
                           "8"), str(run), "holds a single-pipeline run (farm autotune), "
                      "not a campaign")


def test_suites_expand_to_their_pipelines_once_each():
    six = list(catalog.suite("all"))
    assert len(six) == 6 and catalog.expand(["all", "sobel"]) == six
    assert catalog.expand(["sobel", "all"])[0] == "sobel"
    for family, names in catalog.suites().items():
        if family not in ("all", "corpus"):
            assert set(names) <= set(catalog.suite("corpus"))
    assert catalog.suite("nosuch") is None


@pytest.mark.slow
def test_screening_builds_the_schedules_the_model_picked(tmp_path):
    """--screen 3 with real Halide: the built probes are the draws the model picked, and
    each one's row holds the very schedule that was screened (its prediction by the same
    weights matches the one it was picked by)."""
    run = tmp_path / "run"
    out = farm("autotune", "gaussian5x5", "--batch-size", "8", "--screen", "3", "--out", run,
               check=0).stdout
    assert "screening: autoscheduled 12 draws (3 per screened probe)" in out
    record = RunDir(run).read_round(1).screening
    assert record.drawn == 12 and record.kept == 4
    kept = {c.seed: c for c in record.candidates if c.kept}
    probes = [r for r in _rows(run) if r["planner"].startswith("b1-d1@accepted")]
    assert len(probes) == 4
    built = [r for r in probes if r["status"] == "ok" and r["seed"] in kept]
    assert built  # (a pick repeating another candidate of its round is redrawn)
    for row in built:
        assert row["predicted"] == pytest.approx(kept[row["seed"]].predicted, rel=1e-4)
    assert any(not c.kept and c.predicted is not None for c in record.candidates)
