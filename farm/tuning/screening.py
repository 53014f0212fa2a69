"""Screening a round's probes by the cost model before they are built (`--screen F`).

A round autoschedules F draws for each random probe of the accepted weights (the first F a
duplicate would be redrawn with: from the third on, of perturbed weights), has the weights
that planned the round predict each draw's runtime, and builds the fastest predicted
distinct schedules, none the run already has, in those probes' places, as Ansor measures
only the top of its evolutionary population. Autoscheduling a probe without generating its
code costs about a fifth of building it (0.06 s of CPU against 0.35 s for unsharp and
gaussian5x5 here, PERFORMANCE.md), so a round of 32 with F = 4 autoschedules ~60 more
schedules for the price of ~12 builds, and builds only the model's picks.

What the accepted model does not choose stays as drawn: the beam searches, the small beams
near its optimum and the start weights' probes (12 of 32 candidates) are the round's
exploration. Predictions are compared only within one pipeline and parallelism, as the
model ranks them. A pipeline whose draws cannot be predicted (a model that will not load)
keeps its own draws, and the round goes on. The round's record keeps every draw: its seed,
its prediction and whether it was built (store.records.ScreeningRecord).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from farm.candidate import BuildResult, CandidateSpec
from farm.errors import FarmError
from farm.model.featurization import schedule_key
from farm.model.predict import predict as model_predict
from farm.model.weights import Weights
from farm.search.plans import CampaignPlan, RoundPlan
from farm.store.records import ScreenedRecord, ScreeningRecord

Draw = Callable[[list[CandidateSpec]], Sequence[BuildResult]]  # autoschedules, in order


def screen(plan: CampaignPlan, factor: int, names: Sequence[str], planner: Weights,
           parallelism: int, draw: Draw, predict=model_predict,
           held: Callable[[list[str]], list[bool]] = lambda keys: [False] * len(keys)
           ) -> tuple[CampaignPlan, ScreeningRecord]:
    """`plan` with its screenable probes replaced by the model's picks among `factor`
    draws each; `names`: each part's pipeline name for the record ("" for a single run);
    `planner`: the weights that planned the round; `draw`: autoschedules specs (the pool's
    screen); `held(keys)`: which claim keys the run's rows already have (such a draw is
    never picked: its build would be a duplicate)."""
    started = time.monotonic()
    asks: list[tuple[int, int, CandidateSpec]] = []  # (part, slot, alternative)
    attempt: dict[int, int] = {}  # each alternative's draw of its slot, by seed
    for g, part in enumerate(plan.parts):
        if isinstance(part, RoundPlan):
            for i in filter(part.screenable, range(part.batch_size)):
                for d in range(factor):
                    asks.append((g, i, part.alternative(i, d)))
                    attempt[asks[-1][2].seed] = d + 1
    results = list(draw([spec for _, _, spec in asks]))
    parts, records = list(plan.parts), []
    for g, part in enumerate(plan.parts):
        mine = [(slot, spec, r) for (pg, slot, spec), r in zip(asks, results, strict=True)
                if pg == g]
        if not mine:
            continue
        assert isinstance(part, RoundPlan)  # only a RoundPlan's slots were drawn
        repeats = _repeats(part, mine, held)
        picked, predicted, error = _pick([m for m in mine if m[1].seed not in repeats],
                                         planner, parallelism, predict)
        slots = sorted({slot for slot, _, _ in mine})
        parts[g] = replace(part, screened=tuple(
            (slot, seed, attempt[seed]) for slot, seed in zip(slots, picked, strict=False)))
        kept = set(picked)
        records += [ScreenedRecord(names[g], slot, spec.seed, spec.seed in kept,
                                   predicted.get(spec.seed),
                                   error or _failed(r) or repeats.get(spec.seed, ""))
                    for slot, spec, r in mine]
    cpu = sum(r.schedule.autoschedule_s for r in results if r.schedule is not None)
    return CampaignPlan(parts), ScreeningRecord(
        factor, len(asks), sum(r.kept for r in records), round(cpu, 3),
        round(time.monotonic() - started, 3), records)


def _repeats(part: RoundPlan, mine: list[tuple[int, CandidateSpec, BuildResult]],
             held: Callable[[list[str]], list[bool]]) -> dict[int, str]:
    """The draws (by seed) whose schedule a row of the run already has, and why."""
    drawn = [(spec.seed, part.claim_key(slot, schedule_key(features)))
             for slot, spec, features in _featurized(mine)]
    found = held([key for _, key in drawn]) if drawn else []
    return {seed: "the run has this schedule" for (seed, _), yes in zip(drawn, found,
                                                                       strict=True) if yes}


def _pick(mine: list[tuple[int, CandidateSpec, BuildResult]], planner: Weights,
          parallelism: int, predict) -> tuple[list[int], dict[int, float], str]:
    """The seeds to build, best predicted first (at most one per slot, each a distinct
    schedule), every draw's prediction by seed, and why none was predicted ("" if some)."""
    ok = [(spec.seed, features) for _, spec, features in _featurized(mine)]
    if not ok:
        return [], {}, ""
    try:
        costs = predict(planner, [f for _, f in ok], parallelism)
    except (FarmError, RuntimeError, ValueError) as e:  # the round goes on unscreened
        return [], {}, f"not predicted: {e}"
    predicted = {seed: float(c) for (seed, _), c in zip(ok, costs, strict=True)}
    slots = len({slot for slot, _, _ in mine})
    picked: list[int] = []
    keys: set[str] = set()
    for (seed, features), _ in sorted(zip(ok, costs, strict=True), key=lambda x: x[1]):
        key = schedule_key(features)
        if key not in keys and len(picked) < slots:
            keys.add(key)
            picked.append(seed)
    return picked, predicted, ""


def _featurized(mine: list[tuple[int, CandidateSpec, BuildResult]]
                ) -> list[tuple[int, CandidateSpec, bytes]]:
    """The draws that were autoscheduled, with their features."""
    return [(slot, spec, r.schedule.featurization) for slot, spec, r in mine
            if r.ok and r.schedule is not None and r.schedule.featurization]


def _failed(result: BuildResult) -> str:
    return "" if result.ok else (result.error or result.status)[:300]


def describe(record: ScreeningRecord) -> str:
    """The line a round says of its screening."""
    return (f"screening: autoscheduled {record.drawn} draws ({record.factor} per screened "
            f"probe) in {record.wall_s:.1f} s, {record.autoschedule_s:.1f} s of CPU; "
            f"building the model's {record.kept}")
