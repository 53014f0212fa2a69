"""`farm autotune`: the round loop. Plan, compile, time, record, accept, resume.

A round is committed atomically (farm.store.samples). Then candidate weights are
trained on the earlier rounds and judged on this one (farm.model.acceptance). A
winner is provisional: a better ranking of random probes does not promise a
better beam search, so the next round also runs beam search with it
(candidate 1), and it is accepted only if that schedule, re-timed interleaved
against the start weights' beam search, is not slower (BEAM_CHECK_RATIO). The
weights after round N (round-N.weights) are the accepted ones; they plan round
N+1. Rerunning the same command resumes after the last committed round, and a
larger --rounds continues the run.

A campaign (several benchmarks) runs every pipeline's batch in one round
(farm.search.plans.CampaignPlan: a batch EACH, so every pipeline gets as many samples
and its own beam search per round as a run of its own, and the trainer, which
skips a pipeline with fewer than 8 distinct schedules, sees all of them) and
trains ONE model on all of them; its acceptance holds out one pipeline per
round, in turn. Devices of several classes (farm.devices.classes) tune one
model per class, each in its own run directory RUN_DIR/classes/CLASS/ and only
on its own devices, at the same time.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import ray

from farm import atomic
from farm.build.builder import Builder, HalideBuilder
from farm.candidate import BEAM_SEARCH, DEFAULT_PARALLELISM, DUPLICATE, OK, TRANSIENT, CandidateSpec
from farm.devices.base import DeviceInfo
from farm.devices.host import check_here
from farm.devices.timing import TimingConfig
from farm.errors import BadInput, Interrupted, LastingFault, RunDirError, WeightsError
from farm.execution.cluster import Cluster
from farm.execution.pool import DevicePool
from farm.execution.scheduler import RoundScheduler, shared
from farm.execution.session import choose
from farm.machine.targets import TargetInfo
from farm.model import acceptance, weights
from farm.model import retrain as costmodel
from farm.model.trainer import HalideTrainer, Trainer
from farm.model.weights import Weights
from farm.pipelines.benchmark import PYTHON, Benchmark, write_files
from farm.report.progress import Progress, format_duration, format_ms, plural
from farm.search.plans import CampaignPlan, RoundPlan, SeenSchedules, scoped_key
from farm.stats import verdict
from farm.store.records import (
    AcceptanceRecord,
    BeamCheck,
    Manifest,
    PipelineRecord,
    RoundRecord,
    VerdictRecord,
)
from farm.store.rundir import RunDir, class_dir, class_dirs, invocation_record, new_run_id, now_iso
from farm.store.samples import STATE_COLUMNS, TRAIN_COLUMNS
from farm.tuning.finalize import FinalInputs, FinalPipeline, TuneSummary, finalize, summary
from farm.tuning.rows import outcome_row, sample_id
from farm.versions import versions

TOP_SAMPLES = 2  # fastest distinct samples whose artifacts are kept to re-time at the end
BEAM_CHECK_RATIO = 1.1  # provisional weights' beam search / the start weights', at most
BEAM_CHECK_RETIMES = 5  # interleaved re-timings of the two
BEAM_CHECK_TIMEOUT_S = 900.0


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
    train_steps: int = costmodel.DEFAULT_STEPS  # gradient steps per candidate's training
    retimes: int = 10  # at most, re-timings of each finalist (interleaved); fewer once decided


def autotune(run_dir: str | os.PathLike, settings: TuneSettings, address: str | None = None,
             progress: Progress | None = None, *, cluster=None, builder: Builder | None = None,
             pool: DevicePool | None = None, trainer: Trainer | None = None,
             opener=None) -> TuneSummary:
    """Tune `settings` into `run_dir` (created, or resumed). Every collaborator may be
    passed in (farm.testing has doubles): `cluster` (farm.execution.cluster.Cluster: joins Ray and
    discovers devices; default: the one at `address`), `builder` (farm.build.builder; default
    Halide's), `pool` (execution.pool.DevicePool over the devices to time on, one class; default:
    one per device class over the settings' devices, compiling with `builder`) and
    `trainer` (farm.model.trainer; default Halide's trainer); `opener` opens the pools' devices
    (default: by their kind; farm.testing.open_synthetic for synthetic ones). With devices
    of several classes the run directory holds one run per class (classes/CLASS/); each
    class's result is printed, and the first class's summary returned."""
    progress = progress or Progress()
    here = Cluster(address).discover_here() if cluster is None else None
    cluster = cluster or Cluster(address)
    builder = builder or HalideBuilder()
    trainer = trainer or HalideTrainer()
    root = Path(run_dir)
    options: dict[str, Any] = {"isolation": settings.isolation}
    if opener is not None:
        options["opener"] = opener
    if not settings.benchmarks:
        raise BadInput("name at least one benchmark")
    # Refused before Ray starts (seconds) whatever needs no cluster: --out, the settings
    # against the run's, and without an address the devices (this machine's).
    chosen = choose(here[0], settings.device_ids, settings.target) if here is not None else []
    _validate(root, settings, progress, trainer, _by_class(chosen))
    check_here(chosen)
    try:
        with cluster:
            if pool is not None:
                return _tune_class(root, settings, progress, trainer, cluster, pool)
            devices = choose(cluster.discover()[0], settings.device_ids, settings.target)
            by_class = _by_class(devices)
            if len(by_class) == 1 and not class_dirs(root):
                [only] = by_class.values()
                one = DevicePool.on_cluster(only, settings.target, builder, cluster, **options)
                try:
                    return _tune_class(root, settings, progress, trainer, cluster, one)
                finally:
                    one.shutdown()
            _validate(root, settings, progress, trainer, by_class)  # every class, before writes
            progress.message(f"{len(by_class)} device classes, one model each, tuned at "
                             f"once into {root}/classes/: {', '.join(sorted(by_class))}")
            pools = {name: DevicePool.on_cluster(members, settings.target, builder, cluster,
                                                 **options)
                     for name, members in sorted(by_class.items())}
            threads = ThreadPoolExecutor(len(pools), thread_name_prefix="farm-class")
            try:
                jobs = {name: threads.submit(_tune_class, class_dir(root, name), settings,
                                             Progress(progress.stream, live=False, label=name),
                                             trainer, cluster, p)
                        for name, p in pools.items()}
                results = {name: job.result() for name, job in jobs.items()}
            finally:
                # on Ctrl-C the other classes' rounds end when Ray shuts down (with the
                # cluster): committed rounds are kept, as for one class
                threads.shutdown(wait=False, cancel_futures=True)
                for p in pools.values():
                    p.shutdown()
            for name, r in results.items():
                progress.message(f"[{name}] {plural(r.rounds, 'round')}, "
                                 f"{plural(r.rows, 'sample')} ({r.ok} ok) in "
                                 f"{r.run_dir}; best weights {r.best_weights_path}"
                                 + (f" ({r.best_weights_reason})" if r.best_weights_reason
                                    else ""))
            return results[sorted(results)[0]]
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted; the committed rounds are kept in {root}. Rerun the same command "
            "to resume") from None


def _by_class(devices: list[DeviceInfo]) -> dict[str, list[DeviceInfo]]:
    by_class: dict[str, list[DeviceInfo]] = {}
    for d in devices:
        by_class.setdefault(str(d.device_class), []).append(d)
    return by_class


def _validate(root: Path, settings: TuneSettings, progress: Progress, trainer: Trainer,
              by_class: dict[str, list[DeviceInfo]]) -> None:
    """Refuse, before anything is written, what this invocation cannot do to the run in
    `root` (_Tuning.validate; with devices of several classes, to each class's run).
    `by_class`: the devices by class, or none when they are not known yet (before Ray
    starts, with an address)."""
    RunDir(root).check_out()
    if len(by_class) <= 1 and not class_dirs(root):
        devices = next(iter(by_class.values()), [])
        _Tuning(RunDir(root), settings, progress, trainer).validate(devices)
        return
    if RunDir(root).manifest_path.exists():
        raise RunDirError(
            f"{root} holds the run of one device class, and the devices are of "
            f"{len(by_class)} ({'; '.join(sorted(by_class))}): continue it on its "
            "class's devices (--device), or tune several classes in a new --out")
    for name, members in sorted(by_class.items()):
        _Tuning(RunDir(class_dir(root, name)), settings, progress, trainer).validate(members)


def _tune_class(path: Path, settings: TuneSettings, progress: Progress, trainer: Trainer,
                cluster, pool: DevicePool) -> TuneSummary:
    run = RunDir(path)
    tuning = _Tuning(run, settings, progress, trainer)
    tuning.validate([h.info for h in pool.usable()])  # before anything is written
    run.open()
    try:
        return tuning.run(cluster, pool)
    finally:
        run.close()


@dataclass(frozen=True)
class _Live:
    """What a round in progress knows beyond its committed rows."""

    started: float  # time.monotonic()
    started_at: str
    outcomes: list  # the scheduler's Outcomes (their precheck time)
    beams: dict  # pipeline name -> ObjectRef of its binary of candidate 1 (provisional beam)


def _ds_field(name: str):
    import pyarrow.dataset as ds

    return ds.field(name)


@dataclass
class _Track:
    """One pipeline of the run, as the round loop follows it."""

    bench: Benchmark
    record: PipelineRecord
    scope: str  # its name in a campaign (its schedules' claims, sample ids, best/NAME/)
    best_ms: float | None = None
    # the fastest distinct samples (runtime, sample id) whose artifacts are kept
    fastest: list[tuple[float, str]] = field(default_factory=list)
    beam_sample: str | None = None  # the newest round's beam search

    @property
    def name(self) -> str:
        """The pipeline's name: its generator's, with its parameters (Benchmark.label)."""
        return self.bench.label

    def keep_below(self) -> float | None:
        return self.fastest[-1][0] if len(self.fastest) == TOP_SAMPLES else None


class _Tuning:
    # The run's schedules: a SeenSchedules (from _load_state) until run() hands it to a
    # SeenActor and keeps the actor's handle here instead (farm.execution.scheduler.shared).
    seen: Any

    def __init__(self, run: RunDir, s: TuneSettings, progress: Progress, trainer: Trainer):
        self.run_dir, self.s, self.progress, self.trainer = run, s, progress, trainer
        self.started = time.monotonic()

    def run(self, cluster, pool: DevicePool) -> TuneSummary:
        s, run = self.s, self.run_dir
        self._pool = pool
        if run.took_over:
            self.progress.message(f"took over the lock of a driver that died ({run.took_over})")
        devices = [h.info for h in pool.usable()]
        existing = self.validate(devices)  # again, now that the run is locked
        self.manifest = run.begin(self._wanted_manifest(existing),
                                  invocation_record(versions(), []))
        self.manifest.device_class = str(devices[0].device_class) if devices else None
        self._join_pipelines()
        self._write_start_files()
        self._load_state()
        done = self.committed
        if done:
            self._finish_round(done)  # what a crash after its commit left undone
        if done >= s.rounds and all(run.retiming_path(t.scope).exists() for t in self.tracks):
            self.progress.message(f"{run.path} already holds {plural(done, 'round')} (--rounds "
                                  f"{s.rounds}); raise --rounds to tune longer")
            return self._summary("")
        stopped = ""
        self.manifest.invocations[-1]["devices"] = [_device_record(d) for d in devices]
        run.write_manifest(self.manifest)
        if done >= s.rounds:  # only the end of the run is left
            rounds = (f"{'all ' if done > 1 else ''}{plural(done, 'round')} done; finishing "
                      "(the final re-timing)")
        else:
            rounds = (f"round {s.rounds} of {s.rounds}" if done + 1 == s.rounds else
                      f"rounds {done + 1}..{s.rounds} of {s.rounds}") + (
                f", {plural(s.batch_size, 'candidate')} per "
                f"{'pipeline and ' if self.manifest.campaign else ''}round")
        self.progress.message(
            f"{', '.join(t.name for t in self.tracks)} on {', '.join(d.id for d in devices)} "
            f"(device class {self.manifest.device_class}): {rounds}, each device holding "
            f"{pool.depth}, run {self.manifest.run_id}")
        self.seen = shared(self.seen)  # compile tasks on every node claim in it
        scheduler = RoundScheduler(pool, threads=s.parallelism, timing=s.timing,
                                   compile_timeout_s=s.compile_timeout_s,
                                   on_update=self.progress.update)
        for round_no in range(done + 1, s.rounds + 1):
            if round_no > done + 1 and s.budget_s is not None and \
                    self._elapsed() >= s.budget_s:  # after a round of this invocation
                stopped = (f"the --budget of {format_duration(s.budget_s)} is spent "
                           f"after {plural(self.committed, 'round')}")
                break
            if round_no > done + 1:  # phones come and go between rounds
                found = [d for d in choose(cluster.discover()[0], s.device_ids,
                                           s.target, strict=False)
                         if str(d.device_class) == self.manifest.device_class]
                for change in pool.refresh(found):
                    self.progress.message(f"devices: {change}")
            self._round(round_no, scheduler)
            for event in pool.events:
                self.progress.message(f"warning: {event}")
            pool.events.clear()
        finalize(self._final_inputs(), pool, self.trainer, self.progress)
        return self._summary(stopped)

    # setup
    def validate(self, devices: list[DeviceInfo]) -> Manifest | None:
        """Refuse, before anything is written, what this invocation cannot do to the run:
        devices of another class, settings that would mix samples, a benchmark named twice
        or whose generator changed. Gives the run's manifest (None for a new run)."""
        names = [b.label for b in self.s.benchmarks]
        if len(set(names)) != len(names):
            raise BadInput(f"a benchmark is named twice: {', '.join(names)}")
        existing = self.run_dir.read_manifest()
        self._check_class(devices, existing)
        existing = self.run_dir.check_resumable(self._wanted_manifest(existing))
        for b in self.s.benchmarks:
            rec = existing.pipeline(b.label) if existing else None
            if rec is not None and rec.sha256 != b.sha256:
                raise RunDirError(f"{b.ref} changed since {self.run_dir.path} tuned it (its "
                                  "source's sha256 differs): restore it, or tune it under "
                                  "another name or in a new --out")
        return existing

    def _check_class(self, devices: list[DeviceInfo], existing: Manifest | None) -> None:
        """One device class per run directory: its timings train one model
        (farm.devices.classes)."""
        classes = sorted({str(d.device_class) for d in devices})
        if len(classes) > 1:
            raise BadInput(f"the devices are of {len(classes)} classes ({'; '.join(classes)}) "
                           "and this run trains one class's model: choose one class's devices "
                           "with --device (see `farm devices`)")
        recorded = existing.device_class if existing else None
        if recorded is not None and classes and recorded != classes[0]:
            raise RunDirError(f"{self.run_dir.path} holds weights of device class {recorded}, "
                              f"not {classes[0]}: continue it on devices of its class "
                              "(--device) or start a new --out")

    def _wanted_manifest(self, existing: Manifest | None) -> Manifest:
        """What the run is. Several benchmarks make a campaign, and a campaign stays one
        when it is resumed with fewer (the others are left out this time)."""
        s = self.s
        campaign = len(s.benchmarks) > 1 or bool(existing and existing.campaign)
        first = s.benchmarks[0]
        return Manifest(run_id=new_run_id(),
                        benchmark="campaign" if campaign else first.ref,
                        generator="campaign" if campaign else first.label,
                        benchmark_sha256="" if campaign else first.sha256,
                        target=s.target.compile, schedule_target=s.target.schedule,
                        batch_size=s.batch_size, parallelism=s.parallelism,
                        start_weights_sha256=s.start_weights.sha256, created_at=now_iso(),
                        campaign=campaign)

    def _join_pipelines(self) -> None:
        """The manifest's pipelines, with the ones this invocation adds; the tracks of the
        ones it tunes. A pipeline whose generator changed is refused: its samples would
        mix two pipelines under one name."""
        m, run = self.manifest, self.run_dir
        m.pipelines = m.all_pipelines()  # a run of the first releases lists none
        names = [b.label for b in self.s.benchmarks]  # validate() checked them
        self.tracks = []
        for b in self.s.benchmarks:
            rec = m.pipeline(b.label)
            if rec is None:
                done = run.samples.rounds_done()  # lost rounds were rounds too
                rec = PipelineRecord(b.label, b.ref, b.sha256, first_round=done + 1)
                m.pipelines.append(rec)
                if done:
                    self.progress.message(f"{b.label} joins the campaign at round {done + 1}")
            self.tracks.append(_Track(b, rec, b.label if m.campaign else ""))
        left = [p.name for p in m.pipelines if p.name not in names]
        if left:
            self.progress.message(f"left out this time: {', '.join(left)} (name them to "
                                  "tune them again)")
        run.write_manifest(m)

    def _write_start_files(self) -> None:
        run = self.run_dir
        if not run.weights_path(0).exists():
            weights.write(self.s.start_weights, run.weights_path(0))
        for t in self.tracks:
            if t.bench.builtin:
                continue
            python = t.bench.kind == PYTHON
            copy = run.generator_copy(t.bench.name if t.scope else None, python)
            # generators/ and generators/NAME/: no link takes the copy out of the run
            atomic.real_dir(copy.parent if python else copy, run.path)
            if python:
                atomic.write_text(copy, t.bench.source)
            else:
                write_files(copy, t.bench.files, t.bench.path)

    def _load_state(self) -> None:
        store = self.run_dir.samples
        rounds, lost = store.committed_rounds(), store.lost_rounds()
        every = sorted(rounds + lost)
        if every != list(range(1, len(every) + 1)):
            raise RunDirError(f"{store.dir} holds rounds {rounds}, not 1..N; it was edited by "
                              "hand. Restore the missing rounds or start a new --out")
        if lost:
            self.progress.message(f"rounds {', '.join(map(str, lost))} are lost (their files "
                                  f"are in {store.dir}/_damaged/): going on without them")
        self.committed = len(every)
        table = store.read(STATE_COLUMNS)
        self.seen = SeenSchedules()
        rows = table.to_pylist()
        scoped = self.manifest.campaign
        for row in sorted(rows, key=lambda r: (r["benchmark"] or "", r["schedule_id"])):
            if row["schedule_key"] and row["status"] not in (DUPLICATE, *TRANSIENT):
                self.seen.claim(scoped_key(row["benchmark"] if scoped else "",
                                           row["schedule_key"]), row["schedule_id"])
        self.rows = len(rows)
        for t in self.tracks:
            t.best_ms = min((r["runtime_ms"] for r in rows if r["status"] == OK
                             and (not t.scope or r["benchmark"] == t.scope)), default=None)
            if self.committed >= t.record.first_round:  # the newest round's beam search
                t.beam_sample = sample_id(self.manifest.run_id, self.committed, 0, t.scope)
        self.progress.best_ms = self.tracks[0].best_ms if len(self.tracks) == 1 else None
        self.progress.pipelines = len(self.tracks)
        self.round_s: list[float] = []
        # Artifacts (binary, library) kept in Ray's object store for the final re-timing, by
        # sample id: per pipeline, the fastest few and the beam search of the best weights.
        self.artifacts: dict[str, tuple] = {}
        self._planned_by_start: dict[int, bool] = {}  # by round: planned with start weights?

    # one round
    def _round(self, round_no: int, scheduler: RoundScheduler) -> None:
        s, run = self.s, self.run_dir
        started, started_iso = time.monotonic(), now_iso()
        used = weights.load(run.weights_path(round_no - 1))
        provisional = self._provisional()
        plan = CampaignPlan([
            RoundPlan(self.manifest.run_id, round_no,
                      CandidateSpec(t.bench, s.target, used, parallelism=s.parallelism),
                      s.batch_size, start_weights=s.start_weights, provisional=provisional,
                      scope=t.scope) for t in self.tracks])
        total = len(self.tracks) * s.batch_size
        self.progress.round_started(round_no, s.rounds, total)
        try:
            outcomes = scheduler.run(plan, best_ms={i: t.best_ms
                                                    for i, t in enumerate(self.tracks)},
                                     seen=self.seen,
                                     keep_below_ms={i: t.keep_below()
                                                    for i, t in enumerate(self.tracks)})
        except LastingFault as e:  # nothing of this round is written
            raise LastingFault(
                f"{e}. Round {round_no} was not committed ("
                f"{plural(self.committed, 'round is', 'rounds are')}, in {run.path}): fix "
                "it and rerun the same command to resume", e.exit_code, e.cause) from None
        # each pipeline's outcomes and rows, by its own candidate index
        mine: list[list] = [[] for _ in self.tracks]
        for o in sorted(outcomes, key=lambda o: o.index):
            mine[plan.group(o.index)].append(replace(o, index=plan.locate(o.index)[1]))
        rows_of = [[outcome_row(self.manifest, round_no, o, t.record) for o in mine[i]]
                   for i, t in enumerate(self.tracks)]
        changed = False
        for t, rows in zip(self.tracks, rows_of, strict=True):
            ids = [r["pipeline_id"] for r in rows if r["pipeline_id"]]
            if t.record.pipeline_id is None and ids:
                t.record.pipeline_id, changed = ids[0], True
                if not self.manifest.campaign:
                    self.manifest.pipeline_id = ids[0]
        if changed:
            run.write_manifest(self.manifest)
        rows = [r for rs in rows_of for r in rs]
        run.samples.commit_round(round_no, rows)
        self.committed = round_no
        run.samples.compact()
        self.rows += len(rows)
        for t, trows in zip(self.tracks, rows_of, strict=True):
            best = min((r["runtime_ms"] for r in trows if r["status"] == OK), default=None)
            if best is not None and (t.best_ms is None or best < t.best_ms):
                t.best_ms = best
        self.progress.best_ms = self.tracks[0].best_ms if len(self.tracks) == 1 else None
        beams = {t.name: o[1].artifact[0] for t, o in zip(self.tracks, mine, strict=True)
                 if len(o) > 1 and o[1].status == OK and o[1].artifact}
        record = self._finish_round(round_no, _Live(started, started_iso, outcomes, beams))
        self._keep_binaries(rows_of, mine)
        self.round_s.append(record.wall_s)
        self.progress.round_s = sum(self.round_s) / len(self.round_s)
        distinct = ray.get(self.seen.size.remote())
        self.progress.round_finished(_round_line(round_no, s.rounds, record, distinct))

    # the steps after a round's commit: each one's result is on disk before the next starts,
    # so a run resumed after a crash anywhere in them redoes only what is missing
    def _finish_round(self, round_no: int, live: _Live | None = None) -> RoundRecord:
        """Check the provisional weights round `round_no` planned with, train and judge new
        candidates, and write the round's record. Each step is recorded in the round's part
        record (RunDir.round_part_path) once done; a resumed run (`live` None) validates
        what the last round left and redoes the steps that are missing or broken."""
        run = self.run_dir
        record, whole = self._last_record(round_no) if live is None else (None, False)
        if whole:
            assert record is not None
            return record
        if record is not None:  # its weights broke after it was written: decide them again
            part = replace(record, steps=["batch", "beam_check"])
        else:
            part = (run.read_round_part(round_no) if live is None else None) or \
                self._batch_record(round_no, live)
        if live is None:
            self.progress.message(f"round {round_no} was committed but not finished "
                                  f"({', '.join(part.steps or ['its commit'])} done): "
                                  "finishing it")
            part = replace(part, resumed=True)
        steps = list(part.steps or ["batch"])
        run.write_round_part(replace(part, steps=steps))
        if "beam_check" not in steps:
            steps.append("beam_check")
            part = replace(part, beam_check=self._check_provisional(round_no, live),
                           steps=steps)
            run.write_round_part(part)
        current = weights.load(run.weights_path(round_no - 1))
        check = part.beam_check
        if check is not None:
            if "provisional_kept" not in steps:
                # kept under the round it planned a candidate in, so that sample can be
                # rebuilt; once, as a step: a crash after the acceptance wrote the next
                # provisional weights must not move those
                if run.provisional_weights.exists() and \
                        not run.provisional_used(round_no).exists():
                    os.replace(run.provisional_weights, run.provisional_used(round_no))
                    atomic.fsync_dir(run.provisional_weights.parent)  # before it is a step
                steps.append("provisional_kept")
                part = replace(part, steps=steps)
                run.write_round_part(part)
            if check.passed:
                current = weights.load(run.provisional_used(round_no))
        train_start = time.monotonic()
        part = replace(part, acceptance=self._accept(round_no, current),
                       retrain_s=time.monotonic() - train_start, steps=None,
                       finished_at=now_iso(),
                       wall_s=time.monotonic() - live.started if live else part.wall_s)
        run.write_round(part)
        run.drop_round_part(round_no)
        return part

    def _last_record(self, round_no: int) -> tuple[RoundRecord | None, bool]:
        """Round `round_no`'s record (None when missing or unreadable), and whether it and
        the weights it decided are whole; when they are, latest.weights is made to match."""
        run = self.run_dir
        try:
            record = run.read_round(round_no)
        except RunDirError as e:
            self.progress.message(f"round {round_no}: {e}; finishing it again")
            record = None
        broken = False
        try:
            if run.provisional_weights.exists():
                weights.load(run.provisional_weights)
        except WeightsError as e:  # unusable: as if it were not there
            self.progress.message(f"{e}; dropping it")
            run.provisional_weights.unlink()
            broken = True  # if the round's acceptance made it, that is done again
        try:
            decided = weights.load(run.weights_path(round_no))
        except WeightsError as e:
            if record is not None:  # the round was done: only its weights are decided again
                self.progress.message(f"round {round_no}: {e}; deciding its weights again")
            return record, False
        if record is None or broken:
            return record, False
        if not run.latest_weights.exists() or \
                run.latest_weights.read_bytes() != decided.data:
            weights.write(decided, run.latest_weights)  # a crash between the two writes
        run.drop_round_part(round_no)
        return record, True

    def _batch_record(self, round_no: int, live: _Live | None) -> RoundRecord:
        """The round's figures, from its committed rows (and, live, from its outcomes)."""
        rows = self.run_dir.samples.read(filter=_ds_field("round") == round_no).to_pylist()
        rows.sort(key=lambda r: (r["benchmark"] or "", r["index"]))
        per_pipeline = {}
        for t in self.tracks:
            trows = [r for r in rows if not t.scope or r["benchmark"] == t.scope]
            if not trows:
                continue
            best = min((r["runtime_ms"] for r in trows if r["status"] == OK), default=None)
            per_pipeline[t.name] = {"beam_ms": self._beam_ms(t, trows[0]), "best_ms": best,
                                    "best_so_far_ms": t.best_ms,
                                    "ok": sum(r["status"] == OK for r in trows)}
        one = per_pipeline.get(self.tracks[0].name, {}) if len(self.tracks) == 1 else {}
        used = weights.load(self.run_dir.weights_path(round_no - 1))
        return RoundRecord(
            round=round_no, started_at=live.started_at if live else "", candidates=len(rows),
            weights_sha256=used.sha256, **_round_figures(rows, live.outcomes if live else []),
            beam_ms=one.get("beam_ms"), best_ms=one.get("best_ms"),
            best_so_far_ms=one.get("best_so_far_ms"),
            wall_s=time.monotonic() - live.started if live else 0.0,
            pipelines=per_pipeline if self.manifest.campaign else None, steps=["batch"])

    def _check_provisional(self, round_no: int, live: _Live | None) -> BeamCheck | None:
        """The beam check of the provisional weights round `round_no` planned candidate 1
        with (None when it planned with none)."""
        run, s = self.run_dir, self.s
        planners = self.run_dir.samples.read(
            ["benchmark", "planner"],
            filter=(_ds_field("round") == round_no) & (_ds_field("index") == 1)).to_pylist()
        if s.batch_size < 2 or not any((p["planner"] or "").endswith("@provisional")
                                       for p in planners):
            return None
        try:
            provisional = weights.load(run.provisional_weights)
        except WeightsError as e:  # the file is corrupt or gone: nothing left to check
            check = BeamCheck(passed=False, reason=f"the provisional weights are lost ({e})")
        else:
            check = self._beam_check(provisional, live.beams if live else {}, self._pool)
        accepted = "accepted" if check.passed else "rejected"
        self.progress.message(f"round {round_no}: provisional weights {accepted}: "
                              f"{check.reason}")
        return check

    def _beam_ms(self, track: _Track, row: dict) -> float | None:
        """Candidate 0's runtime: its own, or its twin's when it repeated a schedule."""
        if row["status"] == OK:
            return row["runtime_ms"]
        if row["status"] == DUPLICATE and row["duplicate_of"] is not None:
            import pyarrow.dataset as ds

            where = ds.field("schedule_id") == row["duplicate_of"]
            if track.scope:
                where = where & (ds.field("benchmark") == track.scope)
            twin = self.run_dir.samples.read(["status", "runtime_ms"], filter=where)
            ok = [r["runtime_ms"] for r in twin.to_pylist() if r["status"] == OK]
            return ok[0] if ok else None
        return None

    def _accept(self, round_no: int, current: Weights) -> AcceptanceRecord:
        """Write `current` as the weights that plan the next round; train candidates on the
        rest and judge them on a held-out unit: the round `round_no` in a run of one
        pipeline; in a campaign one pipeline, in turn (the model must carry to a pipeline
        it was not trained on). A winner becomes provisional."""
        s, run = self.s, self.run_dir
        weights.write(current, run.weights_path(round_no))
        weights.write(current, run.latest_weights)
        table = run.samples.read(TRAIN_COLUMNS)
        unit, held_out = "round", round_no
        if self.manifest.campaign:
            names = sorted(set(table["benchmark"].to_pylist()) - {None})
            if len(names) > 1:
                unit, held_out = "benchmark", names[(round_no - 1) % len(names)]
        settings = [replace(x, steps=s.train_steps) for x in acceptance.SETTINGS]
        decision = self.trainer.decide(
            table, unit, held_out, current, s.start_weights, run.sample_files,
            num_cores=s.parallelism, settings=settings, seed=round_no,
            log_dir=run.training_dir(round_no))
        if decision.accepted == "current":  # one a crashed try of this step wrote goes
            run.provisional_weights.unlink(missing_ok=True)
        else:
            weights.write(decision.weights, run.provisional_weights)
            self.progress.message(f"round {round_no}: {decision.accepted} is provisional "
                                  f"(its beam search is checked next round): {decision.reason}")
        return AcceptanceRecord.from_json(decision.record())

    def _provisional(self) -> Weights | None:
        path = self.run_dir.provisional_weights
        return weights.load(path) if path.exists() else None

    def _start_sample(self, t: _Track) -> str | None:
        """The sample of the pipeline's beam search with the start weights: its first
        round's candidate 0, when that round was planned with the start weights."""
        first = t.record.first_round
        if first > self.committed:
            return None
        if first not in self._planned_by_start:  # a round's weights never change: read once
            used = weights.load(self.run_dir.weights_path(first - 1))
            self._planned_by_start[first] = used.sha256 == self.s.start_weights.sha256
        return sample_id(self.manifest.run_id, first, 0, t.scope) \
            if self._planned_by_start[first] else None

    def _start_artifact(self, t: _Track) -> str:
        """The key of the kept artifact of its beam search with the start weights: that
        sample's id, or one of its own when the beam search was built for a check."""
        return self._start_sample(t) or f"start-beam-{t.name}"

    def _beam_check(self, provisional: Weights, beams: dict, pool: DevicePool) -> BeamCheck:
        """Re-time each pipeline's beam search with the `provisional` weights (its binary
        from `beams`, by pipeline name, else built) against its beam search with the start
        weights, interleaved. Passed when none is significantly slower and their geometric
        mean ratio is at most BEAM_CHECK_RATIO."""
        s = self.s
        wanted: dict[tuple[str, str], tuple[CandidateSpec, str | None]] = {}  # built at once
        for t in self.tracks:
            if not beams.get(t.name):
                wanted[(t.name, "provisional")] = (CandidateSpec(
                    t.bench, s.target, provisional, parallelism=s.parallelism,
                    **BEAM_SEARCH), None)
            start_sid = self._start_artifact(t)
            if start_sid not in self.artifacts:  # resumed, or joined later: build it
                wanted[(t.name, "start")] = (CandidateSpec(
                    t.bench, s.target, s.start_weights, parallelism=s.parallelism,
                    **BEAM_SEARCH), start_sid)
        built = self._binaries(wanted, pool)
        binaries = {}
        for t in self.tracks:
            mine = beams.get(t.name) or built.get((t.name, "provisional"))
            kept = self.artifacts.get(self._start_artifact(t))
            if mine is not None and kept is not None:
                binaries[(t.name, "provisional")], binaries[(t.name, "start")] = mine, kept[0]
        if not binaries:
            return BeamCheck(passed=False, reason="its beam search or the start weights' "
                             "could not be built")
        times = pool.retime(binaries, s.parallelism, replace(s.timing, repeats=5),
                            BEAM_CHECK_RETIMES, timeout_s=BEAM_CHECK_TIMEOUT_S)
        verdicts = {t.name: verdict.compare(times.get((t.name, "provisional"), []),
                                            times.get((t.name, "start"), []))
                    for t in self.tracks if (t.name, "start") in binaries}
        ratios = [v.ratio for v in verdicts.values() if v.ratio is not None]
        slower = [name for name, v in verdicts.items() if v.word == verdict.SLOWER]
        gmean = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None
        passed = gmean is not None and gmean <= BEAM_CHECK_RATIO and not slower
        if len(verdicts) == 1:
            [(_, v)] = verdicts.items()
            reason = (f"its beam search vs the start weights': {v.describe()} (accepted at "
                      f"most {BEAM_CHECK_RATIO:g}x and not significantly slower)")
        else:
            reason = (f"its beam searches vs the start weights' on {len(verdicts)} pipelines: "
                      f"geometric mean {_fmt_ratio(gmean)}, significantly slower on "
                      f"{', '.join(slower) or 'none'} (accepted at most "
                      f"{BEAM_CHECK_RATIO:g}x and slower on none)")
        first = next(iter(verdicts.values()), None)
        return BeamCheck(passed=passed, reason=reason,
                         verdict=VerdictRecord.from_json(first.as_json())
                         if first is not None and len(verdicts) == 1 else None,
                         pipelines={name: VerdictRecord.from_json(v.as_json())
                                    for name, v in verdicts.items()}
                         if len(verdicts) > 1 else None)

    def _binaries(self, wanted: dict, pool: DevicePool) -> dict:
        """Build every (spec, keep_as) of `wanted` at once; the ObjectRef of each binary
        that built, by the same key. `keep_as`: the artifact key to keep it under."""
        if not wanted:
            return {}
        out = {}
        done = pool.build([spec for spec, _ in wanted.values()], BEAM_CHECK_TIMEOUT_S)
        for (key, (_, keep_as)), (built, binary, library) in zip(wanted.items(), done,
                                                                   strict=True):
            if built is None or not built.result.ok:
                continue
            if keep_as is not None:
                self.artifacts[keep_as] = (binary, library)
            out[key] = binary
        return out

    def _keep_binaries(self, rows_of: list[list[dict]], outcomes_of: list[list]) -> None:
        """Keep, per pipeline, the artifacts of its newest beam search, its beam search
        with the start weights and its fastest samples; let the rest go."""
        refs = dict(self.artifacts)
        for t, rows, outcomes in zip(self.tracks, rows_of, outcomes_of, strict=True):
            t.beam_sample = rows[0]["sample_id"]  # beam search of the newest weights used
            t.fastest = sorted(t.fastest + [(r["runtime_ms"], r["sample_id"]) for r in rows
                                            if r["status"] == OK])[:TOP_SAMPLES]
            refs.update({r["sample_id"]: o.artifact
                         for r, o in zip(rows, outcomes, strict=True) if o.artifact})
        wanted = {sid for t in self.tracks for sid in (
            t.beam_sample, self._start_artifact(t), *(sid for _, sid in t.fastest))}
        self.artifacts = {sid: refs[sid] for sid in wanted if sid is not None and sid in refs}

    # results
    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _final_inputs(self) -> FinalInputs:
        return FinalInputs(self.run_dir, self.s, self.manifest.run_id, self.committed,
                           TOP_SAMPLES, tuple(FinalPipeline(t.bench, t.scope, t.beam_sample,
                                                            self._start_sample(t))
                                              for t in self.tracks), dict(self.artifacts))

    def _summary(self, stopped: str) -> TuneSummary:
        return summary(self._final_inputs(), stopped, self._elapsed())


def _round_figures(rows: list[dict], outcomes) -> dict:
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1

    def total(column):
        return round(sum(r[column] or 0.0 for r in rows), 3)

    return {"statuses": statuses, "autoschedule_s": total("autoschedule_s"),
            "precheck_s": round(sum(o.precheck_s for o in outcomes), 3),
            "codegen_s": total("codegen_s"), "link_s": total("link_s"),
            "timing_s": total("run_s"),
            # a schedule is distinct within its pipeline: twins can share schedule features
            "distinct_ok": len({(r["benchmark"], r["schedule_key"]) for r in rows
                                if r["status"] == OK})}


def _round_line(round_no: int, rounds: int, rec: RoundRecord, distinct: int) -> str:
    st = rec.statuses
    failed = sum(v for k, v in st.items() if k not in (OK, DUPLICATE))
    acc, check = rec.acceptance, rec.beam_check
    assert acc is not None  # a round of this run (only old files lack it)
    held = acc.candidates[0].accuracy if acc.candidates else None
    trained = (f"held-out rank {held:.2f}; " if held is not None else "") + (
        f"beam check {'passed' if check.passed else 'failed'}; " if check else "") + (
        f"{acc.accepted} provisional" if acc.accepted != "current" else "weights kept")
    line = (f"round {round_no}/{rounds}: {st.get(OK, 0)} ok, {failed} failed, "
            f"{st.get(DUPLICATE, 0)} duplicate, {rec.distinct_ok} distinct "
            f"({distinct} in the run); ")
    if not rec.pipelines:
        return (line + f"beam {format_ms(rec.beam_ms)}, best {format_ms(rec.best_ms)} (run "
                f"{format_ms(rec.best_so_far_ms)}); {trained}; {rec.wall_s:.1f} s")
    beams = ", ".join(f"{name} {format_ms(p.get('beam_ms'))}/{format_ms(p.get('best_ms'))}"
                      for name, p in rec.pipelines.items())
    return line + f"{trained}; {rec.wall_s:.1f} s\n  beam/best: {beams}"


def _fmt_ratio(ratio: float | None) -> str:
    return verdict.factor(ratio)  # "-" for none


def _device_record(d: DeviceInfo) -> dict:
    return {"id": d.id, "kind": d.kind, "node": d.node, "model": d.model}
