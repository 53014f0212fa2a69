"""Verdicts from interleaved re-timings."""

import numpy as np

from farm import verdict


def test_a_clear_difference_gets_a_verdict_and_an_interval():
    rng = np.random.default_rng(0)
    b = list(rng.uniform(0.9, 1.1, 10))
    a = [x * 0.8 * rng.uniform(0.98, 1.02) for x in b]
    v = verdict.compare(a, b)
    assert v.word == verdict.FASTER and v.low < 0.8 < v.high < 1 and v.decided
    assert verdict.compare(b, a).word == verdict.SLOWER
    assert "faster" in v.describe() and v.as_json()["verdict"] == "faster"


def test_noise_without_difference_is_indistinguishable():
    rng = np.random.default_rng(1)
    a = list(rng.lognormal(0, 0.2, 10))
    b = list(rng.lognormal(0, 0.2, 10))
    v = verdict.compare(a, b)
    assert v.word == verdict.SAME and v.low < 1 < v.high


def test_too_few_pairs_are_unmeasured_and_failures_are_skipped():
    assert verdict.compare([1.0] * 4, [2.0] * 4).word == verdict.UNMEASURED
    v = verdict.compare([1.0, None, 1.0, 1.0, 1.0, 1.0], [2.0, 2.0, None, 2.0, 2.0, 2.0])
    assert v.pairs == 4 and v.word == verdict.UNMEASURED
    same = verdict.compare([1.0] * 6, [2.0] * 6)
    assert same.word == verdict.FASTER and same.ratio == 0.5


def test_interleave_alternates_and_stops_once_decided():
    order = []
    times = verdict.interleave(["a", "b"], lambda k: order.append(k) or 1.0, 10, min_rounds=3,
                               decided=lambda t: True)
    assert order == ["a", "b"] * 3 and times == {"a": [1.0] * 3, "b": [1.0] * 3}
    full = verdict.interleave(["a"], lambda k: None, 4, decided=lambda t: False)
    assert full == {"a": [None] * 4}
