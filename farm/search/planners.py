"""How a candidate was planned, as a value: its search and which weights drew it.

The samples' `planner` column spells it `b<beam>-d<dropout>@<role>[~noise]`:
`b32-d100@accepted` (beam search with the accepted weights), `b1-d1@start~noise` (a random
probe of the start weights, perturbed because its first draws repeated schedules). It is
written and read here only."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

_LABEL = re.compile(r"b(\d+)-d(\d+)@(\w+?)(~noise)?")


class Role(StrEnum):
    """Which of the run's weights planned a candidate."""

    ACCEPTED = "accepted"  # the weights the round was planned with
    START = "start"  # the run's start weights (every fourth probe)
    PROVISIONAL = "provisional"  # weights awaiting their beam check (candidate 1)


@dataclass(frozen=True)
class Planner:
    beam_size: int | None  # None: a row from before the planner column
    random_dropout: int | None
    role: Role
    noise: bool = False  # the weights were perturbed (a redraw from NOISE_FROM_ATTEMPT on)

    @property
    def label(self) -> str:
        return (f"b{self.beam_size}-d{self.random_dropout}@{self.role.value}"
                + ("~noise" if self.noise else ""))

    @classmethod
    def parse(cls, label: str | None) -> Planner:
        """The planner a row's column names; rows of runs before the column (None or "")
        were planned with the accepted weights. ValueError for a label of no planner."""
        if not label:
            return cls(None, None, Role.ACCEPTED)
        found = _LABEL.fullmatch(label)
        if found is None or found.group(3) not in Role.__members__.values():
            raise ValueError(f"{label!r} names no planner (b<beam>-d<dropout>@<weights>)")
        beam, dropout, role, noise = found.groups()
        return cls(int(beam), int(dropout), Role(role), noise is not None)
