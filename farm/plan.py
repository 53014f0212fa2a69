"""Planning a round: which candidates, with which seeds, and what counts as a duplicate.

Candidate 0 is beam search with the round's weights; the others are random
probes. Seeds come from the run id, round, index and attempt, so they differ
between runs (a fresh run does not re-explore the last one's schedules) and
a redone round draws the same candidates again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from farm.candidate import BEAM_SEARCH, RANDOM_PROBE, CandidateSpec

MAX_ATTEMPTS = 4  # autoschedules per candidate before it is recorded as a duplicate


def seed_for(run_id: str, round_no: int, index: int, attempt: int) -> int:
    digest = hashlib.sha256(f"{run_id}/{round_no}/{index}/{attempt}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def schedule_id(round_no: int, index: int, batch_size: int) -> int:
    """Unique within a run: rounds are numbered from 1, candidates from 0."""
    return (round_no - 1) * batch_size + index + 1


@dataclass
class SeenSchedules:
    """Schedule keys already in the run, with the schedule id that first had each."""

    ids: dict[str, int] = field(default_factory=dict)

    def claim(self, key: str, owner: int) -> int | None:
        twin = self.ids.get(key)
        if twin is None:
            self.ids[key] = owner
        return twin if twin != owner else None

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class RoundPlan:
    run_id: str
    round_no: int
    base: CandidateSpec  # benchmark, target, weights, parallelism
    batch_size: int
    seen: SeenSchedules

    def specs(self) -> list[CandidateSpec]:
        return [self._spec(i, 1) for i in range(self.batch_size)]

    def _spec(self, index: int, attempt: int) -> CandidateSpec:
        kind = BEAM_SEARCH if index == 0 else RANDOM_PROBE
        return replace(self.base, seed=seed_for(self.run_id, self.round_no, index, attempt),
                       **kind)

    def precheck(self, index: int) -> bool:
        return index != 0  # beam search is deterministic: a redraw would not change it

    def claim(self, index: int, schedule_key: str) -> int | None:
        twin = self.seen.claim(schedule_key, schedule_id(self.round_no, index, self.batch_size))
        if index == 0 and twin is not None and twin > schedule_id(self.round_no, 0,
                                                                  self.batch_size):
            # A probe of this round drew the beam-search schedule first (probes are checked
            # before codegen, beam search after). Measure it anyway: its runtime is what
            # tells the weights of this round apart.
            return None
        return twin

    def redraw(self, index: int, attempt: int) -> CandidateSpec | None:
        if index == 0 or attempt >= MAX_ATTEMPTS:
            return None
        return self._spec(index, attempt + 1)
