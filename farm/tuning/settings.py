"""What `farm autotune` is asked to do: the settings of one invocation."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from farm.candidate import DEFAULT_PARALLELISM
from farm.devices.timing import TimingConfig
from farm.machine.targets import TargetInfo
from farm.model import retrain
from farm.model.weights import Weights
from farm.pipelines.benchmark import Benchmark
from farm.search.plans import RoundPlan, Strategy

# Held-out pipelines whose beam search a pre-training's beam check re-times per round: each
# costs a beam-32 compile with the start weights (5-120 s for a random pipeline here),
# and four make one false "slower" at 95% in about ten checks while a round of 8 x 16
# probes costs a few minutes.
BEAM_CHECKED = 4
# A pre-training's compile timeout: a random pipeline is one of hundreds, its beam-32
# compiles took 5-120 s of CPU here, and one beam-1 compile of 5 min held a whole round's
# devices idle. Cut such outliers sooner than a user's own pipeline (600 s).
PRETRAIN_COMPILE_TIMEOUT_S = 240.0


@dataclass(frozen=True)
class PretrainSpec:
    """What makes a run a pre-training (`farm pretrain`): new pipelines of one generator,
    seed by seed, a few candidates each, one model per device class."""

    generator: Benchmark  # has a `seed` parameter; each pipeline sets it (`pipeline`)
    pipelines: int = 256  # in all: a later invocation asking for more goes on with new seeds
    per_round: int | None = None  # new pipelines per round (None: enough for every device)
    beam_checked: int = BEAM_CHECKED  # held-out pipelines the beam check re-times

    def pipeline(self, seed: int) -> Benchmark:
        params = dict(self.generator.params) | {"seed": str(seed)}
        return replace(self.generator, params=tuple(sorted(params.items())))

    @property
    def family(self) -> str:
        """The generator with its parameters but the seed: what the run draws from."""
        rest = [(k, v) for k, v in self.generator.params if k != "seed"]
        return replace(self.generator, params=tuple(rest)).ref


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
    pretrain: PretrainSpec | None = None  # a pre-training: its pipelines come round by round
    # no --weights given: a new run starts from its class's current model (the registry,
    # farm.store.registry), a resumed one from the start weights it began with
    from_registry: bool = False
    # other run directories (absolute paths) whose rows train the model too (--also-train-on)
    also_train_on: tuple[str, ...] = ()
    # a campaign's split of each round across its pipelines (farm.search.allocation): None
    # is `gain` for a new campaign and what a resumed run recorded; weights by pipeline name
    allocation: str | None = None
    pipeline_weights: tuple[tuple[str, float], ...] = ()
