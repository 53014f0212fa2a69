"""What `farm autotune` is asked to do: the settings of one invocation."""

from __future__ import annotations

from dataclasses import dataclass, field

from farm.candidate import DEFAULT_PARALLELISM
from farm.devices.timing import TimingConfig
from farm.machine.targets import TargetInfo
from farm.model import retrain
from farm.model.weights import Weights
from farm.pipelines.benchmark import Benchmark
from farm.search.plans import RoundPlan, Strategy


@dataclass(frozen=True)
class TuneSettings:
    benchmarks: tuple[Benchmark, ...]  # more than one: a campaign
    target: TargetInfo
    start_weights: Weights
    rounds: int = 1
    batch_size: int = 32
    budget_s: float | None = None
    parallelism: int = DEFAULT_PARALLELISM
    device_ids: tuple[str, ...] = ()
    compile_timeout_s: float = 600.0
    timing: TimingConfig = field(default_factory=TimingConfig)
    isolation: str = "pause"
    train_steps: int = retrain.DEFAULT_STEPS  # gradient steps per candidate's training
    retimes: int = 10  # at most, re-timings of each finalist (interleaved); fewer once decided
    screen: int = 1  # draws per screened probe (farm.tuning.screening); 1: no screening
    strategy: Strategy = RoundPlan  # how each pipeline's round is planned (farm.search)
    # no --weights given: a new run starts from its class's current model (the registry,
    # farm.store.registry), a resumed one from the start weights it began with
    from_registry: bool = False
    # other run directories (absolute paths) whose rows train the model too (--also-train-on)
    also_train_on: tuple[str, ...] = ()
    # a campaign's split of each round across its pipelines (farm.search.allocation): None
    # is `gain` for a new campaign and what a resumed run recorded; weights by pipeline name
    allocation: str | None = None
    pipeline_weights: tuple[tuple[str, float], ...] = ()
