"""The run directory's JSON records, its atomic writes, statuses and column sets."""

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from farm import atomic
from farm.atomic import write_json
from farm.candidate import DUPLICATE, OK, STATUSES, TRANSIENT, Measurement, Status
from farm.errors import DiskFull, RunDirError
from farm.execution.scheduler import Outcome
from farm.model import weights
from farm.report import text as report
from farm.store import samples as store
from farm.store.records import (
    AcceptanceRecord,
    BeamCheck,
    BestWeightsRecord,
    ComparedBeam,
    FinalistRecord,
    JudgedRecord,
    Manifest,
    RetimingRecord,
    RoundRecord,
    VerdictRecord,
)
from farm.store.rundir import RunDir
from farm.store.samples import SCHEMA, SampleStore
from farm.tuning import final_inputs, finalize, state
from farm.tuning.rows import outcome_row
from farm.tuning.summary import summary

V1_RUN = Path(__file__).parent / "data" / "v1-run"  # written by the first release

VERDICT = VerdictRecord(ratio=0.8, low=0.7, high=0.9, pairs=6, verdict="faster")
ROUND = RoundRecord(
    round=3, started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:01:00+00:00",
    candidates=8, weights_sha256="ab" * 32, statuses={"ok": 7, "duplicate": 1},
    autoschedule_s=1.5, precheck_s=0.1, codegen_s=2.0, link_s=0.5, timing_s=1.9,
    distinct_ok=7, beam_ms=0.3, best_ms=0.25, best_so_far_ms=0.2,
    beam_check=BeamCheck(passed=True, reason="its beam search vs the start weights': ...",
                         verdict=VERDICT),
    acceptance=AcceptanceRecord(
        accepted="chain", reason="beyond the noise", weights_sha256="cd" * 32, unit="round",
        held_out="round 3", pairs=40,
        candidates=[JudgedRecord("current", "ab" * 32, accuracy=0.6),
                    JudgedRecord("chain", "cd" * 32, accuracy=0.8, gain=0.2, gain_low=0.05,
                                 train_loss=1.2, train_rate=0.5, train_s=0.3, trained_on=16)]),
    retrain_s=3.0, wall_s=9.5)
BEST_WEIGHTS = BestWeightsRecord(
    weights="final-x.weights", reason="its beam search is 0.80x ... faster",
    weights_sha256="ef" * 32, beam_ms=0.24, measured="beam search re-timed 6 times",
    sample_id=None, compared={"beam search with final-x": ComparedBeam(
        "final-x.weights", 0.24, VERDICT), "beam search with start weights": ComparedBeam(
        "round-000000.weights", 0.3, None)})
RETIMING = RetimingRecord(
    benchmark="dilate3x3", runtime_ms=0.24, finalist="beam search with final-x",
    retimes_ms=[0.25, 0.24, None], weights="final-x.weights",
    weights_file="best/dilate3x3.weights", recorded_ms=None, seed=0, beam_size=32,
    random_dropout=100, parallelism=32, target="x86-64-linux", library="dilate3x3.a",
    link_with="halide_runtime.a",
    finalists=[FinalistRecord("beam search with final-x", 0.24, [0.25, 0.24, None],
                              "final-x.weights", beam_search=True, vs_start=VERDICT),
               FinalistRecord("sample r1-c0", 0.3, [0.3], "", beam_search=True,
                              also=["beam search with start weights"]),
               FinalistRecord("manual schedule", 0.5, [0.5], reference=True)])
MANIFEST = Manifest(run_id="abcd1234", benchmark="dilate3x3", generator="dilate3x3",
                    benchmark_sha256="x", target="t", schedule_target="t", batch_size=8,
                    parallelism=32, start_weights_sha256="w", created_at="then",
                    invocations=[{"argv": ["farm"], "devices": []}])


def test_an_acceptance_says_whether_the_weights_switched_beside_what_it_accepted():
    switched = ROUND.acceptance
    assert switched.accepted == "chain" and switched.switched is True
    assert switched.decision == ("switched to chain (provisional: its beam search is checked "
                                 "next round)")
    kept = AcceptanceRecord.from_json({"accepted": "current"})
    assert kept.accepted == "current" and kept.switched is False
    assert kept.decision == "kept the current weights"
    # properties, not keys: the file keeps `accepted` as it was
    assert set(switched.to_json()) == set(AcceptanceRecord.from_json(
        switched.to_json()).to_json()) and "switched" not in switched.to_json()
    assert VERDICT.word == VERDICT.verdict == "faster"


def test_a_finalists_timing_during_its_round_is_kept_only_when_known():
    timed = FinalistRecord("sample r1-c3", 0.3, [0.3], round_ms=0.41, round_no=1)
    assert timed.to_json()["round_ms"] == 0.41 and FinalistRecord.from_json(
        timed.to_json()) == timed
    assert "round_ms" not in FinalistRecord("beam search with x", 0.3).to_json()


@pytest.mark.parametrize("record", [MANIFEST, ROUND, BEST_WEIGHTS, RETIMING],
                         ids=lambda r: type(r).__name__)
def test_each_record_round_trips_through_json(record):
    text = json.dumps(record.to_json(), sort_keys=True)
    back = type(record).from_json(json.loads(text))
    assert back == record
    assert json.dumps(back.to_json(), sort_keys=True) == text


def test_the_keys_on_disk_are_those_of_the_previous_release(tmp_path):
    run = RunDir(tmp_path)
    run.write_round(ROUND)
    on_disk = json.loads(run.round_record_path(3).read_text())
    assert set(on_disk) == {
        "round", "started_at", "candidates", "weights_sha256", "statuses", "autoschedule_s",
        "precheck_s", "codegen_s", "link_s", "timing_s", "distinct_ok", "beam_ms", "best_ms",
        "best_so_far_ms", "beam_check", "acceptance", "retrain_s", "wall_s", "finished_at"}
    assert set(on_disk["beam_check"]) == {"passed", "verdict", "reason"}
    assert set(on_disk["beam_check"]["verdict"]) == {"ratio", "low", "high", "pairs", "verdict"}
    assert set(on_disk["acceptance"]) == {"accepted", "weights_sha256", "reason", "unit",
                                          "held_out", "pairs", "candidates"}
    # a round without a provisional candidate has no beam check key at all
    run.write_round(replace(ROUND, round=4, beam_check=None))
    assert "beam_check" not in json.loads(run.round_record_path(4).read_text())
    assert run.read_round(4).beam_check is None and run.read_round(5) is None

    staged = run.best.staging()
    run.best.publish(staged, RETIMING)
    on_disk = json.loads((tmp_path / "best" / "runtime.json").read_text())
    assert set(on_disk) == {
        "benchmark", "runtime_ms", "retimes_ms", "finalist", "weights", "weights_file",
        "recorded_ms", "seed", "beam_size", "random_dropout", "parallelism", "target",
        "library", "link_with", "finalists"}
    assert set(on_disk["finalists"][0]) == {"label", "median_ms", "retimes_ms", "weights",
                                            "beam_search", "reference", "also", "vs_start"}
    assert run.read_retiming() == RETIMING
    assert not (tmp_path / ".best.new").exists() and not (tmp_path / ".best.old").exists()


def test_best_weights_have_one_writer_with_one_set_of_fields(tmp_path, baseline):
    run = RunDir(tmp_path)
    (tmp_path / "weights").mkdir()
    run.write_best_weights(baseline, BEST_WEIGHTS)
    assert weights.load(run.best_weights).sha256 == baseline.sha256
    on_disk = json.loads((tmp_path / "weights" / "best.json").read_text())
    assert set(on_disk) == {"weights", "reason", "weights_sha256", "beam_ms", "measured",
                            "sample_id", "compared", "confirmed_for", "confirmation"}
    assert set(on_disk["compared"]["beam search with final-x"]) == {"weights", "median_ms",
                                                                    "vs_start"}
    assert run.read_best_weights_record() == BEST_WEIGHTS


def test_records_of_the_previous_release_read(tmp_path):
    shutil.copytree(V1_RUN, tmp_path / "run")
    run = RunDir(tmp_path / "run")
    manifest = run.read_manifest()
    assert manifest.run_id == "6adb38e1" and manifest.invocations[0]["host"] == "vm"
    old = run.read_round(1)  # before acceptance: "evaluation" and "training" instead
    assert old.acceptance is None and old.beam_check is None
    assert old.beam_ms == pytest.approx(0.2999987) and old.statuses == {"ok": 8}
    assert old.extra["training"]["loss"] == pytest.approx(1.3148)
    # written back, nothing is lost
    assert old.to_json() == json.loads(run.round_record_path(1).read_text())
    # best/runtime.json and weights/best.json as the first release wrote them
    write_json(run.retiming_record_path, {
        "benchmark": "dilate3x3", "runtime_ms": 0.25, "retimes_ms": [0.25, 0.26],
        "finalist": "beam search with latest.weights", "weights": "round-000001.weights",
        "recorded_ms": None, "seed": 0, "beam_size": 32, "random_dropout": 100,
        "parallelism": 32, "target": "x86-64-linux", "library": "dilate3x3.a",
        "link_with": "halide_runtime.a",
        "finalists": [{"label": "beam search with latest.weights", "median_ms": 0.25,
                       "retimes_ms": [0.25, 0.26], "weights": "round-000001.weights",
                       "beam_search": True, "reference": False, "also": []}]})
    write_json(run.best_weights_record, {
        "weights": "round-000001.weights", "beam_ms": 0.25,
        "measured": "beam search re-timed 2 times at the end of the run",
        "sample_id": None, "compared": {"round-000001.weights": 0.25,
                                        "round-000000.weights": 0.3}})
    best = run.read_retiming()
    assert best.weights_file is None and best.finalists[0].vs_start is None
    assert run.retiming_weights(best) == run.weights_path(1)  # no best/NAME.weights yet
    handed = run.read_best_weights_record()
    assert handed.reason == "" and handed.compared["round-000000.weights"].median_ms == 0.3
    text = report.build_report(run.path).text  # the report reads them all
    assert "beam search with latest.weights" in text and "<- best/" in text


def test_unknown_keys_are_kept_and_a_broken_record_is_named(tmp_path):
    future = {**RETIMING.to_json(), "energy_mj": 3.5}
    future["finalists"][0]["power_w"] = 2.0
    record = RetimingRecord.from_json(future)
    assert record.extra == {"energy_mj": 3.5} and record.to_json() == future
    run = RunDir(tmp_path)
    run.round_record_path(1).parent.mkdir()
    run.round_record_path(1).write_text('{"started_at": "then"}')  # no round number
    with pytest.raises(RunDirError, match=r"round-000001\.json is not a farm RoundRecord"):
        run.read_round(1)
    run.round_record_path(2).write_text('{"round": 2,')
    with pytest.raises(RunDirError, match=r"round-000002\.json is unreadable"):
        run.read_round(2)
    run.manifest_path.write_text('{"run_id": "x"}')
    with pytest.raises(RunDirError, match="is not a farm manifest"):
        run.read_manifest()


def _fail(*args, **kwargs):
    raise OSError(28, "No space left on device")


def test_a_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch, baseline):
    path = tmp_path / "r.json"
    write_json(path, {"a": 1})
    with monkeypatch.context() as m:
        m.setattr(os, "replace", _fail)
        with pytest.raises(DiskFull, match=r"no space left on the device of .* while writing "
                           r"r\.json: free some there and rerun"):
            write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 1}

    def half_then_fail(tmp):
        tmp.write_text('{"a": ')
        raise ValueError("the serializer broke")

    with pytest.raises(ValueError, match="serializer"):
        atomic.write_with(path, half_then_fail)
    assert json.loads(path.read_text()) == {"a": 1}

    w = tmp_path / "w.weights"
    weights.write(baseline, w)
    other = weights.perturbed(baseline, seed=1, scale=0.1)
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", _fail)  # the disk fails before the rename
        with pytest.raises(DiskFull):
            weights.write(other, w)
    assert weights.load(w).sha256 == baseline.sha256
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "w.weights"]  # no tmp


def test_writes_are_fsynced_file_and_folder(tmp_path, monkeypatch, baseline):
    synced = []
    real = os.fsync

    def fsync(fd):
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    write_json(tmp_path / "x.json", {"a": 1})
    weights.write(baseline, tmp_path / "x.weights")
    SampleStore(tmp_path / "s").commit_round(1, [{"sample_id": "a", "status": OK}])
    assert synced == [False, True] * 3  # the file before its rename, then its folder


def test_statuses_are_an_enum_stored_as_plain_strings(tmp_path, spec_for):
    assert [s.value for s in STATUSES] == [
        "ok", "duplicate", "compile_error", "compile_timeout", "run_error", "run_timeout",
        "crashed", "device_lost"]
    assert OK is Status.OK and OK == "ok" and f"{OK}, {DUPLICATE:>10}" == "ok,  duplicate"
    assert all(isinstance(s, Status) for s in TRANSIENT)
    outcome = Outcome(3, spec_for("dilate3x3"), Status.OK,
                      measurement=Measurement(Status.OK, runtimes_ms=(1.5, 1.2)))
    row = outcome_row(MANIFEST, 1, outcome)
    assert type(row["status"]) is str and row["status"] == "ok" and row["runtime_ms"] == 1.2
    path = SampleStore(tmp_path).commit_round(1, [row, {**row, "sample_id": "b",
                                                        "status": Status.DUPLICATE}])
    table = pq.read_table(path)
    assert str(table.schema.field("status").type) == "string"
    assert table["status"].to_pylist() == ["ok", "duplicate"]
    assert all(type(s) is str for s in SampleStore(tmp_path).read()["status"].to_pylist())


def test_sample_column_sets_are_declared_once_beside_the_schema():
    for name, columns in store.COLUMN_SETS.items():
        assert set(columns) <= set(SCHEMA.names), name
    assert state.STATE_COLUMNS is store.STATE_COLUMNS
    assert finalize.FINALIST_COLUMNS is store.FINALIST_COLUMNS
    assert report.REPORT_COLUMNS is store.REPORT_COLUMNS
    assert not hasattr(finalize, "ROW_COLUMNS") and not hasattr(report, "COLUMNS")


def test_the_end_of_a_run_takes_values(tmp_path, spec_for):
    shutil.copytree(V1_RUN, tmp_path / "run")
    spec = spec_for("dilate3x3")
    settings = SimpleNamespace(target=spec.target, start_weights=spec.weights, parallelism=32)
    inputs = final_inputs.FinalInputs(RunDir(tmp_path / "run"), settings, "6adb38e1", 1,
                                  fastest=state.TOP_SAMPLES,
                                  pipelines=(final_inputs.FinalPipeline(spec.benchmark),))
    s = summary(inputs, stopped="", elapsed_s=12.0)
    assert (s.rounds, s.rows, s.ok, s.distinct, s.elapsed_s) == (1, 8, 8, 8, 12.0)
    assert s.best_ms is None and s.best_schedule_path is None and s.best_weights_reason == ""
    assert "farm run dilate3x3 --weights" in s.command


def test_a_readers_look_at_the_lock_does_not_refuse_a_driver_but_a_driver_does(tmp_path):
    """holder() (a report page's "in progress?") holds the lock shared for a moment: a
    driver starting then waits it out; a second driver is refused, naming the first."""
    import fcntl
    import threading
    import time

    made = RunDir(tmp_path / "run")
    made.open()
    made.close()
    looking = open(tmp_path / "run" / ".lock")  # noqa: SIM115
    fcntl.flock(looking, fcntl.LOCK_SH)
    threading.Timer(0.5, looking.close).start()
    started = time.monotonic()
    first = RunDir(tmp_path / "run")
    first.open()
    try:
        assert time.monotonic() - started >= 0.4
        with pytest.raises(RunDirError, match=rf"is in use by pid {os.getpid()} on "):
            RunDir(tmp_path / "run").open()
        assert RunDir(tmp_path / "run").holder().startswith(f"pid {os.getpid()} on ")
    finally:
        first.close()
    assert RunDir(tmp_path / "run").holder() is None


def test_a_manifest_says_what_kind_of_run_it_is_from_the_sentinels_files_hold():
    from farm.store.records import IMPORTED, PRETRAIN, RunKind

    base = dict(run_id="r", benchmark="b", generator="b", benchmark_sha256="", target="t",
                schedule_target="t", batch_size=8, parallelism=32, start_weights_sha256="",
                created_at="")
    assert Manifest(**base).kind is RunKind.SINGLE
    assert Manifest(**{**base, "campaign": True}).kind is RunKind.CAMPAIGN
    assert Manifest(**{**base, "campaign": True, "generator": PRETRAIN}).kind \
        is RunKind.PRETRAINING
    assert Manifest(**{**base, "campaign": True, "generator": IMPORTED}).kind \
        is RunKind.IMPORTED
    assert RunKind.PRETRAINING.value == "pre-training"  # the registry's word
