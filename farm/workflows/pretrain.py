"""`farm pretrain`: a cost model for a device class, trained on new random pipelines.

A pre-training is a campaign whose pipelines are drawn from one generator, seed by seed
(PretrainSpec): each round takes P pipelines it never had, S candidates each (beam search
plus probes, farm.search.plans), times them across the class's devices and trains one
model on every round so far. Acceptance holds out the round itself: its pipelines are new,
so "held-out rank" is the model's ranking of pipelines it never saw, and the rank of the
current weights round after round is the learning curve (`curve`). The beam check re-times
only PretrainSpec.beam_checked of the round's pipelines. At the end the last accepted
weights are confirmed afresh on as many pipelines drawn after every trained one
(farm.tuning.confirm) before they become weights/best.weights.

Rerun the same command to resume; a larger --pipelines goes on with new seeds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from farm.candidate import OK
from farm.errors import BadInput, RunDirError
from farm.machine.targets import TargetInfo
from farm.model import weights
from farm.model.weights import Weights
from farm.pipelines import catalog
from farm.pipelines.benchmark import Benchmark, format_params
from farm.pipelines.catalog import resolve
from farm.pipelines.params import param_names, split_params
from farm.report.progress import format_duration, plural
from farm.store.records import (
    PRETRAIN,
    BestWeightsRecord,
    Manifest,
    PipelineRecord,
    RoundRecord,
)
from farm.store.rundir import RunDir
from farm.tuning.confirm import ToConfirm, confirm
from farm.tuning.loop import Tuning
from farm.tuning.settings import TuneSettings
from farm.tuning.source import Identity
from farm.tuning.state import Track, join

PER_DEVICE = 4  # default new pipelines per round and device: a round keeps them all busy
MIN_PER_ROUND = 8  # the default's floor
NEVER = 2**31 - 1  # the first round of a validation pipeline: it is never one of the run's

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
    beam_checked: int = BEAM_CHECKED  # pipelines the beam check re-times
    # real pipelines that decide: an update is accepted only if its beam search is not
    # slower than the current weights' on them, beam_checked of them per check, in turn;
    # none: the round's new random pipelines decide, against the start weights
    validate_on: tuple[Benchmark, ...] = ()

    def pipeline(self, seed: int) -> Benchmark:
        params = dict(self.generator.params) | {"seed": str(seed)}
        return replace(self.generator, params=tuple(sorted(params.items())))

    @property
    def family(self) -> str:
        """The generator with its parameters but the seed: what the run draws from."""
        rest = [(k, v) for k, v in self.generator.params if k != "seed"]
        return replace(self.generator, params=tuple(rest)).ref


@dataclass(frozen=True)
class DrawnPipelines:
    """A pre-training's pipelines (farm.tuning.source): drawn from one generator, seed by
    seed, round by round; the run is a campaign of them, and its round loop Pretraining."""

    spec: PretrainSpec
    draws = True

    def identity(self, s: TuneSettings, existing: Manifest | None) -> Identity:
        return Identity(True, self.spec.family, PRETRAIN, self.spec.generator.sha256)

    def check_resume(self, run: RunDir, existing: Manifest) -> None:
        # (another generator's identity differs too; this names what to give instead)
        if existing.benchmark != self.spec.family:
            raise RunDirError(f"{run.path} pre-trains on {existing.benchmark}, not "
                              f"{self.spec.family}: resume it with the same --generator, or "
                              "use a new --out")

    def tuning(self, run: RunDir, s: TuneSettings, progress, trainer, cluster,
               pool) -> Pretraining:
        return Pretraining(self, run, s, progress, trainer, cluster, pool)


RANDOM = "random"  # --validate-on random: the round's new random pipelines decide


def validation_pipelines(refs: Sequence[str]) -> tuple[Benchmark, ...]:
    """--validate-on as benchmarks, suites expanded (`corpus`, a family, `all`), each once;
    `random` alone: none (the round's new random pipelines decide, as before)."""
    refs = list(refs)
    if refs == [RANDOM]:
        return ()
    if not refs or RANDOM in refs:
        raise BadInput("--validate-on: name real pipelines (BENCH, or a suite such as "
                       "corpus or a corpus family), or `random` alone for the round's new "
                       "random pipelines")
    out: dict[str, Benchmark] = {}
    for name in catalog.expand(refs):
        b = resolve(name)
        out.setdefault(b.label, b)
    return tuple(out.values())


def seeded_generator(ref: str | None, target: TargetInfo) -> Benchmark:
    """`--generator` as a Benchmark whose seed the pre-training sets (at 0 here): any
    generator with a `seed` parameter; by default the farm's random pipelines, their
    integer family for a Hexagon target (HVX vectorizes integers, not floats)."""
    hexagon = target.offload_hexagon or "hvx" in target.compile
    ref = ref or ("random:types=int" if hexagon else "random")
    base, params = split_params(ref)
    if "seed" in dict(params):
        raise BadInput(f"--generator {ref}: farm pretrain sets the seed itself (one per "
                       "pipeline); leave seed= out")
    found = param_names(resolve(base))  # a generator's other faults: its own message
    if "seed" not in found:
        raise BadInput(f"--generator {ref} has no seed parameter (its parameters: "
                       f"{', '.join(found) or 'none'}): a pre-training draws pipelines seed "
                       "by seed; give a generator with one (e.g. random, or your own with a "
                       "GeneratorParam seed)")
    return resolve(f"{base}:{format_params((*params, ('seed', '0')))}")


def seed_of(label: str) -> int | None:
    """The seed in a pipeline's name (`random:seed=7,version=1` -> 7), None without one."""
    value = dict(split_params(label)[1]).get("seed")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def curve(run: RunDir) -> list[tuple[int, int, float]]:
    """(round, pipelines trained on before it, held-out rank of the weights that planned it
    on its new pipelines): the model's ranking of pipelines it never saw, round by round."""
    m = run.read_manifest()
    if m is None:
        return []
    firsts = [p.first_round for p in m.all_pipelines()]
    out = []
    for r in run.samples.committed_rounds():
        rec = run.read_round(r)
        acc = rec.acceptance if rec else None
        if acc is None or not acc.candidates or acc.candidates[0].accuracy is None:
            continue
        out.append((r, sum(f < r for f in firsts), acc.candidates[0].accuracy))
    return out


@dataclass
class PretrainSummary:
    """What a pre-training ends with (farm.api.pretrain, `farm pretrain`)."""

    run_dir: Path
    rounds: int
    pipelines: int  # trained on (committed)
    rows: int
    ok: int
    best_weights_path: Path | None = None
    best_weights_reason: str = ""
    stopped: str = ""
    elapsed_s: float = 0.0
    curve: list[tuple[int, int, float]] = field(default_factory=list)

    def short(self) -> str:
        return (f"{plural(self.pipelines, 'pipeline')}, {plural(self.rows, 'sample')} "
                f"({self.ok} ok) in {self.run_dir}; best weights {self.best_weights_path}"
                + (f" ({self.best_weights_reason})" if self.best_weights_reason else ""))

    def lines(self) -> list[str]:
        out = [f"pre-trained on {plural(self.pipelines, 'pipeline')} in "
               f"{plural(self.rounds, 'round')}: {plural(self.rows, 'sample')} "
               f"({self.ok} ok), {format_duration(self.elapsed_s)} this time"]
        if self.stopped:
            out.append(f"stopped: {self.stopped}; rerun the same command to go on")
        if self.curve:
            points = self.curve[-6:]
            out.append("held-out rank on pipelines never seen (pipelines trained on: rank): "
                       + ", ".join(f"{n}: {a:.2f}" for _, n, a in points))
        if self.best_weights_path is not None:
            out.append(f"weights handed over: {self.best_weights_path}"
                       + (f" ({self.best_weights_reason})" if self.best_weights_reason else ""))
            out.append(f"use them: farm autotune BENCH --weights {self.best_weights_path} "
                       f"--out RUN_DIR, or farm run BENCH --weights {self.best_weights_path}; "
                       f"judge them on real pipelines: farm evaluate {self.run_dir} --on BENCH")
        return out


class Pretraining(Tuning):
    """A device class's pre-training: Tuning with pipelines drawn round by round."""

    _per_round: int | None = None  # per_round's, once reckoned
    # a random pipeline the compiler cannot build is one of hundreds: only a round whose
    # candidates all failed alike on two pipelines or more is a lasting fault
    FAILED_ALIKE_PIPELINES = 2

    @property
    def spec(self) -> PretrainSpec:
        assert isinstance(self.source, DrawnPipelines)  # how DrawnPipelines starts it
        return self.source.spec

    def per_round(self) -> int:
        # Reckoned once per invocation from the devices at its start: the round count is
        # reckoned from it, and a device joining or leaving between rounds must not make
        # the rounds draw more or fewer pipelines than that count says.
        if self._per_round is None:
            self._per_round = self.spec.per_round or max(MIN_PER_ROUND, PER_DEVICE *
                                                         len(self.pool.usable()))
        return self._per_round

    # --- Tuning's hooks ---------------------------------------------------------------

    def first_pipelines(self, manifest: Manifest) -> tuple[Benchmark, ...]:
        done = self.run_dir.samples.rounds_done()
        pending = [p for p in manifest.all_pipelines() if p.first_round > done]
        # joined by a round that was not committed: that round again; else the last
        # committed round's, which its unfinished steps (if any) need
        last = pending or [p for p in manifest.all_pipelines() if p.first_round == done]
        return tuple(self._pipeline(p.name) for p in last)

    def next_pipelines(self, round_no: int) -> None:
        if any(t.record.first_round == round_no for t in self.state.tracks):
            return  # joined for this round before it was interrupted: redone as they are
        m = self.state.manifest
        benches = self._draw(m, min(self.per_round(), self._remaining(m)))
        self.state.tracks = join(self.run_dir, m, self.progress, benches, announce=False)
        self.progress.pipelines = len(self.state.tracks)

    def held_out(self, names: list[str], round_no: int) -> str | None:
        return None  # the round's rows: its new pipelines, which no candidate saw

    def beam_checked(self, beams: dict) -> list[Track]:
        """PretrainSpec.beam_checked of its real validation pipelines, the next ones in
        turn; without them the first of the round's new pipelines, those whose provisional
        beam search was built in the round first (none was trained on)."""
        if self.spec.validate_on:
            return self._validation(self.state.committed)
        tracks = self.state.tracks
        ready = [t for t in tracks if t.name in beams] + [t for t in tracks
                                                           if t.name not in beams]
        return ready[:self.spec.beam_checked]

    def beam_reference(self, round_no: int) -> Weights | None:
        """On real validation pipelines, the current weights (those that planned the round):
        an update must not make a real pipeline's beam search slower than it is now."""
        if not self.spec.validate_on:
            return None
        return weights.load(self.run_dir.weights_path(round_no - 1))

    def total_rounds(self, done: int) -> int:
        m = self.state.manifest
        pending = sum(p.first_round > done for p in m.all_pipelines())
        left = self._remaining(m)
        return done + (1 if pending else 0) + math.ceil(left / self.per_round())

    def ended(self) -> bool:
        record = self.run_dir.read_best_weights_record()
        latest = self.run_dir.latest_weights
        return record is not None and latest.exists() and \
            record.confirmed_for == weights.load(latest).sha256

    def end(self, stopped: str | None) -> PretrainSummary:
        if stopped is None:
            self.progress.message(
                f"{self.run_dir.path} already holds {plural(self._trained(), 'pipeline')} "
                f"(--pipelines {self.spec.pipelines}); raise --pipelines to pre-train on more")
        else:
            self._hand_over()
        return self._pretrain_summary(stopped or "")

    def pipelines_line(self) -> str:
        return (f"pre-training on {self.spec.family}: {self._trained()} of "
                f"{plural(self.spec.pipelines, 'pipeline')} done, {self.per_round()} new per "
                "round")

    def round_line(self, round_no: int, record: RoundRecord, distinct: int) -> str:
        st, acc = record.statuses, record.acceptance
        held = acc.candidates[0].accuracy if acc and acc.candidates else None
        check = record.beam_check
        left = self.progress.after_this_round()
        return (f"round {round_no}/{self.rounds}: pipelines {self._trained()}/"
                f"{self.spec.pipelines}, {plural(self.state.rows, 'sample')} "
                f"({st.get(OK, 0)} ok this round); held-out rank "
                + (f"{held:.2f}" if held is not None else "-")
                + f" on {plural(len(self.state.tracks), 'new pipeline')}; "
                + (f"beam check {'passed' if check.passed else 'failed'}; " if check else "")
                + (f"{acc.accepted} provisional; " if acc and acc.accepted != "current"
                   else "weights kept; ")
                + f"{record.wall_s:.0f} s, ~{format_duration(left)} left")

    # --- its own ----------------------------------------------------------------------

    def _pipeline(self, label: str) -> Benchmark:
        seed = seed_of(label)
        if seed is None:
            raise RunDirError(f"{self.run_dir.path} lists pipeline {label!r}, which has no "
                              "seed: it is not a pre-training's")
        return self.spec.pipeline(seed)

    def _seeds(self, manifest: Manifest, count: int) -> list[int]:
        """The `count` smallest seeds the run has not drawn."""
        used = {seed_of(p.name) for p in manifest.all_pipelines()}
        out: list[int] = []
        n = 0
        while len(out) < count:
            if n not in used:
                out.append(n)
            n += 1
        return out

    def _draw(self, manifest: Manifest, count: int) -> tuple[Benchmark, ...]:
        return tuple(self.spec.pipeline(n) for n in self._seeds(manifest, max(0, count)))

    def _validation(self, turn: int) -> list[Track]:
        """Turn `turn`'s validation pipelines: beam_checked of them, round-robin."""
        pool = self.spec.validate_on
        k = min(self.spec.beam_checked, len(pool))
        chosen = [pool[(turn * k + i) % len(pool)] for i in range(k)]
        # never a pipeline of the run: no first round, no rows, claims of its own
        return [Track(b, PipelineRecord(b.label, b.ref, b.sha256, first_round=NEVER), b.label)
                for b in chosen]

    def _trained(self) -> int:
        done = self.state.committed
        return sum(p.first_round <= done for p in self.state.manifest.all_pipelines())

    def _remaining(self, manifest: Manifest) -> int:
        return max(0, self.spec.pipelines - len(manifest.all_pipelines()))

    def _hand_over(self) -> None:
        """best.weights: the last accepted weights if a fresh re-timing on pipelines drawn
        after every trained one confirms them; else the start weights."""
        run, s = self.run_dir, self.s
        done = self.state.committed
        if done == 0:
            return
        latest = weights.load(run.latest_weights)
        accepted = run.weights_path(done).name
        if latest.sha256 == s.start_weights.sha256:
            record = BestWeightsRecord(
                weights=run.weights_path(0).name, weights_sha256=latest.sha256,
                reason="no update was accepted: the start weights are handed over",
                confirmed_for=latest.sha256)
            run.write_best_weights(s.start_weights, record)
            return
        if self.spec.validate_on:  # the next real validation pipelines in turn
            fresh = tuple(t.bench for t in self._validation(done + 1))
            which = "real validation pipeline"
        else:
            fresh, which = self._draw(self.state.manifest, self.spec.beam_checked), \
                "new pipeline"
        self.progress.message(
            f"confirming the accepted weights on {plural(len(fresh), which)} "
            f"({', '.join(b.label for b in fresh)}): beam search against the start "
            f"weights', re-timed {plural(s.retimes, 'time')}, interleaved")
        found = confirm(self.pool, s, latest, [ToConfirm(b.label, b) for b in fresh])
        handed = latest if found.passed else s.start_weights
        reason = found.reason + ("" if found.passed else
                                 "; the start weights are handed over")
        self.progress.message(f"weights handed over: {reason}")
        run.write_best_weights(handed, BestWeightsRecord(
            weights=accepted if found.passed else run.weights_path(0).name,
            weights_sha256=handed.sha256, reason=reason, confirmed_for=latest.sha256,
            measured=f"beam search re-timed {plural(s.retimes, 'time')}, interleaved, on "
                     + ("real validation pipelines" if self.spec.validate_on else
                        "pipelines drawn after every trained one"),
            confirmation=found.record(accepted)))

    def _pretrain_summary(self, stopped: str) -> PretrainSummary:
        run = self.run_dir
        statuses = run.samples.read(["status"])["status"].to_pylist()
        record = run.read_best_weights_record()
        return PretrainSummary(
            run.path, self.state.committed, self._trained(), len(statuses),
            sum(x == OK for x in statuses),
            run.best_weights if record is not None else None,
            record.reason if record is not None else "", stopped,
            time.monotonic() - self.started, curve(run))
