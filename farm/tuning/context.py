"""What every part of a run's round loop works on, in one value (in the spirit of TVM's
TuneContext): the run directory, the settings of this invocation, what the committed rounds
say, and where progress is said. farm.tuning.loop.Tuning makes one; the kept artifacts, the
beam check, the steps after a commit and the round's shares are handed it."""

from __future__ import annotations

from dataclasses import dataclass

from farm.report.progress import Progress
from farm.store.rundir import RunDir
from farm.tuning.settings import TuneSettings
from farm.tuning.state import RunState


@dataclass(frozen=True)
class RunContext:
    run: RunDir
    s: TuneSettings
    state: RunState  # kept up to date round by round (its tracks change in a pre-training)
    progress: Progress
