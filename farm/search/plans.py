"""Planning a round: which candidates, with which seeds, and what counts as a duplicate.

Candidate 0 is beam search with the accepted weights (the ones that round
is planned with). The others explore: most are random probes planned with the
accepted weights, every fourth with the start weights (so exploration does not
narrow to what one model believes), and every eighth a small beam with some
dropout near the accepted model's optimum. A probe that draws a schedule the
run already has is redrawn with a fresh seed, and from its third draw on with
noise on its weights (`~noise`): a small schedule space keeps yielding new
schedules once one model's ranking has been exhausted. When new weights wait
for their beam-search check (farm.tuning.loop), candidate 1 is their beam search
(`@provisional`). Each row's `planner` column says how it was planned
(`b32-d100@accepted`, `b1-d1@start~noise`, ...). Seeds come from the run id,
round, index and attempt, so they differ between runs (a fresh run does not
re-explore the last one's schedules) and a redone round draws the same
candidates again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from farm.candidate import BEAM_SEARCH, RANDOM_PROBE, CandidateSpec, Search
from farm.model.weights import Weights, perturbed
from farm.search.planners import Planner, Role

MAX_ATTEMPTS = 8  # autoschedules per candidate before it is recorded as a duplicate
# (a probe's autoschedule costs ~0.03 s, a fiftieth of its codegen: redrawing is cheap)
NEAR_BEAM: Search = {"beam_size": 4, "random_dropout": 10}  # a small beam near the model's optimum
NOISE_FROM_ATTEMPT = 3  # redraws from here on perturb the probe's weights
NOISE_SCALE = 0.5  # relative noise per attempt beyond the second (farm.model.weights.perturbed)


def noise_scale(attempt: int) -> float:
    """The relative noise on a probe's weights at its `attempt`-th draw (0: none)."""
    return max(0, attempt - NOISE_FROM_ATTEMPT + 1) * NOISE_SCALE


def weights_for(row: dict, by_role: Callable[[Role], Weights]) -> Weights:
    """The weights a sample row was planned with, rebuilt from its `planner`, `seed` and
    `attempts`; `by_role(role)` gives the run's accepted, start or provisional weights of
    the row's round (ValueError for a planner label of no planner)."""
    planner = Planner.parse(row.get("planner"))
    base = by_role(planner.role)
    if not planner.noise:
        return base
    return perturbed(base, row["seed"], noise_scale(row["attempts"]))


def seed_for(run_id: str, round_no: int, index: int, attempt: int) -> int:
    digest = hashlib.sha256(f"{run_id}/{round_no}/{index}/{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF




def schedule_id(round_no: int, index: int, batch_size: int) -> int:
    """Unique within a run's pipeline: rounds are numbered from 1, candidates from 0."""
    return (round_no - 1) * batch_size + index + 1


def scoped_key(scope: str, schedule_key: str) -> str:
    """A schedule key as claimed in a run: a campaign's pipelines claim in one registry, and
    two pipelines' schedules can have equal schedule features, so each claims in its own
    scope (its name). A run of one pipeline claims the plain key."""
    if not scope:
        return schedule_key
    return hashlib.sha256(f"{scope}\0{schedule_key}".encode()).hexdigest()


class SeenSchedules:
    """Schedule keys already in the run, with the schedule id that first had each.

    Kept compact, so the driver's memory hardly grows over a long run: 16 bytes per
    schedule in sorted numpy arrays, plus a small dict of this round's new ones.
    """

    def __init__(self) -> None:
        self._keys = np.empty(0, dtype=np.uint64)
        self._ids = np.empty(0, dtype=np.int64)
        self._new: dict[int, int] = {}

    @staticmethod
    def _key(schedule_key: str) -> int:
        return int(schedule_key[:16], 16)  # 64 bits of a sha256: collisions are negligible

    def holds(self, schedule_key: str) -> bool:
        """Whether a row of the run already has this schedule (nothing is claimed)."""
        key = self._key(schedule_key)
        if key in self._new:
            return True
        i = int(np.searchsorted(self._keys, key))
        return i < len(self._keys) and int(self._keys[i]) == key

    def claim(self, schedule_key: str, owner: int) -> int | None:
        key = self._key(schedule_key)
        twin = self._new.get(key)
        if twin is None:
            i = int(np.searchsorted(self._keys, key))
            if i < len(self._keys) and int(self._keys[i]) == key:
                twin = int(self._ids[i])
        if twin is None:
            self._new[key] = owner
            if len(self._new) >= 4096:
                self.compact()
        return twin if twin != owner else None

    def release(self, schedule_key: str, owner: int) -> None:
        """Forget a schedule `owner` claimed: its measurement failed for a transient reason,
        so a later draw of it is measured again."""
        key = self._key(schedule_key)
        if self._new.get(key) == owner:
            del self._new[key]
            return
        i = int(np.searchsorted(self._keys, key))
        if i < len(self._keys) and int(self._keys[i]) == key and int(self._ids[i]) == owner:
            self._keys, self._ids = np.delete(self._keys, i), np.delete(self._ids, i)

    def compact(self) -> None:
        if self._new:
            keys = np.concatenate([self._keys, np.fromiter(self._new, dtype=np.uint64)])
            ids = np.concatenate([self._ids, np.fromiter(self._new.values(), dtype=np.int64)])
            order = np.argsort(keys, kind="stable")
            self._keys, self._ids, self._new = keys[order], ids[order], {}

    def __len__(self) -> int:
        return len(self._keys) + len(self._new)


class Plan(Protocol):
    """What the scheduler (farm.execution.scheduler) and the compile tasks
    (farm.execution.workers) run: RoundPlan, CampaignPlan, FixedPlan. A plan travels to
    the compile tasks, so it is a plain value."""

    def specs(self) -> list[CandidateSpec]:
        """Every candidate at its first draw, by index."""

    def spec(self, index: int, attempt: int = 1) -> CandidateSpec:
        """Candidate `index` at its `attempt`-th draw (the same every time it is asked)."""

    def first_attempt(self, index: int) -> int:
        """The draw candidate `index` is built from first: 1, or the draw screening picked
        (farm.tuning.screening); a duplicate is redrawn from there on."""

    def owner(self, index: int) -> int | None:
        """The schedule id candidate `index` claims its schedule with (None: no claims)."""

    def is_beam(self, index: int) -> bool:
        """A beam search's artifact is kept (the run re-times it at the end)."""

    def group(self, index: int) -> int:
        """The pipeline a candidate belongs to (runtimes compare only within one)."""

    def precheck(self, index: int) -> bool:
        """Whether a compile task checks the schedule against the run's before building."""

    def claim_key(self, index: int, schedule_key: str) -> str:
        """The key candidate `index` claims its schedule under (scoped_key)."""

    def redraw(self, index: int, attempt: int) -> CandidateSpec | None:
        """The candidate drawn again after `attempt` draws that repeated a schedule; None
        when it is not redrawn (it is then recorded as a duplicate)."""


class FixedPlan:
    """Specs built as given (`farm run`, `farm bench`, finalists): no redraws, no duplicate
    check against a run."""

    def __init__(self, specs: list[CandidateSpec]):
        self._specs = list(specs)

    def specs(self) -> list[CandidateSpec]:
        return list(self._specs)

    def spec(self, index: int, attempt: int = 1) -> CandidateSpec:
        return self._specs[index]

    def first_attempt(self, index: int) -> int:
        return 1

    def precheck(self, index: int) -> bool:
        return False

    def owner(self, index: int) -> int | None:
        return None

    def is_beam(self, index: int) -> bool:
        return False  # nothing to keep for later: its candidates are timed once

    def group(self, index: int) -> int:
        return 0

    def claim_key(self, index: int, schedule_key: str) -> str:
        return schedule_key

    def redraw(self, index: int, attempt: int) -> CandidateSpec | None:
        return None


@dataclass
class RoundPlan:
    """A round's candidates. It travels to the compile tasks (one copy per round in Ray's
    object store), which autoschedule, check for duplicates and redraw there."""

    run_id: str
    round_no: int
    base: CandidateSpec  # benchmark, target, accepted weights, parallelism
    batch_size: int
    start_weights: Weights | None = None  # None: every candidate uses base.weights
    provisional: Weights | None = None  # weights awaiting their beam-search check
    scope: str = ""  # where its schedules are claimed (scoped_key): a campaign's pipeline
    id_stride: int = 0  # schedule ids per round (0: the batch size; see Manifest.id_stride)
    # (index, seed, attempt): the draws screening picked for candidates, built first in
    # place of their own (farm.tuning.screening)
    screened: tuple[tuple[int, int, int], ...] = ()

    def specs(self) -> list[CandidateSpec]:
        return [self.spec(i, 1) for i in range(self.batch_size)]

    def _kind(self, index: int) -> tuple[Search, Weights | None, Role]:
        if index == 0:
            return BEAM_SEARCH, self.base.weights, Role.ACCEPTED
        if index == 1 and self.provisional is not None:
            return BEAM_SEARCH, self.provisional, Role.PROVISIONAL
        if index % 8 == 4:
            return NEAR_BEAM, self.base.weights, Role.ACCEPTED
        if index % 4 == 3 and self.start_weights is not None:
            return RANDOM_PROBE, self.start_weights, Role.START
        return RANDOM_PROBE, self.base.weights, Role.ACCEPTED

    def screenable(self, index: int) -> bool:
        """A random probe of the accepted weights: what screening may draw again. Beam
        searches, the small beams near the optimum and the start weights' probes are built
        as drawn: the round's exploration, which the accepted model does not choose."""
        kind, _, role = self._kind(index)
        return kind == RANDOM_PROBE and role == Role.ACCEPTED

    def alternative(self, index: int, draw: int) -> CandidateSpec:
        """Screenable candidate `index`'s `draw`-th draw for screening (0: its own first):
        the draws a duplicate would be redrawn with (from NOISE_FROM_ATTEMPT on, of
        perturbed weights), so that screening also reaches schedules a small schedule
        space yields only with noise."""
        return self._spec(index, draw + 1,
                          seed_for(self.run_id, self.round_no, index, draw + 1))

    def first_attempt(self, index: int) -> int:
        return next((a for i, _, a in self.screened if i == index), 1)

    def spec(self, index: int, attempt: int = 1) -> CandidateSpec:
        """Candidate `index` at its `attempt`-th draw (the same every time it is asked);
        a screened candidate's first attempt is its pick."""
        picked = next(((s, a) for i, s, a in self.screened if i == index), None)
        if picked is not None and attempt == picked[1]:
            return self._spec(index, attempt, picked[0])
        return self._spec(index, attempt, seed_for(self.run_id, self.round_no, index, attempt))

    def _spec(self, index: int, attempt: int, seed: int) -> CandidateSpec:
        kind, weights, role = self._kind(index)
        noise = bool(noise_scale(attempt)) and kind != BEAM_SEARCH
        if noise:
            assert weights is not None  # a round's base is a searched spec, never manual
            weights = perturbed(weights, seed, noise_scale(attempt))
        spec = replace(self.base, weights=weights, seed=seed, **kind)
        return replace(spec, planner=Planner(spec.beam_size, spec.random_dropout, role,
                                             noise).label)

    def is_beam(self, index: int) -> bool:
        return index == 0 or (index == 1 and self.provisional is not None)

    def group(self, index: int) -> int:
        return 0

    def claim_key(self, index: int, schedule_key: str) -> str:
        return scoped_key(self.scope, schedule_key)

    def precheck(self, index: int) -> bool:
        return not self.is_beam(index)  # beam search is deterministic: a redraw would not
        # change it

    def owner(self, index: int) -> int | None:
        """The schedule id candidate `index` claims its schedule with (SeenSchedules). A
        probe of this round that drew a beam search's schedule first makes the beam search
        a duplicate: no schedule gets two ok rows; its runtime is then its twin's."""
        return schedule_id(self.round_no, index, self.id_stride or self.batch_size)

    def redraw(self, index: int, attempt: int) -> CandidateSpec | None:
        if self.is_beam(index) or attempt >= MAX_ATTEMPTS:
            return None
        return self.spec(index, attempt + 1)


class PipelinePlan(Plan, Protocol):
    """A plan of one pipeline's round, as a Strategy draws it."""

    batch_size: int


class Strategy(Protocol):
    """How a pipeline's round is planned: RoundPlan (the default), or another strategy
    (TuneSettings.strategy). Called with the run id, the round, the base spec (benchmark,
    target, accepted weights, parallelism), the pipeline's candidates this round (its
    share, farm.search.allocation) and the schedule ids' stride."""

    def __call__(self, run_id: str, round_no: int, base: CandidateSpec, batch_size: int, *,
                 start_weights: Weights | None, provisional: Weights | None,
                 scope: str, id_stride: int) -> PipelinePlan: ...


class CampaignPlan:
    """A campaign's round: one RoundPlan per pipeline, run as one batch so that no device
    waits for a pipeline's stragglers. Candidates interleave the pipelines (their k-th
    candidates, in the parts' order, then their (k+1)-th, skipping a pipeline whose share
    is done: with equal shares, index i is pipeline i % P's candidate i // P), so every
    pipeline's beam search starts first. `group(i)` is the pipeline's position in
    `parts`."""

    def __init__(self, parts: Sequence[PipelinePlan]):
        self.parts = list(parts)
        longest = max((p.batch_size for p in self.parts), default=0)
        self._order = [(g, k) for k in range(longest) for g, p in enumerate(self.parts)
                       if k < p.batch_size]

    def locate(self, index: int) -> tuple[PipelinePlan, int]:
        """The pipeline's plan and the candidate's index within it."""
        g, k = self._order[index]
        return self.parts[g], k

    def specs(self) -> list[CandidateSpec]:
        return [self.spec(i, 1) for i in range(len(self._order))]

    def spec(self, index: int, attempt: int = 1) -> CandidateSpec:
        part, local = self.locate(index)
        return part.spec(local, attempt)

    def first_attempt(self, index: int) -> int:
        part, local = self.locate(index)
        return part.first_attempt(local)

    def is_beam(self, index: int) -> bool:
        part, local = self.locate(index)
        return part.is_beam(local)

    def precheck(self, index: int) -> bool:
        part, local = self.locate(index)
        return part.precheck(local)

    def owner(self, index: int) -> int | None:
        part, local = self.locate(index)
        return part.owner(local)

    def redraw(self, index: int, attempt: int) -> CandidateSpec | None:
        part, local = self.locate(index)
        return part.redraw(local, attempt)

    def group(self, index: int) -> int:
        return self._order[index][0]

    def claim_key(self, index: int, schedule_key: str) -> str:
        part, local = self.locate(index)
        return part.claim_key(local, schedule_key)
