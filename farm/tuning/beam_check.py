"""The beam check: provisional weights are accepted only if their beam search, re-timed
interleaved against the start weights' beam search, is not slower.

A better ranking of random probes does not promise a better beam search, so a round
planned with provisional weights runs beam search with them (candidate 1); after its
commit that schedule is re-timed against the start weights' (BEAM_CHECK_RATIO)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from farm.candidate import BEAM_SEARCH, Artifact, CandidateSpec
from farm.errors import WeightsError
from farm.execution import compare
from farm.execution.pool import DevicePool
from farm.model import weights
from farm.model.weights import Weights
from farm.search.planners import Planner, Role
from farm.stats import verdict
from farm.store.records import BeamCheck, ScreeningRecord, VerdictRecord
from farm.tuning.artifacts import KeptArtifacts
from farm.tuning.context import RunContext
from farm.tuning.state import Track

BEAM_CHECK_RATIO = 1.1  # provisional weights' beam search / the start weights', at most
BEAM_CHECK_RETIMES = 5  # interleaved re-timings of the two
BEAM_CHECK_TIMEOUT_S = 900.0
PROVISIONAL, START = "provisional", "start"  # a pipeline's two beam searches


@dataclass(frozen=True)
class Live:
    """What a round in progress knows beyond its committed rows."""

    started: float  # time.monotonic()
    started_at: str
    outcomes: list  # the scheduler's Outcomes (their precheck time)
    beams: dict  # pipeline name -> ObjectRef of its binary of candidate 1 (provisional beam)
    screening: ScreeningRecord | None = None  # what screening did before the round's builds


def ds_field(name: str):
    import pyarrow.dataset as ds

    return ds.field(name)


class BeamChecker:
    def __init__(self, ctx: RunContext, kept: KeptArtifacts, pool: DevicePool,
                 checked: Callable[[dict], list[Track]],
                 reference: Callable[[int], Weights | None] = lambda round_no: None):
        """The round loop's hooks: `checked(beams)`, the pipelines a check re-times;
        `reference(round_no)`, the weights whose beam search the provisional weights' is
        re-timed against (None: the start weights')."""
        self.ctx, self.kept, self.pool, self.checked = ctx, kept, pool, checked
        self.reference = reference

    def check_provisional(self, round_no: int, live: Live | None) -> BeamCheck | None:
        """The beam check of the provisional weights round `round_no` planned candidate 1
        with (None when it planned with none)."""
        planners = self.ctx.run.samples.read(
            ["benchmark", "planner"],
            filter=(ds_field("round") == round_no) & (ds_field("index") == 1)).to_pylist()
        if self.ctx.s.batch_size < 2 or not any(_by_provisional(p["planner"]) for p in planners):
            return None
        try:
            provisional = weights.load(self.ctx.run.provisional_weights)
        except WeightsError as e:  # the file is corrupt or gone: nothing left to check
            check = BeamCheck(passed=False, reason=f"the provisional weights are lost ({e})")
        else:
            check = self.beam_check(provisional, live.beams if live else {},
                                    self.reference(round_no))
        accepted = "accepted" if check.passed else "rejected"
        self.ctx.progress.message(f"round {round_no}: provisional weights {accepted}: "
                                  f"{check.reason}")
        return check

    def beam_check(self, provisional: Weights, beams: dict,
                   reference: Weights | None = None) -> BeamCheck:
        """Re-time each pipeline's beam search with the `provisional` weights (its binary
        from `beams`, by pipeline name, else built) against its beam search with the start
        weights (kept, else built and kept), or with `reference` (built), interleaved
        (farm.execution.compare). Passed when none is significantly slower and their
        geometric mean ratio is at most BEAM_CHECK_RATIO."""
        s, kept = self.ctx.s, self.kept
        against = "the start weights'" if reference is None else "the current weights'"

        def beam(t: Track, w: Weights) -> CandidateSpec:
            return CandidateSpec(t.bench, s.target, w, parallelism=s.parallelism, **BEAM_SEARCH)

        variants = []
        for t in self.checked(beams):
            mine = beams.get(t.name)
            start = kept.refs.get(kept.start_key(t)) if reference is None else None
            variants += [
                compare.Variant((t.name, PROVISIONAL), spec=None if mine else beam(t, provisional),
                                artifact=Artifact(mine) if mine else None,
                                against=(t.name, START)),
                compare.Variant((t.name, START), artifact=start, spec=None if start else beam(
                    t, s.start_weights if reference is None else reference))]
        built = compare.build(self.pool, variants, BEAM_CHECK_TIMEOUT_S)
        for t in self.checked(beams):  # a start beam built here is kept for the next checks
            b = built[(t.name, START)]
            if reference is None and b.ready and b.variant.artifact is None:
                kept.refs[kept.start_key(t)] = Artifact(b.binary, b.library)
        pairs = compare.paired(built)
        if not pairs:
            return BeamCheck(passed=False, reason=f"its beam search or {against} could not "
                             "be built")
        timed = compare.retime(self.pool, pairs, s.parallelism, replace(s.timing, repeats=5),
                               BEAM_CHECK_RETIMES, timeout_s=BEAM_CHECK_TIMEOUT_S)
        checked = [t.name for t in self.checked(beams) if (t.name, PROVISIONAL) in pairs]
        return _decide({name: timed[(name, PROVISIONAL)].verdict or verdict.compare([], [])
                        for name in checked}, against)



def _by_provisional(label: str | None) -> bool:
    """Planned as the provisional weights' beam search (candidate 1 of its round)."""
    try:
        planner = Planner.parse(label)
    except ValueError:  # a row of no planner: not this one
        return False
    return planner.role == Role.PROVISIONAL and not planner.noise


def _decide(verdicts: dict[str, verdict.Verdict], against: str) -> BeamCheck:
    ratios = [v.ratio for v in verdicts.values() if v.ratio is not None]
    slower = [name for name, v in verdicts.items() if v.word == verdict.SLOWER]
    gmean = compare.geometric_mean(ratios)
    passed = gmean is not None and gmean <= BEAM_CHECK_RATIO and not slower
    if len(verdicts) == 1:
        [(_, v)] = verdicts.items()
        reason = (f"its beam search vs {against}: {v.describe()} (accepted at "
                  f"most {BEAM_CHECK_RATIO:g}x and not significantly slower)")
    else:
        reason = (f"its beam searches vs {against} on {len(verdicts)} pipelines: "
                  f"geometric mean {verdict.factor(gmean)}, significantly slower on "
                  f"{', '.join(slower) or 'none'} (accepted at most "
                  f"{BEAM_CHECK_RATIO:g}x and slower on none)")
    first = next(iter(verdicts.values()), None)
    return BeamCheck(passed=passed, reason=reason,
                     verdict=VerdictRecord.from_json(first.as_json())
                     if first is not None and len(verdicts) == 1 else None,
                     pipelines={name: VerdictRecord.from_json(v.as_json())
                                for name, v in verdicts.items()}
                     if len(verdicts) > 1 else None)
