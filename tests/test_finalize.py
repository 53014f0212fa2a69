"""The weights handed to the user: tuned only when their beam search is significantly faster."""

import json
import shutil
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from farm.model import weights
from farm.stats import verdict
from farm.store.records import BestWeightsRecord, FinalistRecord, RetimingRecord, VerdictRecord
from farm.store.rundir import RunDir
from farm.tuning import final_inputs, final_models
from farm.tuning.confirm import Confirmation
from farm.tuning.finalize import START_LABEL, Finalist, _update_best_weights
from farm.tuning.summary import summary


def _beams(spec_for, tuned_ms):
    start_spec = spec_for("median3x3")
    tuned = weights.perturbed(start_spec.weights, seed=1, scale=0.1)
    start_times, tuned_times = [1.0, 1.02, 0.98, 1.01, 0.99], [tuned_ms * x for x in
                                                                (1.0, 1.01, 0.99, 1.0, 1.02)]
    # the start weights' beam search is also a sample of round 1: no weights file of its own
    start = Finalist("sample r1-c0", start_spec, {"runtime_ms": 1.0}, "",
                     retimes_ms=tuple(start_times), also=[START_LABEL])
    other = Finalist("beam search with final-x", replace(start_spec, weights=tuned), None,
                     "final-x.weights", retimes_ms=tuple(tuned_times),
                     vs_start=verdict.compare(tuned_times, start_times))
    return start, other, tuned


def test_slower_or_indistinguishable_tuned_weights_hand_over_the_start_weights(spec_for,
                                                                                 tmp_path):
    for tuned_ms in (1.3, 1.0):
        start, other, _ = _beams(spec_for, tuned_ms)
        (tmp_path / "weights").mkdir(exist_ok=True)
        _update_best_weights(RunDir(tmp_path), [start, other])
        assert weights.load(tmp_path / "weights" / "best.weights").sha256 == \
            start.spec.weights.sha256
        record = json.loads((tmp_path / "weights" / "best.json").read_text())
        assert "start weights are handed over" in record["reason"]
        assert record["compared"]["beam search with final-x"]["vs_start"]["verdict"] in (
            "slower", "indistinguishable")


def test_significantly_faster_tuned_weights_are_handed_over(spec_for, tmp_path):
    start, other, tuned = _beams(spec_for, 0.7)
    (tmp_path / "weights").mkdir()
    run = RunDir(tmp_path)
    handed = _update_best_weights(run, [start, other])
    assert weights.load(tmp_path / "weights" / "best.weights").sha256 == tuned.sha256
    record = json.loads((tmp_path / "weights" / "best.json").read_text())
    assert record["weights"] == "final-x.weights" and "faster" in record["reason"]
    assert record["weights_sha256"] == tuned.sha256 and record["beam_ms"] == other.median_ms
    assert handed == run.read_best_weights_record() and handed.weights == "final-x.weights"
    assert handed.compared["beam search with final-x"].vs_start.verdict == "faster"


def _confirmation(passed: bool, word: str, ratio: float) -> Confirmation:
    found = verdict.Verdict(ratio, ratio * 0.95, ratio * 1.05, 10, word)
    return Confirmation(passed, f"{'confirmed' if passed else 'not confirmed'} by a fresh "
                        "re-timing", {"median3x3": found}, {"median3x3": ratio})


def test_weights_chosen_but_not_confirmed_afresh_hand_over_the_start_weights(spec_for,
                                                                           tmp_path):
    """The winner's curse: chosen as faster on one re-timing, slower on a fresh one."""
    start, other, tuned = _beams(spec_for, 0.7)
    (tmp_path / "weights").mkdir()
    run = RunDir(tmp_path)
    asked = []

    def refuse(winner, chosen):
        asked.append((winner.label, [f.label for f in chosen]))
        return _confirmation(False, verdict.SLOWER, 1.16)

    handed = _update_best_weights(run, [start, other], refuse)
    assert asked == [("beam search with final-x", ["beam search with final-x"])]
    assert weights.load(run.best_weights).sha256 == start.spec.weights.sha256
    assert handed.confirmed_for == tuned.sha256
    assert handed.reason.endswith("not confirmed by a fresh re-timing; the start weights are "
                                  "handed over")
    assert handed.confirmation["median3x3"].vs_start.verdict == verdict.SLOWER
    confirmed = _update_best_weights(run, [start, other],
                                     lambda w, c: _confirmation(True, verdict.FASTER, 0.7))
    assert weights.load(run.best_weights).sha256 == tuned.sha256
    assert confirmed.weights == "final-x.weights" and confirmed.confirmed_for == tuned.sha256


def test_without_the_start_weights_beam_search_the_start_weights_are_handed_over(spec_for,
                                                                               tmp_path):
    start, other, _ = _beams(spec_for, 0.5)
    run = RunDir(tmp_path)
    (tmp_path / "weights").mkdir()
    weights.write(start.spec.weights, run.weights_path(0))
    handed = _update_best_weights(run, [other])  # the start weights' re-timing failed
    assert weights.load(run.best_weights).sha256 == start.spec.weights.sha256
    record = json.loads((tmp_path / "weights" / "best.json").read_text())
    assert "could not be re-timed" in record["reason"]
    # one writer, one set of fields, whichever way the weights were chosen
    assert set(record) == {"weights", "reason", "weights_sha256", "beam_ms", "measured",
                           "sample_id", "compared", "confirmed_for", "confirmation"}
    assert record["weights"] == "round-000000.weights" and record["beam_ms"] is None
    assert record["weights_sha256"] == start.spec.weights.sha256
    assert list(record["compared"]) == ["beam search with final-x"]
    assert handed == run.read_best_weights_record()


V1_RUN = Path(__file__).parent / "data" / "v1-run"  # a run of the first release


def _ended_run(spec_for, tmp_path, handed: str):
    """A copy of V1_RUN whose end re-timed two finalists and handed over `handed`
    ("final-fresh-long" or "start"); (RunDir, FinalInputs)."""
    shutil.copytree(V1_RUN, tmp_path / "run")
    run = RunDir(tmp_path / "run")
    spec = spec_for("dilate3x3")
    tuned = weights.perturbed(spec.weights, seed=1, scale=0.1)
    (run.path / "weights").mkdir()
    weights.write(spec.weights, run.weights_path(0))
    weights.write(tuned, run.final_weights("final-fresh-long"))
    faster = VerdictRecord(ratio=0.84, low=0.77, high=0.87, pairs=5, verdict="faster")
    run.best.publish(run.best.staging(), RetimingRecord(
        benchmark="dilate3x3", runtime_ms=0.299, finalist="sample r1-c3", recorded_ms=0.35,
        finalists=[FinalistRecord(label="sample r1-c3", median_ms=0.299, vs_start=faster,
                                  round_ms=0.35, round_no=1),
                   FinalistRecord(label=START_LABEL, median_ms=0.30, round_ms=0.416,
                                  round_no=1)]))
    chosen = tuned if handed == "final-fresh-long" else spec.weights
    run.write_best_weights(chosen, BestWeightsRecord(
        weights=f"{handed}.weights" if handed != "start" else "", weights_sha256=chosen.sha256,
        reason="its beam search is 1.19x faster [1.15, 1.30] than with the start weights"
        if handed != "start" else "no tuned weights' beam search was significantly faster"))
    settings = SimpleNamespace(target=spec.target, start_weights=spec.weights, parallelism=32)
    return run, final_inputs.FinalInputs(run, settings, "6adb38e1", 1, fastest=4,
                                     pipelines=(final_inputs.FinalPipeline(spec.benchmark),))


def test_the_summary_names_the_handed_over_model_and_both_timings_of_a_schedule(spec_for,
                                                                                tmp_path):
    run, inputs = _ended_run(spec_for, tmp_path, "final-fresh-long")
    s = summary(inputs, stopped="", elapsed_s=3.0)
    assert s.handed_model.startswith("final-fresh-long, a final model trained on every "
                                     "round's samples from the start weights (4x the steps")
    assert (s.best_round_ms, s.best_round, s.start_beam_ms, s.start_beam_round_ms) == (
        0.35, 1, 0.30, 0.416)
    text = "\n".join(s.lines())
    assert ("best schedule:  0.299 ms (median of its final re-timings; 0.350 ms timed during "
            "round 1)") in text
    assert ("start weights' beam search: 0.300 ms re-timed at the end; 0.416 ms timed during "
            "round 1") in text
    assert verdict.TWO_TIMINGS in text and text.count(verdict.TWO_TIMINGS) == 1
    assert ("handed over:    final-fresh-long, a final model" in text
            and "(4x the steps of a round's training): its beam search is 1.19x faster" in text)
    assert f"latest weights: {run.latest_weights} (what the next round would plan with)" in text
    # the old names still work, with a warning
    with pytest.warns(DeprecationWarning, match="best_schedule_path"):
        assert s.best_schedule == s.best_schedule_path == run.best_schedule("dilate3x3")
    with pytest.warns(DeprecationWarning, match="latest_weights_path"):
        assert s.latest_weights == run.latest_weights


def test_the_start_weights_handed_over_are_named_so(spec_for, tmp_path):
    run, inputs = _ended_run(spec_for, tmp_path, "start")  # best.json names no file
    assert summary(inputs, "", 1.0).handed_model == "the start weights"
    assert final_models.handed_model(run, None).startswith("latest.weights")
