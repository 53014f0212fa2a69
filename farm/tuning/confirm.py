"""The hand-over's confirmation: weights chosen as the best of several are re-timed afresh.

Choosing the fastest of several candidate weights on one re-timing picks, among equals,
the one that re-timing favoured (the winner's curse: a campaign's handed-over weights,
chosen among five on six pipelines at 95%, re-timed 1.16x [1.02, 1.42] slower on one).
So the chosen weights' beam search is re-timed again, interleaved against the start
weights', on timings the choice never saw; they are handed over only if that fresh
re-timing finds them significantly slower on no pipeline and not slower on the whole
(geometric mean at most 1). A pre-training confirms on new pipelines it never trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from farm.candidate import BEAM_SEARCH, Artifact, CandidateSpec
from farm.execution import compare
from farm.execution.pool import DevicePool
from farm.model.weights import Weights
from farm.pipelines.benchmark import Benchmark
from farm.stats import verdict
from farm.store.records import ComparedBeam, VerdictRecord
from farm.tuning.final_inputs import FinalSettings

CONFIRM_TIMEOUT_S = 900.0
CHOSEN, START = "chosen", "start"


@dataclass(frozen=True)
class ToConfirm:
    """One pipeline of a confirmation, with the beam searches' artifacts kept, if any."""

    name: str
    bench: Benchmark
    chosen: Artifact | None = None  # the chosen weights' beam search
    start: Artifact | None = None  # the start weights'


@dataclass(frozen=True)
class Confirmation:
    passed: bool
    reason: str
    verdicts: dict[str, verdict.Verdict]  # by pipeline: the chosen beam vs the start beam
    medians_ms: dict[str, float | None]

    def record(self, weights_file: str) -> dict[str, ComparedBeam]:
        return {name: ComparedBeam(weights=weights_file, median_ms=self.medians_ms.get(name),
                                   vs_start=VerdictRecord.from_json(v.as_json()))
                for name, v in self.verdicts.items()}


def confirm(pool: DevicePool, s: FinalSettings, chosen: Weights,
            pipelines: Sequence[ToConfirm]) -> Confirmation:
    """Re-time the beam search of `chosen` against the start weights' on `pipelines`
    (kept artifacts are re-timed, the others built first), s.retimes times, interleaved."""
    def beam(b: Benchmark, w: Weights) -> CandidateSpec:
        return CandidateSpec(b, s.target, w, parallelism=s.parallelism, **BEAM_SEARCH)

    variants = []
    for p in pipelines:
        variants += [
            compare.Variant((p.name, CHOSEN), spec=None if p.chosen else beam(p.bench, chosen),
                            artifact=p.chosen, against=(p.name, START)),
            compare.Variant((p.name, START), artifact=p.start,
                            spec=None if p.start else beam(p.bench, s.start_weights))]
    pairs = compare.paired(compare.build(pool, variants, CONFIRM_TIMEOUT_S))
    if not pairs:
        return Confirmation(False, "neither beam search could be built for a fresh "
                            "re-timing", {}, {})
    timed = compare.retime(pool, pairs, s.parallelism, replace(s.timing, repeats=5),
                           s.retimes, timeout_s=CONFIRM_TIMEOUT_S)
    verdicts = {p.name: timed[(p.name, CHOSEN)].verdict or verdict.compare([], [])
                for p in pipelines if (p.name, CHOSEN) in pairs}
    medians = {p.name: timed[(p.name, CHOSEN)].median_ms for p in pipelines
               if (p.name, CHOSEN) in pairs}
    return _decide(verdicts, medians)


def _decide(verdicts: dict[str, verdict.Verdict],
            medians: dict[str, float | None]) -> Confirmation:
    ratios = [v.ratio for v in verdicts.values() if v.ratio is not None]
    slower = [name for name, v in verdicts.items() if v.word == verdict.SLOWER]
    gmean = compare.geometric_mean(ratios)
    passed = gmean is not None and gmean <= 1.0 and not slower
    if gmean is None:
        found = (f"no ratio on {len(verdicts)} pipelines (a ratio needs "
                 f"{verdict.MIN_PAIRS} paired re-timings)")
    elif len(verdicts) == 1:
        [(name, v)] = verdicts.items()
        found = f"{v.describe()} than the start weights' ({name})"
    else:
        found = (f"over {len(verdicts)} pipelines, in geometric mean "
                 f"{verdict.factor(gmean)} than the start weights', significantly slower "
                 f"on {', '.join(slower) or 'none'}")
    word = "confirmed" if passed else "not confirmed"
    return Confirmation(passed, f"{word} by a fresh re-timing of its beam search: {found}",
                        verdicts, medians)
