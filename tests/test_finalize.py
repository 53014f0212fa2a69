"""The weights handed to the user: tuned only when their beam search is significantly faster."""

import json
from dataclasses import replace

from farm import verdict, weights
from farm.finalize import START_LABEL, Finalist, _update_best_weights
from farm.rundir import RunDir


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
                           "sample_id", "compared"}
    assert record["weights"] == "round-000000.weights" and record["beam_ms"] is None
    assert record["weights_sha256"] == start.spec.weights.sha256
    assert list(record["compared"]) == ["beam search with final-x"]
    assert handed == run.read_best_weights_record()
