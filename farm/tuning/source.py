"""Where a run's pipelines come from: the seam through which a kind of run that is not a
plain one (a pre-training, farm.workflows.pretrain) uses the round loop.

A run tunes the benchmarks its command names (farm.tuning.loop.NamedPipelines): one is a
single run, several a campaign. A pre-training draws new pipelines round by round. Before
any round, validation asks the source what the run is (its manifest's identity) and whether
a run directory may be resumed by it; then the source starts the round loop
(farm.tuning.loop.Tuning, or a subclass whose hooks say what only it knows: which pipelines
are beam-checked, what is held out, what a round of failures means)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from farm.execution.cluster import ClusterLike
from farm.execution.pool import DevicePool
from farm.model.trainer import Trainer
from farm.report.progress import Progress
from farm.store.records import Manifest
from farm.store.rundir import RunDir
from farm.tuning.settings import TuneSettings

CAMPAIGN = "campaign"  # a campaign's manifest benchmark and generator


@dataclass(frozen=True)
class Identity:
    """What makes a run directory this run's: the manifest fields a source decides."""

    campaign: bool
    benchmark: str
    generator: str
    sha256: str


class RoundLoop(Protocol):
    """farm.tuning.loop.Tuning, as a source hands it over (loop.py imports this module)."""

    def run(self) -> Any:
        """Tune to the run's end; its summary."""


class PipelineSource(Protocol):
    @property
    def draws(self) -> bool:
        """Whether the pipelines are drawn round by round (none is named; no allocation
        splits the rounds; pipelines join and leave without a word)."""

    def identity(self, s: TuneSettings, existing: Manifest | None) -> Identity:
        """The run's identity, for a new run or one resumed from `existing`."""

    def check_resume(self, run: RunDir, existing: Manifest) -> None:
        """Refuse (RunDirError) to resume `existing` with this source, before its settings
        are compared."""

    def tuning(self, run: RunDir, s: TuneSettings, progress: Progress, trainer: Trainer,
               cluster: ClusterLike, pool: DevicePool) -> RoundLoop:
        """The round loop over the run (farm.tuning.loop.Tuning), ready to run()."""


def named_identity(s: TuneSettings, existing: Manifest | None) -> Identity:
    """Named benchmarks: several make a campaign, and a campaign stays one when it is
    resumed with fewer (the others are left out this time)."""
    campaign = len(s.benchmarks) > 1 or bool(existing and existing.campaign)
    if campaign:
        return Identity(True, CAMPAIGN, CAMPAIGN, "")
    first = s.benchmarks[0]
    return Identity(False, first.ref, first.label, first.sha256)
