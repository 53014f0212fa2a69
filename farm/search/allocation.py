"""How a campaign's round is split across its pipelines (`farm autotune --allocation`).

The objective a campaign minimizes is the weighted geometric mean, over its pipelines, of
each pipeline's best runtime divided by its baseline (the beam search of its first round:
beam-32 with the start weights). In logs, sum_p w_p * log(best_p / baseline_p) / sum_p w_p:
a candidate given to pipeline p moves it by about (w_p / W) * g_p, where g_p is the
expected change of log best_p per candidate.

`equal` gives every pipeline the batch size, every round. `gain` (after WARMUP_ROUNDS of
equal shares, which every pipeline gets while its own history is shorter) estimates g_p
as Ansor's task scheduler estimates its tasks' gradients (TVM auto_scheduler
task_scheduler.py), from the pipeline's own rounds:

  g_p = ALPHA * backward_p + (1 - ALPHA) * forward_p
  backward_p: the change of log best_p over its last WINDOW rounds, per candidate spent
  forward_p:  the change of log best_p since its baseline, per candidate spent in all

Ansor weighs its backward term 0.2 because its forward term carries a signal of its own
(the FLOPS that similar tasks reach); ours has no such signal, only the pipeline's average
so far, so the two weigh alike. Every pipeline first gets its floor: its beam search and 3
probes (FLOOR), the round's held-out pipeline HELD_OUT_FLOOR, so the model keeps seeing
each. The rest of the round's total (batch size x pipelines, as under `equal`) goes to
the pipelines in proportion to w_p * max(0, -g_p); when none is improving, equally.

A minimum of noisy timings rewards noise, so an allocation that looks better by its own
round bests is not yet better: comparisons of campaigns re-time their bests interleaved
(PERFORMANCE.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

EQUAL, GAIN = "equal", "gain"
MODES = (EQUAL, GAIN)
WARMUP_ROUNDS = 2
WINDOW = 3
ALPHA = 0.5
FLOOR = 4  # the beam search and 3 probes
HELD_OUT_FLOOR = 8
# Schedule ids of a run whose shares vary are round * ID_STRIDE + index: no share exceeds it
ID_STRIDE = 1 << 16


@dataclass(frozen=True)
class History:
    """One pipeline's rounds so far, as its round records say them."""

    name: str
    baseline_ms: float | None  # its first round's beam search
    best_ms: Sequence[float | None]  # its best so far after each of its rounds
    spent: Sequence[int]  # candidates it had in each of its rounds


@dataclass(frozen=True)
class Share:
    """A pipeline's candidates in a round, and why."""

    name: str
    candidates: int
    estimate: float | None = None  # g_p: expected change of log best per candidate
    why: str = ""


def gradient(h: History) -> tuple[float | None, str]:
    """g_p (None when its bests do not say: no baseline or no best yet) and the figures."""
    bests = [b for b in h.best_ms if b]
    if not bests or not h.baseline_ms or len(h.best_ms) < 2:
        return None, "no best yet"
    now = math.log(bests[-1])
    k = min(WINDOW, len(h.best_ms) - 1)
    before = h.best_ms[-1 - k]
    recent_n = sum(h.spent[-k:])
    backward = (now - math.log(before)) / recent_n if before and recent_n else 0.0
    forward = (now - math.log(h.baseline_ms)) / max(1, sum(h.spent))
    g = ALPHA * backward + (1 - ALPHA) * forward
    return g, (f"log best per candidate: {backward:+.4f} over its last {k} rounds, "
               f"{forward:+.4f} since its baseline")


def allocate(histories: Sequence[History], batch_size: int, round_no: int, mode: str,
             held_out: str | None = None, weights: Mapping[str, float] | None = None
             ) -> list[Share]:
    """The round's shares, one per pipeline of `histories` (in their order); their sum is
    batch_size x pipelines."""
    n = len(histories)
    total = batch_size * n
    if mode == EQUAL or n < 2:
        return [Share(h.name, batch_size, why="equal shares") for h in histories]
    if mode != GAIN:
        raise ValueError(f"allocation {mode!r}: one of {', '.join(MODES)}")
    weights = weights or {}
    warming = {h.name for h in histories if round_no <= WARMUP_ROUNDS
               or len(h.best_ms) < WARMUP_ROUNDS}
    shares: dict[str, int] = {}
    why: dict[str, str] = {}
    estimates: dict[str, float | None] = {}
    for h in histories:
        if h.name in warming:
            shares[h.name] = batch_size
            why[h.name] = f"warm-up: equal shares for its first {WARMUP_ROUNDS} rounds"
        else:
            floor = HELD_OUT_FLOOR if h.name == held_out else FLOOR
            shares[h.name] = min(floor, batch_size)
            estimates[h.name], why[h.name] = gradient(h)
    rest = total - sum(shares.values())
    pulls = {name: weights.get(name, 1.0) * max(0.0, -(g or 0.0))
             for name, g in estimates.items()}
    if rest > 0 and pulls:
        if sum(pulls.values()) <= 0:  # nobody improving: the rest equally
            pulls = {name: 1.0 for name in pulls}
            note = "; none improving: the rest shared equally"
        else:
            note = ""
        extra = _largest_remainder(pulls, rest)
        for name, k in extra.items():
            shares[name] += k
            weight = weights.get(name, 1.0)
            why[name] = (f"floor {min(HELD_OUT_FLOOR if name == held_out else FLOOR, batch_size)}"
                         f"{' (held out)' if name == held_out else ''} + {k} by expected gain"
                         + (f" x weight {weight:g}" if weight != 1.0 else "")
                         + f" ({why[name]}){note}")
    return [Share(h.name, shares[h.name], estimates.get(h.name), why[h.name])
            for h in histories]


def _largest_remainder(pulls: Mapping[str, float], count: int) -> dict[str, int]:
    """`count` split in proportion to `pulls` (whole numbers; ties by name)."""
    total = sum(pulls.values())
    exact = {k: count * v / total for k, v in pulls.items()}
    out = {k: int(v) for k, v in exact.items()}
    left = count - sum(out.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - out[k]), k))[:left]:
        out[k] += 1
    return out


def objective(histories: Sequence[History], weights: Mapping[str, float] | None = None
              ) -> float | None:
    """The weighted geometric mean of best / baseline over the pipelines that have both."""
    weights = weights or {}
    terms = [(weights.get(h.name, 1.0), math.log(h.best_ms[-1] / h.baseline_ms))
             for h in histories if h.best_ms and h.best_ms[-1] and h.baseline_ms]
    if not terms:
        return None
    w = sum(t[0] for t in terms)
    return math.exp(sum(a * b for a, b in terms) / w) if w > 0 else None
