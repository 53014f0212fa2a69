"""What the end of a run works from (FinalInputs: the run, its settings, its pipelines, the
artifacts kept from the rounds) and what it gives back (FinalResult): the values the round
loop (farm.tuning.loop) and farm.tuning.finalize hand each other."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from farm.candidate import Artifact
from farm.devices.timing import TimingConfig
from farm.machine.targets import TargetInfo
from farm.model.weights import Weights
from farm.pipelines.benchmark import Benchmark
from farm.store.records import BestWeightsRecord, RetimingRecord
from farm.store.rundir import RunDir


class FinalSettings(Protocol):
    """The settings of a run that its end uses (farm.tuning.settings.TuneSettings has
    them). Read-only properties: the end never sets them, and TuneSettings is frozen."""

    @property
    def target(self) -> TargetInfo: ...

    @property
    def start_weights(self) -> Weights: ...

    @property
    def also_train_on(self) -> tuple[str, ...]:
        """Other runs whose rows train the model too."""

    @property
    def parallelism(self) -> int: ...

    @property
    def timing(self) -> TimingConfig: ...

    @property
    def retimes(self) -> int:
        """At most, re-timings of each finalist."""

    @property
    def train_steps(self) -> int:
        """Gradient steps of a training call (the final models take multiples)."""


@dataclass(frozen=True)
class FinalPipeline:
    """One pipeline of a run, as its end sees it."""

    benchmark: Benchmark
    scope: str = ""  # its name in a campaign (best/NAME/, its rows' sample ids), else ""
    beam_sample: str | None = None  # the sample of the newest round's beam search
    start_sample: str | None = None  # the sample of beam search with the start weights


@dataclass(frozen=True)
class FinalInputs:
    """What the end of a run works from."""

    run: RunDir
    settings: FinalSettings
    run_id: str  # the manifest's
    committed: int  # rounds committed
    fastest: int  # how many of the fastest distinct samples to re-time, per pipeline
    pipelines: tuple[FinalPipeline, ...]  # the ones this invocation tunes
    # kept from the rounds, by sample id: not built again
    artifacts: Mapping[str, Artifact] = field(default_factory=dict)


@dataclass(frozen=True)
class FinalResult:
    """What the final re-timing decided, as written to the run directory."""

    # best/runtime.json (best/NAME/runtime.json) per pipeline: the winner and the finalists
    retimings: dict[str, RetimingRecord]
    best_weights: BestWeightsRecord  # weights/best.json: the weights handed over, and why
