"""The round loop in this process on doubles (farm.testing): synthetic builds and devices
on a local Ray, a scripted trainer. Resume, --budget, acceptance and the end of a run, in
seconds; test_autotune.py runs the same loop with real Halide through the command line."""

from dataclasses import replace
from pathlib import Path

import pytest
import ray

from farm import catalog, targets, weights
from farm.candidate import OK
from farm.pool import DevicePool
from farm.rundir import RunDir
from farm.store import SampleStore
from farm.testing import (
    FakeCluster,
    ScriptedTrainer,
    SyntheticBuilder,
    open_synthetic,
    replay,
    synthetic_infos,
)
from farm.timing import TimingConfig
from farm.tuner import TuneSettings, autotune


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture
def farm_of(baseline):
    """autotune() on two synthetic devices; returns (summary, trainer)."""
    infos = synthetic_infos(2, seconds=0.01)

    def tune(run, rounds=2, batch=8, trainer=None, bench="median3x3", builder=None,
             opener=open_synthetic, **settings):
        trainer = trainer or ScriptedTrainer()
        pool = DevicePool.create(infos, builder or SyntheticBuilder(0.01), compile_slots=4,
                                 opener=opener)
        benches = (bench,) if isinstance(bench, str) else tuple(bench)
        s = TuneSettings(tuple(catalog.resolve(b) for b in benches), targets.resolve(None),
                         baseline,
                         rounds=rounds, batch_size=batch, timing=TimingConfig(), retimes=3,
                         **settings)
        try:
            return autotune(run, s, cluster=FakeCluster(infos), pool=pool,
                            trainer=trainer), trainer
        finally:
            pool.shutdown()

    return tune


def _rows(run):
    return SampleStore(run / "samples").read().to_pylist()


def test_rounds_then_more_rounds_resume_where_the_run_stopped(farm_of, tmp_path):
    run = tmp_path / "run"
    first, trainer = farm_of(run, rounds=2)
    assert first.rounds == 2 and first.rows == 16 and trainer.decided == [1, 2]
    rows = _rows(run)
    assert sorted({r["round"] for r in rows}) == [1, 2]
    assert all(r["status"] in (OK, "duplicate") for r in rows)
    keys = [r["schedule_key"] for r in rows if r["status"] == OK]
    assert len(keys) == len(set(keys))  # no schedule gets two ok rows
    _, trainer = farm_of(run, rounds=3)
    assert trainer.decided == [3]  # only the new round is decided
    rows3 = _rows(run)
    assert len(rows3) == 24 and {r["sample_id"] for r in rows} < {r["sample_id"]
                                                                  for r in rows3}
    keys3 = [r["schedule_key"] for r in rows3 if r["status"] == OK]
    assert len(keys3) == len(set(keys3))  # resumed claims include the earlier rounds'
    assert RunDir(run).read_manifest().invocations[-1]["devices"][0]["id"] == "syn0@synthetic"


def test_a_spent_budget_stops_after_the_round_in_progress(farm_of, tmp_path):
    summary, trainer = farm_of(tmp_path / "run", rounds=5, budget_s=1e-6)
    assert summary.rounds == 1 and "budget" in summary.stopped and trainer.decided == [1]


def test_a_provisional_winner_is_checked_by_its_beam_search(farm_of, tmp_path):
    run = tmp_path / "run"
    farm_of(run, rounds=3, trainer=ScriptedTrainer(provisional_after={1}))
    r = RunDir(run)
    rows = sorted(_rows(run), key=lambda row: (row["round"], row["index"]))
    round2 = [row for row in rows if row["round"] == 2]
    assert round2[1]["planner"] == "b32-d100@provisional"  # its beam search, candidate 1
    check = r.read_round(2).beam_check
    assert check is not None and check.verdict is not None
    provisional = weights.load(r.provisional_used(2))
    after = weights.load(r.weights_path(2))
    # accepted exactly when its beam search was not slower than the start weights'
    assert check.passed == (after.sha256 == provisional.sha256)
    assert check.passed == (check.verdict.ratio <= 1.1 and check.verdict.verdict != "slower")
    assert r.read_round(3).beam_check is None  # nothing provisional after round 2


def test_the_end_of_a_run_retimes_finalists_and_hands_over_weights(farm_of, tmp_path):
    run = tmp_path / "run"
    summary, trainer = farm_of(run, rounds=1)
    assert len(trainer.trained) == 3  # the three final models
    r = RunDir(run)
    retiming = r.read_retiming()
    assert retiming is not None and retiming.runtime_ms > 0
    labels = {f.label for f in retiming.finalists}
    assert "manual schedule" in labels and any(x.startswith("sample ") for x in labels)
    assert summary.best_ms == retiming.runtime_ms
    record = r.read_best_weights_record()
    handed = weights.load(r.best_weights).sha256
    start = weights.load(r.weights_path(0)).sha256
    # tuned weights only with a "faster" verdict against the start weights' beam search
    faster = [c for c in record.compared.values()
              if c.vs_start is not None and c.vs_start.verdict == "faster"]
    assert (handed != start) == bool(faster), record.reason


def test_a_replayed_run_serves_its_recorded_samples(farm_of, tmp_path):
    """ReplayBuilder/ReplayDevice: each candidate is one of a recorded run's samples, with
    its featurization and its recorded runtimes."""
    recorded = SampleStore(Path(__file__).parent / "data" / "v1-run" / "samples").read()
    recorded = {r["schedule_key"]: r for r in recorded.to_pylist()}
    builder, opener = replay(list(recorded.values()))
    farm_of(tmp_path / "run", rounds=1, bench="dilate3x3", builder=builder, opener=opener)
    ok = [r for r in _rows(tmp_path / "run") if r["status"] == OK]
    assert ok and all(r["schedule_key"] in recorded for r in ok)
    for r in ok:
        assert r["runtime_ms"] == min(recorded[r["schedule_key"]]["runtimes_ms"])
        assert r["featurization"] == recorded[r["schedule_key"]]["featurization"]


def test_a_run_trains_one_device_class_and_is_not_continued_on_another(baseline, tmp_path):
    """Devices of two classes are refused together; a run of one class is not continued
    on another's devices (exit 2 for both: the user chooses the devices)."""
    from farm.errors import BadInput, RunDirError

    a = synthetic_infos(1, node="a", seconds=0.01)
    b = [replace(d, class_model="other cpu") for d in synthetic_infos(1, node="b", seconds=0.01)]
    s = TuneSettings((catalog.resolve("median3x3"),), targets.resolve(None), baseline,
                     rounds=1, batch_size=4, timing=TimingConfig(), retimes=2)

    def tune(infos, rounds=1):
        pool = DevicePool.create(infos, SyntheticBuilder(0.01), compile_slots=2,
                                 opener=open_synthetic)
        try:
            return autotune(tmp_path / "run", replace(s, rounds=rounds),
                            cluster=FakeCluster(infos), pool=pool, trainer=ScriptedTrainer())
        finally:
            pool.shutdown()

    with pytest.raises(BadInput, match="2 classes") as mixed:
        tune(a + b)
    assert mixed.value.exit_code == 2
    tune(a)
    recorded = RunDir(tmp_path / "run").read_manifest().device_class
    assert recorded == str(a[0].device_class)
    with pytest.raises(RunDirError, match="holds weights of device class") as other:
        tune(b, rounds=2)
    assert other.value.exit_code == 2
    assert RunDir(tmp_path / "run").samples.committed_rounds() == [1]  # nothing was timed


def test_a_campaign_tunes_several_pipelines_into_one_model(farm_of, tmp_path):
    """Two pipelines, a batch each per round, one model: rows name their pipeline, no
    schedule gets two ok rows within a pipeline, acceptance holds out a pipeline in turn,
    and each pipeline has its own best/NAME/ and stable pipeline id."""
    run = tmp_path / "run"
    s, trainer = farm_of(run, rounds=2, batch=6, bench=("median3x3", "conv3x3a16"))
    rows = _rows(run)
    assert sorted({r["benchmark"] for r in rows}) == ["conv3x3a16", "median3x3"]
    for name in ("median3x3", "conv3x3a16"):
        mine = [r for r in rows if r["benchmark"] == name]
        assert sorted((r["round"], r["index"]) for r in mine) == \
            [(n, i) for n in (1, 2) for i in range(6)]
        ok = [r["schedule_key"] for r in mine if r["status"] == "ok"]
        assert len(ok) == len(set(ok))
        assert all(r["sample_id"].endswith(f"-r{r['round']:06d}-c{r['index']:04d}")
                   and f"-{name}-" in r["sample_id"] for r in mine)
        assert (run / "best" / name / "runtime.json").is_file()
        assert RunDir(run).read_retiming(name).benchmark == name
    assert len({r["sample_id"] for r in rows}) == len(rows)
    m = RunDir(run).read_manifest()
    assert m.campaign and m.generator == "campaign"
    ids = {p.name: p.pipeline_id for p in m.pipelines}
    assert ids["median3x3"] != ids["conv3x3a16"]
    assert {r["pipeline_id"] for r in rows if r["benchmark"] == "median3x3"} == \
        {ids["median3x3"]}
    # one held-out pipeline per round, in turn; rounds are not the unit
    assert trainer.decided == ["conv3x3a16", "median3x3"]
    assert [p.name for p in s.pipelines] == ["median3x3", "conv3x3a16"]
    assert all(p.best_ms is not None for p in s.pipelines)
    assert RunDir(run).read_round(2).pipelines.keys() == {"median3x3", "conv3x3a16"}
    # the report: the campaign with a line per pipeline, and each pipeline on its own
    from farm.errors import BadInput
    from farm.report import build_report

    whole = build_report(run)
    assert "campaign of median3x3, conv3x3a16" in whole.text
    assert sum(line.startswith(("median3x3 ", "conv3x3a16 "))
               for line in whole.text.splitlines()) == 2
    one = build_report(run, "conv3x3a16")
    assert {r["benchmark"] for r in one.rows} == {"conv3x3a16"} and len(one.rows) == 12
    assert one.best.benchmark == "conv3x3a16"
    assert [r["beam_ms"] for r in one.rounds] == [
        RunDir(run).read_round(n).pipelines["conv3x3a16"]["beam_ms"] for n in (1, 2)]
    with pytest.raises(BadInput, match="not a pipeline of this campaign"):
        build_report(run, "blur")


def test_a_campaign_takes_in_a_pipeline_and_leaves_one_out(farm_of, tmp_path):
    run = tmp_path / "run"
    farm_of(run, rounds=1, batch=4, bench=("median3x3", "conv3x3a16"))
    farm_of(run, rounds=2, batch=4, bench=("median3x3", "conv3x3a32"))
    rows = _rows(run)
    by_round = {n: sorted({r["benchmark"] for r in rows if r["round"] == n}) for n in (1, 2)}
    assert by_round == {1: ["conv3x3a16", "median3x3"], 2: ["conv3x3a32", "median3x3"]}
    m = RunDir(run).read_manifest()
    assert {p.name: p.first_round for p in m.pipelines} == \
        {"median3x3": 1, "conv3x3a16": 1, "conv3x3a32": 2}
    # the same names with a changed generator is refused: its rows would mix two pipelines
    from farm.errors import RunDirError

    m.pipelines[0].sha256 = "0" * 64
    RunDir(run).write_manifest(m)
    with pytest.raises(RunDirError, match="changed since"):
        farm_of(run, rounds=3, batch=4, bench=("median3x3",))


def test_two_device_classes_train_two_models_on_their_own_rows(baseline, tmp_path):
    """Devices of two classes: one run per class under classes/CLASS/, each timed only on
    its own devices, and no row of one class reaches the other's training."""
    a = synthetic_infos(2, node="a", seconds=0.01)
    b = [replace(d, class_model="other cpu") for d in synthetic_infos(2, node="b",
                                                                      seconds=0.01)]
    trainer = ScriptedTrainer(provisional_after=(1,))
    s = TuneSettings((catalog.resolve("median3x3"), catalog.resolve("conv3x3a16")),
                     targets.resolve(None), baseline, rounds=2, batch_size=4,
                     timing=TimingConfig(), retimes=2)
    autotune(tmp_path / "run", s, cluster=FakeCluster(a + b), builder=SyntheticBuilder(0.01),
             trainer=trainer, opener=open_synthetic)
    dirs = sorted((tmp_path / "run" / "classes").iterdir())
    assert [d.name for d in dirs] == sorted({str(a[0].device_class), str(b[0].device_class)})
    samples = {}
    for d in dirs:
        m = RunDir(d).read_manifest()
        assert m.device_class == d.name
        rows = _rows(d)
        devices = a if m.device_class == str(a[0].device_class) else b
        assert {r["device_id"] for r in rows if r["device_id"]} <= {x.id for x in devices}
        assert len(rows) == 2 * 2 * 4
        samples[d.name] = {r["sample_id"] for r in rows}
        assert (d / "weights" / "best.weights").is_file()
    # every table handed to the trainer (acceptance and final models) is one class's
    assert trainer.tables and all(
        sum(bool(t & mine) for mine in samples.values()) == 1 for t in trainer.tables)
    assert not (tmp_path / "run" / "manifest.json").exists()


def test_two_parameter_sets_of_one_generator_are_two_pipelines_of_a_campaign(farm_of,
                                                                               tmp_path):
    box = str(Path(__file__).parent / "data" / "pygen" / "box_generator.py") + ":box"
    run = tmp_path / "run"
    farm_of(run, rounds=1, batch=4, bench=(f"{box}:radius=1", f"{box}:radius=2"))
    rows = _rows(run)
    assert sorted({r["benchmark"] for r in rows}) == ["box:radius=1", "box:radius=2"]
    m = RunDir(run).read_manifest()
    assert [p.name for p in m.pipelines] == ["box:radius=1", "box:radius=2"]
    assert m.pipelines[1].ref.endswith(":box:radius=2")
    assert len({p.pipeline_id for p in m.pipelines}) == 2
    assert (run / "best" / "box:radius=2" / "runtime.json").is_file()
