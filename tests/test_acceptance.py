"""Accepting new weights only on held-out evidence, beyond the noise."""


import numpy as np
import pyarrow as pa
import pytest
from samples import probes, table

from farm.model import acceptance, retrain, weights
from farm.model.predict import predict


@pytest.fixture(scope="module")
def randomized():
    """Random weights, as the plugin makes them when it cannot read a file, drawn with a
    fixed seed: the trainer's own --randomize_weights seeds with the clock, and about one
    draw in ten ranked this test's schedules as well as the baseline (CI failed on one)."""
    base = weights.baseline()
    rng = np.random.default_rng(7)
    data = bytearray(base.data)
    for offset, n in weights.buffers(base):
        data[offset:offset + 4 * n] = (rng.standard_normal(n) * 0.1).astype("<f4").tobytes()
    return weights.check(bytes(data), "random weights (seed 7)")


def _truth_of(w, noise, seed=0):
    """Runtimes a model `w` ranks well: its own predictions with multiplicative noise."""
    feats = list(probes())
    rng = np.random.default_rng(seed)
    runtimes = predict(w, feats, 32) * rng.lognormal(0, noise, len(feats))
    return feats, runtimes / runtimes.min()


def test_randomized_weights_are_rejected(randomized, tmp_path):
    base = weights.baseline()
    feats, runtimes = _truth_of(base, 0.1)
    rows = table(feats, runtimes, [1 + i % 2 for i in range(len(feats))])
    d = acceptance.decide(rows, "round", 2, base, base, retrain.SampleFiles(tmp_path),
                          num_cores=32, settings=(), extra=(("random", randomized),))
    assert d.accepted == "current" and d.weights.sha256 == base.sha256
    judged = {c.name: c for c in d.candidates}
    assert judged["random"].accuracy < judged["current"].accuracy
    assert judged["random"].gain_low < 0 and "beyond the noise" in d.reason


def test_a_better_model_is_accepted_over_scrambled_weights(tmp_path):
    base = weights.baseline()
    # deterministic (the trainer seeds its randomization with the clock): noise of 3x each
    # value leaves a model that ranks these schedules no better than chance
    scrambled = weights.perturbed(base, seed=5, scale=3.0)
    feats, runtimes = _truth_of(base, 0.1)
    rows = table(feats, runtimes, [1 + i % 2 for i in range(len(feats))])
    d = acceptance.decide(rows, "round", 2, scrambled, base, retrain.SampleFiles(tmp_path),
                          num_cores=32, settings=(), extra=(("baseline", base),))
    assert d.accepted == "baseline" and d.weights.sha256 == base.sha256
    assert d.record()["candidates"][1]["gain_low"] > 0


def test_candidates_are_trained_without_the_held_out_unit(tmp_path, monkeypatch):
    base = weights.baseline()
    feats, runtimes = _truth_of(base, 0.3, seed=1)
    rows = table(feats, runtimes, [1] * len(feats))
    folds = pa.array([i % 3 for i in range(len(feats))])
    rows = rows.append_column("fold", folds)  # the held-out unit is a parameter
    trained_on = []
    real = retrain.train

    def spy(files, data, initial, **kw):
        trained_on.append(set(data["fold"].to_pylist()))
        return real(files, data, initial, **kw)

    monkeypatch.setattr(retrain, "train", spy)
    d = acceptance.decide(rows, "fold", 2, base, base, retrain.SampleFiles(tmp_path),
                          num_cores=32, settings=acceptance.SETTINGS)
    assert trained_on and all(folds_seen == {0, 1} for folds_seen in trained_on)
    # with nothing accepted yet, "chain-fast" and "fresh-fast" are the same training
    assert len(trained_on) == 2
    assert d.held_out == "fold 2" and d.unit == "fold"
    assert len(d.candidates) == 3 and d.candidates[0].name == "current"


def test_too_little_held_out_evidence_keeps_the_weights(tmp_path):
    base = weights.baseline()
    feats, runtimes = _truth_of(base, 0.1)
    rows = table(feats[:5], runtimes[:5], [2] * 5)
    d = acceptance.decide(rows, "round", 2, base, base, retrain.SampleFiles(tmp_path),
                          num_cores=32)
    assert d.accepted == "current" and "clear pairs" in d.reason
