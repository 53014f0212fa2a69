"""Verdicts from interleaved re-timings."""

import numpy as np

from farm.stats import verdict


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


def test_one_wording_for_ratios_the_factor_at_least_1_with_its_direction():
    faster = verdict.Verdict(0.84, 0.77, 0.87, 8, verdict.FASTER)
    assert faster.describe() == "1.19x faster [1.15, 1.30]"
    assert faster.sentence("A", "B") == "A is 1.19x faster [1.15, 1.30] than B"
    slower = verdict.Verdict(2.08, 1.75, 2.21, 8, verdict.SLOWER)
    assert slower.describe() == "2.08x slower [1.75, 2.21]"
    same = verdict.Verdict(0.98, 0.91, 1.05, 8, verdict.SAME)
    assert same.describe() == "indistinguishable (0.98x [0.91, 1.05])"
    assert same.sentence("A", "B") == "A and B are indistinguishable (0.98x [0.91, 1.05])"
    none = verdict.Verdict(None, None, None, 3, verdict.UNMEASURED)
    assert none.describe() == "unmeasured (3 paired re-timings)"
    # a ratio without an interval (a geometric mean) reads the same way
    assert verdict.factor(0.84) == "1.19x faster" and verdict.factor(2.08) == "2.08x slower"
    assert verdict.factor(1.001) == "1.00x (as fast)" and verdict.factor(None) == "-"
    # what compare() decides reads so: its factor is >= 1 and its interval in the same terms
    a, b = [1.0, 1.02, 0.98, 1.01, 0.99, 1.0], [2.0, 2.1, 1.9, 2.05, 1.95, 2.0]
    assert verdict.compare(a, b).describe().startswith("2.")
    assert verdict.compare(b, a).describe().startswith("2.")
