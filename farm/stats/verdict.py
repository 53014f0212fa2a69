"""Is A faster than B? Interleaved re-timings and a verdict with a confidence interval.

Timings of memory-bound pipelines on a shared host drift by 10-40% from one
process to the next (FACTS.md), so two numbers never decide. Each schedule is
re-timed several times, interleaved (A, B, C, A, B, C, ...), so that drift hits
all of them alike; re-timing i of A and re-timing i of B form a pair. The ratio
A/B is the median of the paired ratios, with a 95% bootstrap interval (scipy);
the verdict is "faster" or "slower" only when the interval excludes 1.

How ratios read (the one wording, `wording()`; docs/autotuning.md, "How ratios read"): the factor is
always at least 1 and carries its direction, its interval in the same terms: "1.19x faster
[1.15, 1.30]" (B takes 1.19 times A's time), "2.08x slower [1.75, 2.21]"; when the
interval holds 1, the plain ratio of A's time to B's: "indistinguishable (0.98x [0.91,
1.05])". A ratio without an interval (a geometric mean) reads the same way: `factor()`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import numpy as np

# Why one schedule's timing during a round and its final re-timing differ: said once
# wherever both are shown (`farm autotune`'s summary, `farm report`)
TWO_TIMINGS = ("A round times each candidate once, with few repeats, possibly cut off early "
               "and while other candidates compile; the final re-timing times the finalists "
               "again, interleaved and repeated on one device, so its figures are the ones "
               "to compare.")
CONFIDENCE = 0.95
MIN_PAIRS = 5  # fewer paired re-timings: "unmeasured"
FASTER, SLOWER, SAME, UNMEASURED = "faster", "slower", "indistinguishable", "unmeasured"


@dataclass(frozen=True)
class Verdict:
    ratio: float | None  # A's time / B's time (median of paired ratios); < 1: A is faster
    low: float | None
    high: float | None
    pairs: int
    word: str

    def describe(self) -> str:
        """A against B in the farm's one wording (wording()): "1.19x faster [1.15, 1.30]"."""
        return wording(self.ratio, self.low, self.high, self.word, self.pairs)

    def sentence(self, a: str, b: str) -> str:
        """"A is 1.19x faster [1.15, 1.30] than B", "A and B are indistinguishable (...)"."""
        if self.word in (FASTER, SLOWER):
            return f"{a} is {self.describe()} than {b}"
        if self.word == SAME:
            return f"{a} and {b} are {self.describe()}"
        return f"{a} against {b}: {self.describe()}"

    @property
    def decided(self) -> bool:
        return self.word in (FASTER, SLOWER)

    def as_json(self) -> dict:
        return {"ratio": self.ratio, "low": self.low, "high": self.high, "pairs": self.pairs,
                "verdict": self.word}


def wording(ratio: float | None, low: float | None, high: float | None, word: str | None,
            pairs: int | None = None) -> str:
    """THE way the farm writes a ratio of A's time to B's with its interval (`word`: the
    verdict's): the factor >= 1 with its direction, "1.19x faster [1.15, 1.30]" or "2.08x
    slower [1.75, 2.21]"; "indistinguishable (0.98x [0.91, 1.05])" when the interval holds 1;
    the word alone (with the pairs, when known) without a ratio."""
    if ratio is None or low is None or high is None:
        text = word or UNMEASURED
        return f"{text} ({pairs} paired re-timings)" if pairs is not None else text
    if word == FASTER:
        return f"{1 / ratio:.2f}x faster [{1 / high:.2f}, {1 / low:.2f}]"
    if word == SLOWER:
        return f"{ratio:.2f}x slower [{low:.2f}, {high:.2f}]"
    return f"{word or SAME} ({ratio:.2f}x [{low:.2f}, {high:.2f}])"


def factor(ratio: float | None) -> str:
    """A ratio of times without an interval (e.g. a geometric mean), in wording()'s terms:
    "1.18x faster", "1.18x slower", "1.00x (as fast)"; "-" for none."""
    if ratio is None:
        return "-"
    if round(ratio, 2) == 1 or round(1 / ratio, 2) == 1:
        return "1.00x (as fast)"
    return f"{1 / ratio:.2f}x faster" if ratio < 1 else f"{ratio:.2f}x slower"


def compare(a: Sequence[float | None], b: Sequence[float | None],
            confidence: float = CONFIDENCE, seed: int = 0) -> Verdict:
    """A against B from paired re-timings (None: that re-timing failed)."""
    from scipy.stats import bootstrap

    logs = np.array([math.log(x / y) for x, y in zip(a, b, strict=False)
                     if x is not None and y is not None and x > 0 and y > 0])
    if len(logs) < MIN_PAIRS:
        return Verdict(None, None, None, len(logs), UNMEASURED)
    ratio = math.exp(float(np.median(logs)))
    if np.ptp(logs) == 0:
        low = high = ratio
    else:
        ci = bootstrap((logs,), np.median, confidence_level=confidence, n_resamples=2000,
                       method="percentile", random_state=seed).confidence_interval
        low, high = math.exp(ci.low), math.exp(ci.high)
    word = FASTER if high < 1 else SLOWER if low > 1 else SAME
    return Verdict(ratio, low, high, len(logs), word)


def interleave(labels: Sequence[Hashable], time_one: Callable[[Hashable], float | None],
               rounds: int, *, min_rounds: int = MIN_PAIRS,
               decided: Callable[[dict], bool] | None = None,
               on_round: Callable[[int], None] | None = None) -> dict[Hashable, list]:
    """Time every label once per round, in turn, for `rounds` rounds; or stop after
    `min_rounds` once `decided(times)` says the comparisons that matter are settled.
    Returns each label's times, aligned by round (None where a timing failed)."""
    times: dict[Hashable, list] = {label: [] for label in labels}
    for r in range(rounds):
        for label in labels:
            times[label].append(time_one(label))
        if on_round is not None:
            on_round(r + 1)
        if decided is not None and r + 1 >= min_rounds and decided(times):
            break
    return times


def median(values: Sequence[float | None]) -> float | None:
    ok = [v for v in values if v is not None]
    return float(np.median(ok)) if ok else None
