"""farm pretrain: new pipelines round by round, held out as they come, a beam check on a few,
a hand-over confirmed on pipelines never trained on. The loop on doubles (farm.testing);
the last test runs the command with the real Halide and Ray."""

import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
import ray
from clitools import assert_user_error, farm_here

from farm import api
from farm.commands import pretrain as pretrain_command
from farm.devices.timing import TimingConfig
from farm.errors import BadInput, BenchmarkError, RunDirError
from farm.execution.pool import DevicePool
from farm.machine import targets
from farm.model import weights
from farm.model.acceptance import Decision
from farm.pipelines import catalog
from farm.stats import verdict
from farm.store.rundir import RunDir
from farm.store.samples import SampleStore
from farm.testing import (
    FakeCluster,
    ScriptedTrainer,
    SyntheticBuilder,
    fake_runtime_ms,
    open_synthetic,
    synthetic_infos,
)
from farm.tuning import confirm as confirm_module
from farm.tuning.loop import autotune
from farm.tuning.settings import TuneSettings
from farm.workflows import pretrain as pretraining
from farm.workflows.pretrain import (
    DrawnPipelines,
    Pretraining,
    PretrainSpec,
    curve,
    seed_of,
    seeded_generator,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


@pytest.fixture
def pretrain_of(baseline):
    infos = synthetic_infos(2, seconds=0.01)
    host = targets.resolve(None)

    def run(out, pipelines=6, per_round=2, per_pipeline=8, beam_checked=1, trainer=None,
            generator="random:stages=4,size=64", validate_on=()):
        trainer = trainer or ScriptedTrainer()
        pool = DevicePool.create(infos, SyntheticBuilder(0.01), compile_slots=4,
                                 opener=open_synthetic)
        spec = PretrainSpec(seeded_generator(generator, host), pipelines=pipelines,
                            per_round=per_round, beam_checked=beam_checked,
                            validate_on=tuple(catalog.resolve(b) for b in validate_on))
        s = TuneSettings((), host, baseline, batch_size=per_pipeline, timing=TimingConfig(),
                         retimes=5)
        try:
            return autotune(out, s, cluster=FakeCluster(infos), pool=pool, trainer=trainer,
                            source=DrawnPipelines(spec)), trainer
        finally:
            pool.shutdown()

    return run


def _beam_ms(w: weights.Weights) -> float:
    """What a synthetic device times beam search with `w` at (SyntheticBuilder's seed)."""
    return fake_runtime_ms((int(w.sha256[:6], 16) + 1_000_000).to_bytes(8, "little"))


class FasterTrainer(ScriptedTrainer):
    """After the rounds in `provisional_after`, a candidate whose beam search the synthetic
    devices time clearly faster than the current weights' wins."""

    def decide(self, table, unit, held_out, current, start, files, **kw) -> Decision:
        scripted = super().decide(table, unit, held_out, current, start, files, **kw)
        if scripted.accepted == "current":
            return scripted
        faster = next(w for n in range(1000)
                      if _beam_ms(w := weights.perturbed(current, n, 0.01))
                      < 0.7 * _beam_ms(current))
        return replace(scripted, weights=faster)


def _seeds(run: Path) -> dict[int, list[int]]:
    """Each round's seeds, from the rows."""
    out: dict[int, set] = {}
    for r in SampleStore(run / "samples").read(["round", "benchmark"]).to_pylist():
        out.setdefault(r["round"], set()).add(seed_of(r["benchmark"]))
    return {k: sorted(v) for k, v in sorted(out.items())}


def test_each_round_draws_new_pipelines_and_holds_out_the_round(pretrain_of, tmp_path):
    run = tmp_path / "pt"
    summary, trainer = pretrain_of(run)
    assert summary.rounds == 3 and summary.pipelines == 6 and summary.rows == 6 * 8
    assert _seeds(run) == {1: [0, 1], 2: [2, 3], 3: [4, 5]}
    # each round's candidates are judged on the round: pipelines they were not trained on
    assert trainer.decided == [1, 2, 3]
    m = RunDir(run).read_manifest()
    assert m.generator == "pretrain" and m.campaign
    assert m.benchmark == "random:size=64,stages=4,version=1"
    assert [p.first_round for p in m.pipelines] == [1, 1, 2, 2, 3, 3]


def test_more_pipelines_later_go_on_with_new_seeds_and_the_same_command_stops(
        pretrain_of, tmp_path, capsys):
    run = tmp_path / "pt"
    pretrain_of(run, pipelines=4)
    _, trainer = pretrain_of(run, pipelines=7)
    assert _seeds(run) == {1: [0, 1], 2: [2, 3], 3: [4, 5], 4: [6]}
    assert trainer.decided == [3, 4]
    again, trainer = pretrain_of(run, pipelines=7)
    assert trainer.decided == [] and again.pipelines == 7
    assert "raise --pipelines" in capsys.readouterr().out


def test_a_round_committed_but_not_finished_is_finished_with_its_own_pipelines(
        pretrain_of, tmp_path, capsys):
    """A crash after a round's commit, before its record: the rerun finishes that round on
    the pipelines it drew, then goes on with new ones."""
    run = tmp_path / "pt"
    pretrain_of(run, pipelines=4)
    rd = RunDir(run)
    rd.round_record_path(2).unlink()  # as if killed during its acceptance
    _, trainer = pretrain_of(run, pipelines=6)
    assert "round 2 was committed but not finished" in capsys.readouterr().out
    assert trainer.decided == [2, 3]
    assert sorted(seed_of(n) for n in rd.read_round(2).pipelines) == [2, 3]
    assert _seeds(run) == {1: [0, 1], 2: [2, 3], 3: [4, 5]}


def test_the_beam_check_retimes_only_the_chosen_few_new_pipelines(pretrain_of, tmp_path):
    run = tmp_path / "pt"
    pretrain_of(run, pipelines=6, per_round=3, beam_checked=2,
                trainer=FasterTrainer(provisional_after={1}))
    check = RunDir(run).read_round(2).beam_check
    assert check is not None and check.pipelines is not None
    # two of round 2's three new pipelines (seeds 3, 4, 5): none of them trained on
    assert len(check.pipelines) == 2
    assert {seed_of(name) for name in check.pipelines} <= {3, 4, 5}


def test_real_validation_pipelines_decide_each_update_in_turn_against_the_current_weights(
        pretrain_of, tmp_path):
    """--validate-on: the beam check re-times real pipelines, beam_checked of them in
    turn, against the current weights' beam search; random pipelines only train."""
    run = tmp_path / "pt"
    real = ("median3x3", "sobel", "dilate3x3")
    pretrain_of(run, pipelines=8, per_round=2, beam_checked=2, validate_on=real,
                trainer=FasterTrainer(provisional_after={1, 2}))
    rd = RunDir(run)
    checked = {r: rd.read_round(r).beam_check for r in (2, 3)}
    assert all(c is not None and c.passed for c in checked.values())
    assert set(checked[2].pipelines) == {"sobel", "dilate3x3"}  # turn 2: 4, 5 mod 3
    assert set(checked[3].pipelines) == {"median3x3", "sobel"}  # turn 3: 6, 7 mod 3
    assert "vs the current weights'" in checked[2].reason
    record = rd.read_best_weights_record()  # confirmed on the next real ones, not random
    assert set(record.confirmation) <= set(real) and len(record.confirmation) == 2
    assert "real validation pipelines" in record.measured


def test_validation_pipelines_are_named_or_random_alone():
    from farm.workflows.pretrain import validation_pipelines

    assert validation_pipelines(["random"]) == ()
    assert [b.label for b in validation_pipelines(["all", "sobel"])] == [
        b.label for b in (catalog.resolve(n) for n in catalog.expand(["all"]))]
    assert len(validation_pipelines(["corpus"])) == 28
    with pytest.raises(BadInput, match="random` alone"):
        validation_pipelines(["random", "sobel"])


def test_the_hand_over_is_confirmed_on_pipelines_drawn_after_every_trained_one(
        pretrain_of, tmp_path):
    run = tmp_path / "pt"
    pretrain_of(run, pipelines=4, beam_checked=2, trainer=FasterTrainer(provisional_after={1}))
    rd = RunDir(run)
    record = rd.read_best_weights_record()
    latest = weights.load(rd.latest_weights)
    assert latest.sha256 != weights.load(rd.weights_path(0)).sha256  # an update was accepted
    assert record.confirmed_for == latest.sha256
    # seeds 4 and 5: drawn after the four trained on
    assert sorted(seed_of(name) for name in record.confirmation) == [4, 5]
    assert record.reason.startswith("confirmed by a fresh re-timing")
    assert weights.load(rd.best_weights).sha256 == latest.sha256
    assert {c.vs_start.verdict for c in record.confirmation.values()} == {"faster"}


def test_a_confirmation_refuses_weights_slower_anywhere_or_slower_on_the_whole():
    def v(ratio, word):
        return verdict.Verdict(ratio, ratio * 0.95, ratio * 1.05, 10, word)

    ok = confirm_module._decide({"a": v(0.8, "faster"), "b": v(1.02, "indistinguishable")},
                                {})
    assert ok.passed and ok.reason.startswith("confirmed")
    one_slower = confirm_module._decide({"a": v(0.5, "faster"), "b": v(1.2, "slower")}, {})
    assert not one_slower.passed and "slower on b" in one_slower.reason
    worse = confirm_module._decide({"a": v(1.05, "indistinguishable"),
                                    "b": v(1.04, "indistinguishable")}, {})
    assert not worse.passed
    assert not confirm_module._decide({}, {}).passed


def test_nothing_accepted_hands_over_the_start_weights_without_a_retiming(pretrain_of,
                                                                         tmp_path):
    run = tmp_path / "pt"
    pretrain_of(run, pipelines=2)
    record = RunDir(run).read_best_weights_record()
    assert "no update was accepted" in record.reason and not record.confirmation


def test_a_resume_with_another_generator_family_is_refused_before_any_write(pretrain_of,
                                                                           tmp_path):
    run = tmp_path / "pt"
    pretrain_of(run, pipelines=2)
    before = (run / "manifest.json").read_bytes()
    with pytest.raises(RunDirError, match="pre-trains on random:size=64,stages=4"):
        pretrain_of(run, pipelines=4, generator="random:stages=5,size=64")
    assert (run / "manifest.json").read_bytes() == before


def test_the_held_out_rank_curve_has_a_point_per_round(pretrain_of, tmp_path):
    run = tmp_path / "pt"
    pretrain_of(run, pipelines=6)
    # the scripted trainer judges nothing: its records carry no rank
    assert [p[:2] for p in curve(RunDir(run))] in ([], [(1, 0), (2, 2), (3, 4)])


def test_the_generator_needs_a_seed_parameter_and_sets_it_itself():
    host = targets.resolve(None)
    with pytest.raises(BadInput, match=r"median3x3 has no seed parameter \(its parameters: "
                       r"none\)"):
        seeded_generator("median3x3", host)
    with pytest.raises(BenchmarkError, match="unknown benchmark 'seed'") as e:
        seeded_generator("seed", host)  # its own fault, not blamed on a missing parameter
    assert "seed parameter" not in str(e.value)
    with pytest.raises(BadInput, match="sets the seed itself"):
        seeded_generator("random:seed=3", host)
    assert dict(seeded_generator(None, host).params)["seed"] == "0"
    hvx = seeded_generator(None, targets.resolve("arm-64-android-hvx"))
    assert dict(hvx.params)["types"] == "int"  # HVX vectorizes integers
    assert dict(seeded_generator(None, host).params).get("types", "float") == "float"


def test_the_pipelines_per_round_are_reckoned_once_per_invocation():
    """Devices that join or leave between rounds must not draw more or fewer pipelines
    than the round count was reckoned with."""
    devices = ["a", "b", "c"]
    t = object.__new__(Pretraining)
    t.source = DrawnPipelines(SimpleNamespace(per_round=None))
    t.pool = SimpleNamespace(usable=lambda: devices)
    assert t.per_round() == 12
    devices.append("d")
    assert t.per_round() == 12


def test_fewer_candidates_per_pipeline_than_the_trainer_learns_from_are_refused(tmp_path,
                                                                                capsys):
    assert_user_error(farm_here(capsys, "pretrain", "--out", tmp_path / "pt",
                                "--per-pipeline", "4"), "--per-pipeline 4", "at least 8")
    assert not (tmp_path / "pt").exists()


def test_the_command_states_the_library_defaults():
    assert pretrain_command.BEAM_CHECKED == pretraining.BEAM_CHECKED
    assert pretrain_command.VALIDATE_ON == api.VALIDATE_ON
    assert pretrain_command.PRETRAIN_COMPILE_TIMEOUT_S == pretraining.PRETRAIN_COMPILE_TIMEOUT_S


@pytest.mark.slow
def test_farm_pretrain_with_the_real_halide_and_ray(tmp_path):
    """Three rounds of two small random pipelines, then a resume that adds one; a real
    pipeline decides each update."""
    out = tmp_path / "pt"
    cmd = [sys.executable, "-m", "farm", "pretrain", "--out", str(out), "--pipelines", "4",
           "--per-pipeline", "8", "--pipelines-per-round", "2", "--beam-checked", "1",
           "--generator", "random:stages=3,size=48", "--validate-on", "gaussian5x5"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "pre-trained on 4 pipelines in 2 rounds" in done.stdout
    assert "held-out rank" in done.stdout
    rows = SampleStore(out / "samples").read(["status", "benchmark", "featurization"])
    assert rows.num_rows == 32
    ok = [r for r in rows.to_pylist() if r["status"] == "ok"]
    assert len(ok) >= 24 and all(r["featurization"] for r in ok)
    assert {seed_of(r["benchmark"]) for r in ok} == {0, 1, 2, 3}
    best = json.loads((out / "weights" / "best.json").read_text())
    assert best["confirmed_for"]
    checks = [RunDir(out).read_round(r).beam_check for r in (1, 2)]
    assert all(c is None or list(c.pipelines) == ["gaussian5x5"] for c in checks)
    more = subprocess.run([*cmd[:7], "5", *cmd[8:]], capture_output=True, text=True,
                          timeout=1200, env=env)
    assert more.returncode == 0, more.stdout + more.stderr
    assert "pre-trained on 5 pipelines in 3 rounds" in more.stdout
    # judged on a real pipeline it never saw; one it trained on is refused
    seen = subprocess.run([sys.executable, "-m", "farm", "evaluate", str(out), "--on",
                           "random:seed=1,stages=3,size=48"], capture_output=True, text=True,
                          timeout=600, env=env)
    assert seen.returncode == 2 and "took part in" in seen.stderr, seen.stderr
    judged = subprocess.run([sys.executable, "-m", "farm", "evaluate", str(out), "--on",
                             "median3x3", "--retimes", "5"], capture_output=True, text=True,
                            timeout=1200, env=env)
    assert judged.returncode == 0, judged.stdout + judged.stderr
    assert "handed-over / baseline:" in judged.stdout
    rows = {r["variant"]: r for r in pq.read_table(out / "evaluate" / "evaluate.parquet")
            .to_pylist()}
    assert set(rows) == {"baseline", "handed-over"}
    assert rows["baseline"]["median_ms"] > 0 and len(rows["baseline"]["retimes_ms"]) == 5


def test_leave_one_out_on_a_pre_training_points_to_evaluate_on(pretrain_of, tmp_path):
    from farm.workflows import evaluation

    run = tmp_path / "pt"
    pretrain_of(run, pipelines=2)
    with pytest.raises(BadInput, match="--on BENCH"):
        evaluation.prepare(run)
    with pytest.raises(BadInput, match="took part in"):
        evaluation.prepare_on(run, ["random:seed=1,stages=4,size=64"])
    assert evaluation.prepare_on(run, ["median3x3"]).names == ["median3x3"]


def test_a_pre_trainings_report_draws_the_model_not_each_pipeline(pretrain_of, tmp_path):
    from farm.report.page import write_page
    from farm.report.plots import CAMPAIGN_NAMES
    from farm.workflows.reports import report

    run = tmp_path / "pt"
    pretrain_of(run, pipelines=4)
    page = write_page(run, tmp_path / "page.html").read_text()
    assert "<title>farm report: pre-training on random" in page and ", 4 pipelines on " in page
    assert "<h2>Pipeline " not in page and "--pipeline NAME --html" in page
    assert page.count("<img ") == len(CAMPAIGN_NAMES)  # the model's plots only
    assert "Candidates per round" not in page  # a pre-training allocates nothing
    (out,) = report(run, out=tmp_path / "report")
    assert [(p, [i.name for i in images]) for p, images in out.plots] == [
        ("", [f"{n}.png" for n in CAMPAIGN_NAMES])]


def test_a_resume_refusal_names_the_option_the_user_typed(pretrain_of, tmp_path):
    run = tmp_path / "pt"
    pretrain_of(run, pipelines=2)
    with pytest.raises(RunDirError, match="--per-pipeline 8, not 9"):
        pretrain_of(run, pipelines=4, per_pipeline=9)
    with pytest.raises(RunDirError, match=r"holds a pre-training \(farm pretrain\), not a "
                                          r"single-pipeline run"):
        m = RunDir(run).read_manifest()
        RunDir(run).check_resumable(dataclasses.replace(m, generator="median3x3",
                                                        campaign=False))
