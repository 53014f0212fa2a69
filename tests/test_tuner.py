"""The round loop in this process on doubles (farm.testing): synthetic builds and devices
on a local Ray, a scripted trainer. Resume, --budget, acceptance and the end of a run, in
seconds; test_autotune.py runs the same loop with real Halide through the command line."""

from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import ray

from farm.candidate import OK
from farm.devices.timing import TimingConfig
from farm.execution.pool import DevicePool
from farm.machine import targets
from farm.model import weights
from farm.pipelines import catalog
from farm.store.rundir import RunDir
from farm.store.samples import SampleStore
from farm.testing import (
    FakeCluster,
    ScriptedTrainer,
    SyntheticBuilder,
    open_synthetic,
    replay,
    synthetic_infos,
)
from farm.tuning.loop import autotune
from farm.tuning.settings import TuneSettings


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


def test_each_row_records_the_prediction_of_the_weights_that_planned_its_round(farm_of,
                                                                              tmp_path):
    from farm.model.predict import predict

    run = tmp_path / "run"
    farm_of(run, rounds=2)
    r = RunDir(run)
    rows = [row for row in _rows(run) if row["featurization"]]
    assert rows and all(row["predicted"] is not None for row in rows)
    for rnd in (1, 2):
        mine = [row for row in rows if row["round"] == rnd]
        planner = weights.load(r.weights_path(rnd - 1))
        want = predict(planner, [row["featurization"] for row in mine], mine[0]["parallelism"])
        assert [row["predicted"] for row in mine] == pytest.approx(list(want))


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


def test_the_final_retiming_keeps_each_samples_timing_during_its_round(farm_of, tmp_path):
    """A finalist that is a sample (or re-times one: the start weights' beam search) keeps
    its round's figure beside its re-timing; the summary shows both, labelled."""
    run = tmp_path / "run"
    summary, _ = farm_of(run, rounds=1)
    rows = {r["sample_id"]: r for r in _rows(run)}
    retiming = RunDir(run).read_retiming()
    samples = [f for f in retiming.finalists if f.label.startswith("sample ")]
    assert samples and all(f.round_ms == rows[f.label.split()[1]]["runtime_ms"]
                           and f.round_no == 1 for f in samples)
    manual = retiming.finalist_labelled("manual schedule")
    assert manual.round_ms is None and manual.round_no is None
    text = "\n".join(summary.lines())
    assert "timed during round 1" in text and summary.handed_model, text
    assert f"latest weights: {RunDir(run).latest_weights} (what the next round" in text


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
    from farm.report.text import build_report

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
    # one pipeline's report leaves the campaign's own plots alone
    from farm.workflows.reports import report

    list(report(run))
    own = {p.name: p.read_bytes() for p in (run / "report").glob("*.png")}
    assert own
    [part] = report(run, "conv3x3a16")
    assert {p.parent for _, images in part.plots for p in images} == {
        run / "report" / "conv3x3a16"}
    assert {p.name: p.read_bytes() for p in (run / "report").glob("*.png")} == own


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
    # the report page has a section per class, each a campaign with a part per pipeline
    from farm.report.page import write_page

    page = write_page(tmp_path / "run", tmp_path / "page" / "index.html").read_text()
    title = page.split("<title>")[1].split("</title>")[0]
    assert title.startswith("farm report: campaign of median3x3, conv3x3a16 on ")
    assert all(d.name in title for d in dirs)
    assert page.count("<h2>Device class ") == 2
    assert page.count("<h3>Pipeline median3x3</h3>") == 2
    # and a summary table across the classes, a row each, before their sections
    summary = page.split("<h2>Device classes</h2>")[1].split("<h2>Device class ")[0]
    for d in dirs:
        m = RunDir(d).read_manifest()
        assert (f"<td>{d.name}</td><td>{m.run_id}</td><td>2</td><td>2</td><td>16</td>"
                in summary.replace("&#x27;", "'")), summary


def test_a_resume_one_class_refuses_changes_no_class(baseline, tmp_path):
    """Several classes are validated together before any is tuned: one class's refusal
    leaves the other's files as they were."""
    import json

    from farm.errors import RunDirError

    a = synthetic_infos(2, node="a", seconds=0.01)
    b = [replace(d, class_model="other cpu") for d in synthetic_infos(2, node="b",
                                                                      seconds=0.01)]

    def tune(rounds):
        s = TuneSettings((catalog.resolve("median3x3"),), targets.resolve(None), baseline,
                         rounds=rounds, batch_size=4, timing=TimingConfig(), retimes=2)
        autotune(tmp_path / "run", s, cluster=FakeCluster(a + b),
                 builder=SyntheticBuilder(0.01), trainer=ScriptedTrainer(),
                 opener=open_synthetic)

    tune(1)
    last = sorted((tmp_path / "run" / "classes").iterdir())[-1]
    manifest = json.loads((last / "manifest.json").read_text())
    manifest["batch_size"] = 8  # as if that class had been tuned with another batch size
    (last / "manifest.json").write_text(json.dumps(manifest))
    run = tmp_path / "run"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(RunDirError, match="--batch-size 8, not 4"):
        tune(2)
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before


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


# --- every step after a round's commit survives a crash (issue 15) ----------------------

class Crash(BaseException):
    """The driver dying at this point (not an Exception: nothing handles it on the way)."""


def _crash_once(monkeypatch, owner, name, when=lambda *a, **k: True):
    """Make `owner.name` die (Crash) the first time `when(args)` holds."""
    real, armed = getattr(owner, name), [True]

    def dying(*args, **kwargs):
        if armed[0] and when(*args, **kwargs):
            armed[0] = False
            raise Crash(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, dying)


def _check_whole(run, rounds, batch=8):
    """Every row once, every round with its record and its weights, nothing half-done."""
    rows = _rows(run)
    r = RunDir(run)
    assert len(rows) == rounds * batch and len({x["sample_id"] for x in rows}) == len(rows)
    assert sorted({x["round"] for x in rows}) == list(range(1, rounds + 1))
    for n in range(1, rounds + 1):
        record = r.read_round(n)
        assert record is not None and record.acceptance is not None and record.steps is None
        weights.load(r.weights_path(n))
    assert not list((run / "rounds").glob(".round-*.part.json"))
    assert r.latest_weights.read_bytes() == r.weights_path(rounds).read_bytes()
    return rows


@pytest.mark.parametrize("where", ["after the commit", "in the beam check",
                                   "after the beam check", "in training",
                                   "before the round record"])
def test_a_crash_in_any_step_after_the_commit_is_finished_on_resume(farm_of, tmp_path,
                                                                    monkeypatch, where):
    from farm.tuning import beam_check, steps

    run = tmp_path / "run"
    round2 = lambda *a, **k: any(getattr(x, "round", None) == 2 for x in a)  # noqa: E731
    if where == "after the commit":
        _crash_once(monkeypatch, RunDir, "write_round_part", round2)
    elif where == "in the beam check":
        _crash_once(monkeypatch, beam_check.BeamChecker, "beam_check")
    elif where == "after the beam check":  # recorded, provisional not yet moved aside
        _crash_once(monkeypatch, steps.os, "replace",
                    lambda src, dst: str(src).endswith("provisional.weights"))
    elif where == "in training":
        _crash_once(monkeypatch, ScriptedTrainer, "decide", lambda self, t, u, held, *a,
                    **k: held == 2)
    else:
        _crash_once(monkeypatch, RunDir, "write_round", round2)
    trainer = ScriptedTrainer(provisional_after={1})  # round 2 checks a provisional
    with pytest.raises(Crash):
        farm_of(run, rounds=2, trainer=trainer)
    assert RunDir(run).samples.committed_rounds() == [1, 2]
    assert RunDir(run).read_round(2) is None
    again = ScriptedTrainer(provisional_after={1})
    summary, _ = farm_of(run, rounds=2, trainer=again)
    assert summary.rounds == 2
    _check_whole(run, 2)
    record = RunDir(run).read_round(2)
    assert record.resumed and record.beam_check is not None  # the check is in the record
    assert again.decided[0] == 2  # round 2's acceptance was done (again) on resume
    if where in ("after the beam check", "in training", "before the round record"):
        assert RunDir(run).provisional_used(2).exists()  # moved aside exactly once


def test_a_resume_keeps_aside_only_the_weights_the_round_planned_with(farm_of, tmp_path,
                                                                     monkeypatch):
    """Round 2's provisional weights are lost before its check; its acceptance then writes
    the next provisional weights and the driver dies before the record. The resume must not
    file those under round 2 as the weights it planned with."""
    from farm.tuning.beam_check import BeamChecker

    run = tmp_path / "run"
    real = BeamChecker.check_provisional

    def losing(self, round_no, live):
        if round_no == 2:
            self.ctx.run.provisional_weights.unlink()
        return real(self, round_no, live)

    monkeypatch.setattr(BeamChecker, "check_provisional", losing)
    _crash_once(monkeypatch, RunDir, "write_round",
                lambda self, record: record.round == 2)
    with pytest.raises(Crash):
        farm_of(run, rounds=2, trainer=ScriptedTrainer(provisional_after={1, 2}))
    assert RunDir(run).provisional_weights.exists()  # round 3's, from round 2's acceptance
    monkeypatch.undo()
    farm_of(run, rounds=2, trainer=ScriptedTrainer(provisional_after={1, 2}))
    _check_whole(run, 2)
    r = RunDir(run)
    assert "lost" in r.read_round(2).beam_check.reason
    assert not r.provisional_used(2).exists()


def test_a_weights_file_emptied_by_a_reboot_is_decided_again(farm_of, tmp_path):
    run = tmp_path / "run"
    farm_of(run, rounds=2)
    r = RunDir(run)
    r.weights_path(2).write_bytes(b"")  # what a power cut can leave
    r.latest_weights.write_bytes(r.weights_path(1).read_bytes())  # a round stale
    _, trainer = farm_of(run, rounds=2)
    assert trainer.decided[0] == 2
    _check_whole(run, 2)


def test_the_rounds_header_says_what_is_left(farm_of, tmp_path, capsys):
    """Rounds to go, counted with their nouns; none left (a crash in the final re-timing):
    it says so, never "rounds 2..1"."""
    run = tmp_path / "run"
    farm_of(run, rounds=1)
    out = capsys.readouterr().out
    assert "): round 1 of 1, 8 candidates per round, each device holding" in out, out
    RunDir(run).retiming_path().unlink()  # as if the final re-timing had not finished
    farm_of(run, rounds=1)
    out = capsys.readouterr().out
    assert "): 1 round done; finishing (the final re-timing), each device holding" in out, out
    assert ".." not in out.split("each device holding")[0]
    farm_of(run, rounds=3)
    assert "): rounds 2..3 of 3, 8 candidates per round, each" in capsys.readouterr().out


def test_a_refused_resume_leaves_the_run_as_it_was(farm_of, tmp_path):
    """Validated before anything is written: a batch size that would mix samples, or a
    benchmark named twice, changes nothing in the run directory (or makes none)."""
    from farm.errors import BadInput, RunDirError

    run = tmp_path / "run"
    farm_of(run, rounds=1)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(RunDirError, match="--batch-size 8, not 4"):
        farm_of(run, rounds=2, batch=4)
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before
    fresh = tmp_path / "fresh"
    with pytest.raises(BadInput, match="named twice"):
        farm_of(fresh, bench=("median3x3", "median3x3"))
    assert not fresh.exists()


def test_a_full_disk_during_a_commit_leaves_the_last_round_intact(farm_of, tmp_path,
                                                                 monkeypatch):
    """ENOSPC injected at the Parquet writer of round 2: a clear DiskFull, round 1 intact,
    and the same command goes on once there is space."""
    import errno

    import pyarrow.parquet as pq

    from farm.errors import DiskFull

    run = tmp_path / "run"
    real, calls = pq.write_table, []

    def full(table, where, **kwargs):
        calls.append(where)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, where, **kwargs)

    monkeypatch.setattr("farm.store.samples.pq.write_table", full)
    with pytest.raises(DiskFull, match=r"no space left on the device of .*samples while "
                       r"writing round-000002\.parquet"):
        farm_of(run, rounds=2)
    assert RunDir(run).samples.committed_rounds() == [1]
    assert len(_rows(run)) == 8 and not list((run / "samples").glob(".*"))
    farm_of(run, rounds=2)
    _check_whole(run, 2)


def test_a_corrupt_round_file_moved_to_damaged_lets_the_run_go_on(farm_of, tmp_path):
    from farm.errors import DatasetError

    run = tmp_path / "run"
    farm_of(run, rounds=2)
    bad = run / "samples" / "round-000001.parquet"
    bad.write_bytes(bad.read_bytes()[:64])
    with pytest.raises(DatasetError, match="move it into the folder's _damaged/ subfolder"):
        farm_of(run, rounds=3)
    (run / "samples" / "_damaged").mkdir()
    bad.rename(run / "samples" / "_damaged" / bad.name)
    summary, _ = farm_of(run, rounds=3)
    assert summary.rounds == 3
    rows = _rows(run)
    assert sorted({r["round"] for r in rows}) == [2, 3] and len(rows) == 16
    assert RunDir(run).samples.lost_rounds() == [1]


def test_a_pipeline_joining_after_a_lost_round_starts_at_the_next_round(farm_of, tmp_path):
    """A lost round was a round: a pipeline that joins after it starts one round later."""
    run = tmp_path / "run"
    farm_of(run, rounds=2, batch=4, bench=("median3x3", "conv3x3a16"))
    (run / "samples" / "_damaged").mkdir()
    bad = run / "samples" / "round-000001.parquet"
    bad.rename(run / "samples" / "_damaged" / bad.name)
    farm_of(run, rounds=3, batch=4, bench=("median3x3", "conv3x3a16", "conv3x3a32"))
    m = RunDir(run).read_manifest()
    assert {p.name: p.first_round for p in m.pipelines} == \
        {"median3x3": 1, "conv3x3a16": 1, "conv3x3a32": 3}
    assert {r["round"] for r in _rows(run) if r["benchmark"] == "conv3x3a32"} == {3}


def test_devices_that_appear_and_vanish_between_rounds(baseline, tmp_path):
    """Round 1 on syn0 and syn1; then syn1 is gone and syn2 appears: round 2 is timed on
    syn0 and syn2 only."""
    first, second = synthetic_infos(2, seconds=0.01), synthetic_infos(3, seconds=0.01)
    later = [second[0], second[2]]

    class Changing(FakeCluster):
        def discover(self, timeout_s=60.0):
            return list(later), []

    pool = DevicePool.create(first, SyntheticBuilder(0.01), compile_slots=4,
                             opener=open_synthetic)
    s = TuneSettings((catalog.resolve("median3x3"),), targets.resolve(None), baseline,
                     rounds=2, batch_size=8, timing=TimingConfig(), retimes=3)
    try:
        autotune(tmp_path / "run", s, cluster=Changing(first), pool=pool,
                 trainer=ScriptedTrainer())
    finally:
        pool.shutdown()
    rows = _rows(tmp_path / "run")
    used = {n: {r["device_id"] for r in rows if r["round"] == n and r["status"] == OK}
            for n in (1, 2)}
    assert used[2] <= {"syn0@synthetic", "syn2@synthetic"} and "syn2@synthetic" in used[2]
    assert "syn1@synthetic" not in used[2]


def test_train_steps_reach_the_trainer(farm_of, tmp_path):
    """--train-steps (--epochs): every candidate model is trained for that many steps."""
    trainer = ScriptedTrainer()
    farm_of(tmp_path / "run", rounds=1, trainer=trainer, train_steps=5)
    assert trainer.steps_asked == [[5, 5, 5]]


def test_a_search_strategy_is_a_setting_the_round_loop_plans_with(farm_of, tmp_path):
    """A new strategy is one callable (farm.search.plans.Strategy), not an edit of the loop:
    here every candidate of every round is beam search."""
    from farm.candidate import BEAM_SEARCH
    from farm.search.plans import RoundPlan

    asked = []

    @dataclass
    class BeamsOnly(RoundPlan):
        def spec(self, index, attempt=1):
            return replace(super().spec(index, attempt), **BEAM_SEARCH)

    def strategy(run_id, round_no, base, batch_size, **kw):
        asked.append(round_no)
        return BeamsOnly(run_id, round_no, base, batch_size, **kw)

    farm_of(tmp_path / "run", rounds=2, batch=4, strategy=strategy)
    rows = _rows(tmp_path / "run")
    assert asked == [1, 2] and len(rows) == 8
    assert {(r["beam_size"], r["random_dropout"]) for r in rows} == {(32, 100)}


def test_a_screened_round_builds_the_models_picks_and_records_every_draw(farm_of, tmp_path):
    """--screen 3: each random probe of the accepted weights is drawn three times and the
    fastest predicted distinct draws are built; the round's record keeps every draw."""
    run = tmp_path / "run"
    farm_of(run, rounds=2, screen=3)
    r = RunDir(run)
    for rnd in (1, 2):
        record = r.read_round(rnd).screening
        rows = [row for row in _rows(run) if row["round"] == rnd]
        probes = [row for row in rows if row["planner"].startswith("b1-d1@accepted")]
        assert record is not None and record.factor == 3
        assert record.drawn == 3 * len(probes) and record.kept == len(probes)
        kept = {c.seed: c for c in record.candidates if c.kept}
        for row in probes:  # each a distinct schedule here: every one built as screened
            assert row["seed"] in kept  # (its row's prediction: the one it was picked by)
            assert row["predicted"] == pytest.approx(kept[row["seed"]].predicted)
        dropped = [c.predicted for c in record.candidates if not c.kept and c.predicted]
        # every draw is a distinct schedule here: the built are the fastest predicted
        assert dropped and max(c.predicted for c in kept.values()) <= min(dropped)
    from farm.report.text import build_report

    text = build_report(run).text  # `farm report` says what screening cost and spared
    drawn = sum(r.read_round(n).screening.drawn for n in (1, 2))
    assert f"screening (--screen 3) in 2 rounds: {drawn} draws autoscheduled" in text
