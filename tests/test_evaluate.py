"""`farm evaluate`: a campaign's model, pooled and leave-one-out, against the start weights.

Fast tests cover the parts that need no device: the groups, the training tables (a held-out
group's rows never reach its leave-one-out model), the one-line errors, sharing builds and
timings between identical weights or schedules, the summary. One slow test runs the command
on a small campaign with the real Halide trainer, compiler and an embedded local Ray."""

from dataclasses import replace
from datetime import UTC, datetime

import pyarrow.parquet as pq
import pytest
from clitools import assert_user_error, farm, farm_here

from farm.candidate import OK, BuildResult, Schedule
from farm.devices.base import DeviceInfo
from farm.errors import BadInput, MissingPrerequisite, RunDirError
from farm.machine import targets
from farm.model import featurization, retrain, weights
from farm.model.retrain import TrainResult
from farm.pipelines import catalog
from farm.stats import verdict
from farm.store.records import Manifest, PipelineRecord
from farm.store.rundir import RunDir, now_iso
from farm.testing import fake_featurization
from farm.workflows import evaluate, evaluation

THREE = ("median3x3", "conv3x3a16", "conv3x3a32")


def _feats(bench: str, count: int) -> list[bytes]:
    """Distinct synthetic featurizations, a pipeline of its own per benchmark."""
    base = 1000 * (1 + THREE.index(bench)) if bench in THREE else 9000
    return [fake_featurization(base + i, stages=2 + (base // 1000) % 3) for i in range(count)]


def _campaign(path, feats: dict, *, device_class=None, pipelines=None, parallelism=32):
    """A campaign run directory: manifest, start weights, one committed round of rows."""
    host = targets.resolve(None)
    start = weights.baseline()
    records = pipelines if pipelines is not None else [
        PipelineRecord(n, n, catalog.resolve(n).sha256) for n in feats]
    run = RunDir(path)
    path.mkdir(parents=True, exist_ok=True)
    run.write_manifest(Manifest(
        run_id="evaltest", benchmark="campaign", generator="campaign", benchmark_sha256="",
        target=host.compile, schedule_target=host.schedule, batch_size=8,
        parallelism=parallelism, start_weights_sha256=start.sha256, created_at=now_iso(),
        device_class=device_class, campaign=True, pipelines=records))
    run.weights_path(0).parent.mkdir()
    weights.write(start, run.weights_path(0))
    rows = []
    for bench, fs in feats.items():
        for i, f in enumerate(fs):
            ms = 1.0 + 0.37 * ((i * 7919 + len(bench)) % 11)
            rows.append({
                "sample_id": f"evaltest-{bench}-r000001-c{i:04d}", "run_id": "evaltest",
                "round": 1, "index": i, "benchmark": bench,
                "pipeline_id": featurization.pipeline_id(f), "schedule_id": i + 1,
                "status": "ok", "runtime_ms": ms, "runtimes_ms": [ms],
                "schedule_key": featurization.schedule_key(f), "featurization": f,
                "target": host.compile, "created_at": datetime.now(UTC)})
        rows.append({"sample_id": f"evaltest-{bench}-r000001-failed", "run_id": "evaltest",
                     "round": 1, "index": 99, "benchmark": bench, "status": "compile_error",
                     "created_at": datetime.now(UTC)})
    run.samples.commit_round(1, rows)
    return run


@pytest.fixture
def three(tmp_path):
    return _campaign(tmp_path / "run", {b: _feats(b, 10) for b in THREE})


class RecordingTrainer:
    """Trains nothing: records the benchmarks of each table it is handed, and returns the
    initial weights perturbed by the table's size."""

    def __init__(self):
        self.tables = []

    def train(self, files, table, initial, *, steps, rate, num_cores, log_path=None):
        self.tables.append((sorted(set(table["benchmark"].to_pylist())), table.num_rows, steps,
                            rate))
        return TrainResult(weights.perturbed(initial, table.num_rows, 0.01), loss=0.5,
                           samples=table.num_rows)


# groups ---------------------------------------------------------------------------------

def test_twins_are_left_out_together_by_default():
    groups = evaluation.make_groups(["median3x3", "conv3x3a16", "sobel", "conv3x3a32"])
    assert [g.members for g in groups] == [("median3x3",), ("conv3x3a16", "conv3x3a32"),
                                           ("sobel",)]
    assert groups[1].name == "conv3x3a16+conv3x3a32"
    assert groups[1].model == "loo-conv3x3a16+conv3x3a32"
    # one twin alone in the run is a group of one
    assert [g.members for g in evaluation.make_groups(["conv3x3a32", "sobel"])] == [
        ("conv3x3a32",), ("sobel",)]
    assert ("conv3x3a16", "conv3x3a32") in catalog.TWINS


def test_together_replaces_the_default_groups():
    names = ["median3x3", "conv3x3a16", "sobel", "conv3x3a32"]
    groups = evaluation.make_groups(names, ["sobel, median3x3"])
    assert [g.members for g in groups] == [("median3x3", "sobel"), ("conv3x3a16",),
                                           ("conv3x3a32",)]
    groups = evaluation.make_groups(names, ["conv3x3a32,conv3x3a16", "median3x3,sobel"])
    assert [g.members for g in groups] == [("median3x3", "sobel"), ("conv3x3a16", "conv3x3a32")]


@pytest.mark.parametrize(("together", "words"), [
    (["median3x3,nosuch"], ["nosuch is not a pipeline of the run", "median3x3, conv3x3a16"]),
    (["median3x3"], ["names one pipeline", "comma-separated"]),
    (["median3x3,conv3x3a16", "conv3x3a16,conv3x3a32"], ["conv3x3a16 is in two", "one group"]),
])
def test_bad_together_is_a_one_line_error(together, words):
    with pytest.raises(BadInput) as e:
        evaluation.make_groups(list(THREE), together)
    assert len(str(e.value).splitlines()) == 1
    for w in words:
        assert w in str(e.value)


def test_an_old_single_benchmark_manifest_is_one_pipeline():
    m = Manifest(run_id="x", benchmark="median3x3", generator="median3x3",
                 benchmark_sha256="abc", target="host", schedule_target="host", batch_size=8,
                 parallelism=32, start_weights_sha256="", created_at="")
    assert m.all_pipelines() == [PipelineRecord("median3x3", "median3x3", "abc")]


# training -------------------------------------------------------------------------------

def test_leave_one_out_tables_exclude_the_held_out_group(three, tmp_path):
    plan = evaluation.prepare(three.path)
    assert [g.name for g in plan.groups] == ["median3x3", "conv3x3a16+conv3x3a32"]
    trainer = RecordingTrainer()
    models = evaluate.train_models(plan, tmp_path / "out", trainer, progress=lambda _: None)
    assert set(models) == {"pooled", "loo-median3x3", "loo-conv3x3a16+conv3x3a32"}
    # failed rows never reach a trainer; every model has the same recipe
    assert trainer.tables == [
        (sorted(THREE), 30, evaluation.TRAIN_STEPS, evaluation.TRAIN_RATE),
        (["conv3x3a16", "conv3x3a32"], 20, evaluation.TRAIN_STEPS, evaluation.TRAIN_RATE),
        (["median3x3"], 10, evaluation.TRAIN_STEPS, evaluation.TRAIN_RATE)]
    loo = models["loo-conv3x3a16+conv3x3a32"]
    assert loo.held_out == ("conv3x3a16", "conv3x3a32") and loo.held_out_rows == 0
    assert loo.trained_on == 10 and loo.by_pipeline == {"median3x3": 10}
    assert models["pooled"].by_pipeline == {b: 10 for b in THREE}
    for m in models.values():  # the weights and a log beside them, in OUT/weights/
        assert weights.load(m.path).sha256 == m.weights.sha256
        assert m.path.parent == tmp_path / "out" / "weights"
    assert "0 of conv3x3a16+conv3x3a32" in loo.describe()
    # both twins are timed with the one model that saw neither
    for name in ("conv3x3a16", "conv3x3a32"):
        v = {x.label: x for x in evaluate.variants_for(plan, name, models)}
        assert v["leave-one-out"].model == "loo-conv3x3a16+conv3x3a32"
        assert v["leave-one-out"].group_rows == 0 and v["pooled"].group_rows == 20


def test_a_leak_into_a_leave_one_out_table_stops_the_evaluation(three, tmp_path, monkeypatch):
    plan = evaluation.prepare(three.path)
    monkeypatch.setattr(evaluate, "training_rows",
                        lambda table, names, held_out=(): retrain.usable(table))
    with pytest.raises(AssertionError, match="10 rows of the held-out median3x3"):
        evaluate.train_one(plan, "loo-median3x3", ("median3x3",), tmp_path, RecordingTrainer())


def test_training_rows_and_counts(three):
    table = three.samples.read(evaluation.COLUMNS)
    rows = evaluation.training_rows(table, list(THREE), ("median3x3",))
    assert evaluation.rows_of(rows, ["median3x3"]) == 0
    assert evaluation.rows_of(rows, ["conv3x3a16", "conv3x3a32"]) == 20
    assert evaluation.distinct_by_pipeline(table) == {b: 10 for b in THREE}


def test_the_recipe_is_finalize_final_fresh_long_and_the_cli_says_its_defaults():
    from farm.commands import evaluate as command
    from farm.tuning import final_models
    from farm.workflows import bench

    fresh = next(s for s in final_models.FINAL_SETTINGS if s.name == "final-fresh-long")
    assert fresh.start_from == "start"
    assert (fresh.steps, fresh.rate) == (evaluation.TRAIN_STEPS, evaluation.TRAIN_RATE)
    assert command.DEFAULT_TRAIN_STEPS == evaluation.TRAIN_STEPS
    assert command.DEFAULT_RETIMES == bench.DEFAULT_RETIMES


# refused before any work ----------------------------------------------------------------

def test_a_run_of_one_pipeline_is_refused(tmp_path, capsys):
    run = _campaign(tmp_path / "one", {"median3x3": _feats("median3x3", 10)})
    assert_user_error(farm_here(capsys, "evaluate", run.path), "tunes one pipeline",
                      "median3x3", "at least two", f"farm evaluate {run.path} --on BENCH")
    assert not (run.path / "evaluate").exists()


def test_user_errors_are_one_line(three, tmp_path, capsys):
    assert_user_error(farm_here(capsys, "evaluate", tmp_path / "nosuch"), "does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(farm_here(capsys, "evaluate", empty), "no manifest.json")
    assert not (empty / "evaluate").exists()  # no --out made in what is not a run
    run = three.path
    assert_user_error(farm_here(capsys, "evaluate", run, "--together", "median3x3,bogus"),
                      "--together", "bogus is not a pipeline")
    assert_user_error(farm_here(capsys, "evaluate", run, "--together",
                                "median3x3,conv3x3a16,conv3x3a32"), "form one group")
    assert_user_error(farm_here(capsys, "evaluate", run, "--weights-for", "sobel=x.weights"),
                      "--weights-for", "'sobel' is not a pipeline of the run")
    assert_user_error(farm_here(capsys, "evaluate", run, "--weights-for", "median3x3"),
                      "BENCH=PATH")
    assert_user_error(farm_here(capsys, "evaluate", run, "--weights-for",
                                f"median3x3={tmp_path / 'none.weights'}"), "does not exist")
    own = tmp_path / "own.weights"
    weights.write(weights.baseline(), own)
    assert_user_error(farm_here(capsys, "evaluate", run, "--weights-for", f"median3x3={own}",
                                "--weights-for", f"median3x3={own}"), "median3x3 twice")
    assert_user_error(farm_here(capsys, "evaluate", run, "--train-steps", "0"),
                      "--train-steps")
    assert not (run / "evaluate").exists()


def test_out_and_devices_are_refused_before_ray_starts(three, tmp_path, capsys, no_ray,
                                                       monkeypatch):
    """--out a file or a run directory, a device this machine does not have: refused with
    no model trained and Ray never started."""
    monkeypatch.setattr(evaluate, "train_models", lambda *a, **k: pytest.fail("trained"))
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert_user_error(farm_here(capsys, "evaluate", three.path, "--out", notes),
                      f"--out {notes} names a file, not a folder")
    assert_user_error(farm_here(capsys, "evaluate", three.path, "--out", three.path),
                      f"--out {three.path} is a `farm autotune` run directory")
    assert_user_error(farm_here(capsys, "evaluate", three.path, "--device", "phone7@nowhere"),
                      "unknown device 'phone7@nowhere'")


def test_a_changed_generator_is_refused(tmp_path, capsys):
    records = [PipelineRecord("median3x3", "median3x3", "0" * 64),
               PipelineRecord("sobel", "sobel", catalog.resolve("sobel").sha256)]
    run = _campaign(tmp_path / "run", {"median3x3": _feats("median3x3", 10),
                                       "sobel": _feats("sobel", 10)}, pipelines=records)
    assert_user_error(farm_here(capsys, "evaluate", run.path), "median3x3's generator",
                      "changed since the run")


def test_too_few_schedules_to_train_is_refused(tmp_path):
    run = _campaign(tmp_path / "run", {"median3x3": _feats("median3x3", 3),
                                       "sobel": _feats("sobel", 3)})
    with pytest.raises(BadInput, match="6 distinct schedules measured"):
        evaluation.prepare(run.path)
    run = _campaign(tmp_path / "run2", {"median3x3": _feats("median3x3", 3),
                                        "sobel": _feats("sobel", 9)})
    plan = evaluation.prepare(run.path)  # trains, but says which pipeline no model learns from
    assert len(plan.warnings) == 1 and "median3x3 has 3 distinct" in plan.warnings[0]


def test_weights_for_by_name_or_ref(three, tmp_path):
    own = tmp_path / "own.weights"
    weights.write(weights.perturbed(weights.baseline(), 1, 0.01), own)
    plan = evaluation.prepare(three.path, weights_for=[f"conv3x3a16={own}"])
    assert set(plan.extra) == {"conv3x3a16"}
    assert plan.extra["conv3x3a16"][1] == str(own)


def _device(id, model, kind="host", problem=""):
    return DeviceInfo(id, kind, "n", model=model, problem=problem,
                      target=targets.resolve(None).compile)


def test_only_devices_of_the_runs_class_time():
    host = targets.resolve(None)
    a, b, broken = _device("a@n", "CPU A"), _device("b@n", "CPU B"), \
        _device("c@n", "CPU A", problem="broken")
    cls = str(a.device_class)
    assert evaluation.class_devices([a, b, broken], None, cls, host) == [a]
    assert evaluation.class_devices([a, b], None, None, host) == [a, b]  # class not recorded
    with pytest.raises(MissingPrerequisite, match="`farm devices`"):
        evaluation.class_devices([b, broken], None, cls, host)
    with pytest.raises(BadInput, match="of class"):
        evaluation.class_devices([a, b], ["b@n"], cls, host)
    with pytest.raises(BadInput, match="unknown device"):
        evaluation.class_devices([a, b], ["zz"], cls, host)


def test_no_device_of_the_class_is_a_user_error_before_training(three, tmp_path, capsys,
                                                                   monkeypatch):
    class Session:
        def __init__(self, address=None, holder=""):
            self.devices = [_device("b@n", "CPU B")]

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    run = _campaign(tmp_path / "classy", {b: _feats(b, 10) for b in THREE},
                    device_class="host-cpu-a (x)")
    monkeypatch.setattr(evaluate, "DeviceSession", Session)
    monkeypatch.setattr(evaluate, "train_models", lambda *a, **k: pytest.fail("trained"))
    assert_user_error(farm_here(capsys, "evaluate", run.path), "host-cpu-a", "`farm devices`")


# timing: shared builds, verdicts, output ------------------------------------------------

class FakeBuilt:
    def __init__(self, key_seed):
        self.result = BuildResult(OK, schedule=Schedule("src", fake_featurization(key_seed),
                                                        0.1))


class FakePool:
    """Builds each weights into a schedule of its own unless `same_schedule` maps its
    sha256 to another's; times a binary as its number says (with a little noise)."""

    def __init__(self, same_schedule=None, ms=None):
        self.built, self.timed = [], []
        self.same_schedule = same_schedule or {}
        self.ms = ms or {}
        self.events = []

    def build(self, specs, timeout):
        self.built += [s.weights.sha256 for s in specs]
        out = []
        for s in specs:
            sha = self.same_schedule.get(s.weights.sha256, s.weights.sha256)
            out.append((FakeBuilt(int(sha[:6], 16)), sha, None))
        return out

    def retime(self, binaries, threads, timing, rounds, device=None, errors=None):
        self.timed.append(sorted(binaries))
        return {label: [self.ms.get(label, 1.0) * (1 + 0.001 * (r % 3)) for r in range(rounds)]
                for label in binaries}


def _models(plan, pooled_weights, loo_weights):
    out = {"pooled": evaluate.Model("pooled", (), pooled_weights, None, 30,
                                    {b: 10 for b in THREE})}
    for g in plan.groups:
        out[g.model] = evaluate.Model(g.model, g.members, loo_weights, None, 10, {}, 0)
    return out


def test_identical_weights_are_built_and_timed_once(three, tmp_path):
    own = tmp_path / "own.weights"
    weights.write(weights.baseline(), own)  # e.g. a run that kept the start weights
    plan = evaluation.prepare(three.path, weights_for=[f"median3x3={own}"])
    pooled = weights.perturbed(plan.start, 1, 0.01)
    pool = FakePool(ms={"pooled": 0.8, "leave-one-out": 1.25})
    rows = evaluate.time_pipeline(plan, plan.pipelines[0], _models(
        plan, pooled, weights.perturbed(plan.start, 2, 0.01)), pool, "cpu@n", 6,
        progress=lambda _: None)
    # timed once, then the "slower" pair once more (compare.confirm_slower)
    assert len(pool.built) == 3 and pool.timed == [["baseline", "leave-one-out", "pooled"],
                                                   ["baseline", "leave-one-out"]]
    by = {r["variant"]: r for r in rows}
    assert by["own"]["verdict"] == evaluate.SAME_WEIGHTS and by["own"]["same_as"] == "baseline"
    assert by["own"]["vs_baseline"] == 1.0 and by["own"]["retimes_ms"] == \
        by["baseline"]["retimes_ms"]
    assert by["pooled"]["verdict"] == verdict.FASTER and by["pooled"]["vs_baseline"] < 0.85
    assert by["leave-one-out"]["verdict"] == verdict.SLOWER
    assert by["baseline"]["verdict"] is None and by["baseline"]["median_ms"] > 0
    assert by["pooled"]["trained_on"] == 30 and by["pooled"]["group_rows_trained_on"] == 10
    assert by["leave-one-out"]["group_rows_trained_on"] == 0
    assert {r["device_id"] for r in rows} == {"cpu@n"}


def test_a_pipelines_rows_are_kept_as_it_is_timed_and_reused_only_for_the_same_models(
        three, tmp_path):
    """An evaluation of five apps lost the four already timed when the fifth ran out of
    memory: each pipeline's rows are written the moment it is timed, and a rerun into the
    same --out keeps them when they time the same weights."""
    plan = evaluation.prepare(three.path)
    models = _models(plan, weights.perturbed(plan.start, 1, 0.01),
                     weights.perturbed(plan.start, 2, 0.01))
    pipeline = plan.pipelines[0]
    rows = evaluate.time_pipeline(plan, pipeline, models, FakePool(), "cpu@n", 6,
                                  progress=lambda _: None)
    assert evaluate.kept_rows(tmp_path, plan, pipeline, models) is None
    evaluate.keep_rows(tmp_path, pipeline, rows)
    assert evaluate.kept_rows(tmp_path, plan, pipeline, models) == rows
    other = _models(plan, weights.perturbed(plan.start, 3, 0.01),
                    weights.perturbed(plan.start, 2, 0.01))
    assert evaluate.kept_rows(tmp_path, plan, pipeline, other) is None


def test_weights_that_plan_the_baselines_schedule_are_timed_once(three):
    plan = evaluation.prepare(three.path)
    pooled, loo = (weights.perturbed(plan.start, s, 0.01) for s in (1, 2))
    pool = FakePool(same_schedule={loo.sha256: plan.start.sha256})
    rows = evaluate.time_pipeline(plan, plan.pipelines[1], _models(plan, pooled, loo), pool,
                                  "cpu@n", 6, progress=lambda _: None)
    assert len(pool.built) == 3 and pool.timed == [["baseline", "pooled"]]
    by = {r["variant"]: r for r in rows}
    assert by["leave-one-out"]["verdict"] == evaluate.SAME_SCHEDULE
    assert by["leave-one-out"]["group"] == "conv3x3a16+conv3x3a32"


def test_an_untrained_model_is_reported_not_timed(three):
    plan = evaluation.prepare(three.path)
    models = _models(plan, weights.perturbed(plan.start, 1, 0.01), None)
    models = {k: replace(m, skipped="too few") if m.weights is None else m
              for k, m in models.items()}
    pool = FakePool()
    rows = evaluate.time_pipeline(plan, plan.pipelines[0], models, pool, "cpu@n", 6,
                                  progress=lambda _: None)
    by = {r["variant"]: r for r in rows}
    assert by["leave-one-out"]["error"] == "not trained: too few"
    assert by["leave-one-out"]["vs_baseline"] is None and len(pool.built) == 2


def test_table_summary_and_plot(three, tmp_path):
    plan = evaluation.prepare(three.path)
    rows = []
    for i, p in enumerate(plan.pipelines):
        pool = FakePool(ms={"pooled": 0.9, "leave-one-out": [1.0, 1.2, 0.7][i]})
        rows += evaluate.time_pipeline(plan, p, _models(
            plan, weights.perturbed(plan.start, 1, 0.01), weights.perturbed(plan.start, 2, 0.01)),
            pool, "cpu@n", 6, progress=lambda _: None)
    text = evaluate.format_table(rows)
    assert "conv3x3a32" in text.splitlines()[2] and "leave-one-out / baseline" in text
    lines = evaluate.summary(rows)
    loo = next(ln for ln in lines if ln.startswith("leave-one-out"))
    # (1.0 * 1.2 * 0.7) ** (1/3) = 0.944 of the baseline's time: 1/0.944 = 1.06 times faster
    assert "geometric mean 1.06x faster over 3 of 3 pipelines" in loo
    assert "faster on 1, slower on 1, indistinguishable on 1" in loo
    assert next(ln for ln in lines if ln.startswith("pooled")).startswith(
        "pooled / baseline: geometric mean 1.11x faster")
    table, png = evaluate.write_results(rows, tmp_path / "out")
    assert pq.read_table(table).num_rows == 9 and png.stat().st_size > 1000


def test_without_enough_repeats_there_is_no_ratio(three):
    plan = evaluation.prepare(three.path)
    rows = evaluate.time_pipeline(plan, plan.pipelines[0], _models(
        plan, weights.perturbed(plan.start, 1, 0.01), weights.perturbed(plan.start, 2, 0.01)),
        FakePool(), "cpu@n", 2, progress=lambda _: None)
    assert {r["verdict"] for r in rows if r["variant"] != "baseline"} == {verdict.UNMEASURED}
    assert "no ratio on any of 1 pipeline" in evaluate.summary(rows)[0]


# end to end -----------------------------------------------------------------------------

@pytest.mark.slow
def test_evaluate_a_small_campaign_end_to_end(tmp_path):
    """Three built-ins with real featurizations and synthetic runtimes; real trainer,
    compiles and timings (2 re-timings: too few for verdicts, enough to check the plumbing)."""
    from samples import probes

    from farm.devices.registry import discover_local

    host_class = str(discover_local()[0][0].device_class)
    run = _campaign(tmp_path / "run", {b: list(probes(b, 10)) for b in THREE},
                    device_class=host_class)
    own = tmp_path / "own.weights"
    weights.write(weights.baseline(), own)
    proc = farm("evaluate", run.path, "--repeats", "2", "--weights-for", f"median3x3={own}",
                timeout=600, check=0)
    out = proc.stdout
    assert "training pooled: 30 rows of 3 pipelines" in out
    assert "training loo-conv3x3a16+conv3x3a32: 10 rows of 1 pipeline" in out
    assert "median3x3: built in" in out and "interleaved, on cpu@" in out
    assert "leave-one-out / baseline:" in out and "pooled / baseline:" in out
    evaluated = run.path / "evaluate"
    rows = pq.read_table(evaluated / "evaluate.parquet").to_pylist()
    assert (evaluated / "evaluate.png").stat().st_size > 1000
    by = {(r["benchmark"], r["variant"]): r for r in rows}
    assert len(rows) == 10 and set(by) == {(b, v) for b in THREE for v in (
        "baseline", "pooled", "leave-one-out")} | {("median3x3", "own")}
    loo16, loo32 = by["conv3x3a16", "leave-one-out"], by["conv3x3a32", "leave-one-out"]
    assert loo16["model"] == loo32["model"] == "loo-conv3x3a16+conv3x3a32"
    assert loo16["weights_sha256"] == loo32["weights_sha256"]
    assert by["median3x3", "leave-one-out"]["weights_sha256"] != loo16["weights_sha256"]
    assert {by[b, "leave-one-out"]["group_rows_trained_on"] for b in THREE} == {0}
    assert by["median3x3", "leave-one-out"]["trained_on"] == 20
    assert loo16["trained_on"] == 10 and by["median3x3", "pooled"]["trained_on"] == 30
    assert by["median3x3", "own"]["verdict"] == "same weights as baseline"
    for b in THREE:
        base = by[b, "baseline"]
        assert base["median_ms"] > 0 and len(base["retimes_ms"]) == 2, base
        assert base["device_id"].startswith("cpu@")
    for name in ("pooled", "loo-median3x3", "loo-conv3x3a16+conv3x3a32"):
        assert weights.load(evaluated / "weights" / f"{name}.weights")
        assert (evaluated / "weights" / f"{name}.log").exists()
    # run again into the same folder: each pipeline timed before is kept, not re-timed (the
    # models train to the same weights: training is a function of its rows and recipe)
    again = farm("evaluate", run.path, "--repeats", "2", "--weights-for", f"median3x3={own}",
                 timeout=600, check=0).stdout
    assert again.count("timed by an earlier evaluate") == 3 and "built in" not in again
    assert pq.read_table(evaluated / "evaluate.parquet").to_pylist() == rows


def test_weights_for_a_pipeline_with_generator_parameters(tmp_path):
    """A pipeline's name can hold `=` (box:radius=2): BENCH=PATH splits after it."""
    own = tmp_path / "own.weights"
    weights.write(weights.perturbed(weights.baseline(), 1, 0.01), own)
    pipes = [PipelineRecord("box:radius=1", "box.py:box:radius=1", ""),
             PipelineRecord("box:radius=2", "box.py:box:radius=2", "")]
    out = evaluation.parse_weights_for([f"box:radius=2={own}"], pipes)
    assert set(out) == {"box:radius=2"} and out["box:radius=2"][1] == str(own)


# --on: a run's handed-over weights on pipelines it never trained on ---------------------

def _handed(run, seed=7):
    w = weights.perturbed(weights.baseline(), seed, 0.01)
    weights.write(w, run.best_weights)
    return w


def test_on_refuses_a_pipeline_the_run_trained_on(three, tmp_path, capsys):
    _handed(three)
    with pytest.raises(BadInput, match=r"median3x3 took part in .* training"):
        evaluation.prepare_on(three.path, ["gaussian5x5", "median3x3"])
    assert_user_error(farm_here(capsys, "evaluate", three.path, "--on", "conv3x3a16"),
                      "conv3x3a16 took part", "never saw")
    assert_user_error(farm_here(capsys, "evaluate", three.path, "--on", "sobel",
                                "--together", "a,b"), "--on", "leave-one-out")


def test_on_knows_a_trained_pipeline_however_it_is_written(tmp_path):
    """`random` is random:seed=0, which a pre-training draws first; a near twin counts as
    seen; so do the pipelines of a run it also trained on (--also-train-on)."""
    pre = tmp_path / "pre"
    drawn = [catalog.resolve(f"random:seed={n}") for n in (0, 1)]
    run = _campaign(pre, {b.label: _feats("x", 10) for b in drawn},
                    pipelines=[PipelineRecord(b.label, b.ref, b.sha256) for b in drawn])
    _handed(run)
    for ref in ("random", "random:seed=1,stages=8", "random:seed=0,version=1"):
        with pytest.raises(BadInput, match=r"took part in .* training"):
            evaluation.prepare_on(pre, [ref])
    assert evaluation.prepare_on(pre, ["random:seed=2"]).names == ["random:seed=2,version=1"]
    twin = _campaign(tmp_path / "twin", {"conv3x3a16": _feats("conv3x3a16", 10)})
    _handed(twin)
    with pytest.raises(BadInput, match=r"conv3x3a32 has a near twin, conv3x3a16, that took"):
        evaluation.prepare_on(twin.path, ["conv3x3a32"])
    manifest = run.read_manifest()
    run.write_manifest(replace(manifest, also_train_on=[str(twin.path)]))
    with pytest.raises(BadInput, match=r"conv3x3a16 took part"):
        evaluation.prepare_on(pre, ["sobel", "conv3x3a16"])
    run.write_manifest(replace(manifest, also_train_on=[str(tmp_path / "gone")]))
    ev = evaluation.prepare_on(pre, ["sobel"])  # what a run that is gone gave: not known
    assert any("also trained on" in w and "gone" in w for w in ev.warnings)


def test_on_takes_weights_for_a_bench_as_written_and_names_the_on_pipelines(three, tmp_path):
    _handed(three)
    given = tmp_path / "w.weights"
    weights.write(weights.perturbed(weights.baseline(), 9, 0.01), given)
    ev = evaluation.prepare_on(three.path, ["random:seed=3"],
                             weights_for=[f"random:seed=3={given}"])
    assert list(ev.extra) == ["random:seed=3,version=1"]
    with pytest.raises(BadInput, match=r"'median3x3' is not a pipeline of --on \(they are: "
                       r"sobel\)"):
        evaluation.prepare_on(three.path, ["sobel"], weights_for=[f"median3x3={given}"])
    with pytest.raises(BadInput, match="'median3x3' is not a pipeline of --on"):
        evaluation.prepare_on(three.path, ["all"], weights_for=[f"median3x3={given}"])
    with pytest.raises(RunDirError, match="is not a folder"):
        evaluation.prepare_on(given, ["sobel"])


def test_on_all_leaves_out_what_the_run_trained_on_and_says_so(three):
    _handed(three)
    ev = evaluation.prepare_on(three.path, ["all", "sobel", "all"])
    assert ev.names == ["dilate3x3", "gaussian5x5", "sobel"]  # each once
    assert ev.warnings[0].startswith("note: --on all leaves out conv3x3a16, conv3x3a32, "
                                     "median3x3, which")
    solo = evaluation.prepare_on(three.path, ["sobel", "sobel"])
    assert solo.names == ["sobel"]


def test_on_times_the_start_the_handed_over_and_given_weights(three, tmp_path):
    handed = _handed(three)
    given = tmp_path / "loo.weights"
    weights.write(weights.perturbed(weights.baseline(), 9, 0.01), given)
    ev = evaluation.prepare_on(three.path, ["gaussian5x5", "sobel"],
                             weights_for=[f"sobel={given}"])
    assert ev.names == ["gaussian5x5", "sobel"] and ev.handed[0].sha256 == handed.sha256
    pool = FakePool(ms={"handed-over": 0.7})
    rows = evaluate.time_pipeline(ev, ev.pipelines[1], {}, pool, "cpu@n", 6,
                                  progress=lambda _: None)
    by = {r["variant"]: r for r in rows}
    assert set(by) == {"baseline", "handed-over", "own"}
    assert by["handed-over"]["verdict"] == verdict.FASTER
    assert by["handed-over"]["weights_file"] == str(three.best_weights)
    assert by["own"]["weights_file"] == str(given)
    rows0 = evaluate.time_pipeline(ev, ev.pipelines[0], {}, FakePool(), "cpu@n", 6,
                                   progress=lambda _: None)
    assert {r["variant"] for r in rows0} == {"baseline", "handed-over"}  # own: sobel only
    assert "handed-over / baseline: geometric mean" in "\n".join(evaluate.summary(rows + rows0))


def test_on_without_handed_over_weights_judges_the_accepted_ones_and_says_so(three):
    weights.write(weights.perturbed(weights.baseline(), 3, 0.01), three.latest_weights)
    ev = evaluation.prepare_on(three.path, ["sobel"])
    assert ev.handed[1] == str(three.latest_weights)
    assert any("no handed-over weights" in w for w in ev.warnings)


def test_judge_times_other_weights_of_the_run_labelled_judged(three, tmp_path, capsys):
    _handed(three)
    other = three.path / "weights" / "provisional-000002.weights"
    judged = weights.perturbed(weights.baseline(), 11, 0.01)
    weights.write(judged, other)
    ev = evaluation.prepare_on(three.path, ["sobel"], judge=other)
    assert ev.handed[0].sha256 == judged.sha256 and ev.judged and not ev.warnings
    rows = evaluate.time_pipeline(ev, ev.pipelines[0], {}, FakePool(ms={"judged": 0.7}),
                                  "cpu@n", 6, progress=lambda _: None)
    by = {r["variant"]: r for r in rows}
    assert set(by) == {"baseline", "judged"}  # the handed-over weights are not timed
    assert by["judged"]["weights_file"] == str(other)
    assert by["judged"]["verdict"] == verdict.FASTER
    assert_user_error(farm_here(capsys, "evaluate", three.path, "--on", "sobel", "--judge",
                                str(tmp_path / "none.weights")), "none.weights", "not exist")
    assert_user_error(farm_here(capsys, "evaluate", three.path, "--judge", str(other)),
                      "--judge", "--on")


def test_a_corpus_campaign_is_judged_leave_family_out_by_default():
    from farm.pipelines import catalog
    from farm.workflows.evaluation import make_groups

    families = catalog.corpus_families()
    if len(families) < 2:
        pytest.skip("the corpus has fewer than two families")
    (_, first), (_, second) = list(families.items())[:2]
    names = [first[0].name, f"{first[-1].name}:x=1", second[0].name, "median3x3"]
    groups = {g.members for g in make_groups(names)}
    assert (names[0], names[1]) in groups or len(first) == 1
    assert (second[0].name,) in groups and ("median3x3",) in groups
    labels = {g.members: g.label for g in make_groups(names)}
    first_family = next(iter(families))
    assert labels.get((names[0], names[1])) in (f"family {first_family}", None)
    assert labels[("median3x3",)] == "median3x3"
