"""`farm autotune`: the round loop. Plan, compile, time, record, accept, resume.

A round is committed atomically (farm.store.samples). Then candidate weights are
trained on the earlier rounds and judged on this one (farm.model.acceptance). A
winner is provisional: the next round also runs beam search with it (candidate 1),
and it is accepted only if that schedule passes the beam check
(farm.tuning.beam_check). The weights after round N (round-N.weights) are the accepted
ones; they plan round N+1. Rerunning the same command resumes after the last committed
round (farm.tuning.steps redoes what a crash left undone), and a larger --rounds
continues the run.

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

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import ray

from farm.build.builder import Builder, HalideBuilder
from farm.candidate import DUPLICATE, OK, CandidateSpec
from farm.devices.base import DeviceInfo
from farm.devices.host import check_here
from farm.errors import BadInput, FarmError, Interrupted, LastingFault
from farm.execution.cluster import Cluster, ClusterLike
from farm.execution.leases import lease_dir
from farm.execution.pool import DevicePool
from farm.execution.scheduler import RoundScheduler, shared
from farm.execution.session import choose
from farm.machine.toolchain import prepare_here
from farm.model import weights
from farm.model.trainer import HalideTrainer, Trainer
from farm.model.weights import Weights
from farm.report.progress import Progress, format_duration, format_ms, plural
from farm.search.plans import CampaignPlan
from farm.store.records import Manifest, RoundRecord
from farm.store.rundir import RunDir, class_dir, class_dirs, invocation_record, now_iso
from farm.tuning.artifacts import KeptArtifacts
from farm.tuning.beam_check import BeamChecker, Live
from farm.tuning.context import RunContext
from farm.tuning.final_inputs import FinalInputs, FinalPipeline, FinalResult
from farm.tuning.finalize import finalize
from farm.tuning.rows import outcome_row, stop_if_all_failed_alike, with_predictions
from farm.tuning.screening import describe, screen
from farm.tuning.settings import TuneSettings
from farm.tuning.shares import round_shares
from farm.tuning.source import Identity, PipelineSource, named_identity
from farm.tuning.state import TOP_SAMPLES, RunState, Track, start
from farm.tuning.steps import RoundSteps
from farm.tuning.summary import TuneSummary, summary
from farm.tuning.training_data import held_out_pipeline
from farm.tuning.validation import (
    by_class,
    resolved,
    validate,
    validate_root,
    wanted_manifest,
)
from farm.versions import versions

__all__ = ["autotune"]


def autotune(run_dir: str | os.PathLike, settings: TuneSettings, address: str | None = None,
             progress: Progress | None = None, *, cluster: ClusterLike | None = None,
             builder: Builder | None = None,
             pool: DevicePool | None = None, trainer: Trainer | None = None,
             opener=None, source: PipelineSource | None = None) -> Any:
    """Tune `settings` into `run_dir` (created, or resumed). Every collaborator may be
    passed in (farm.testing has doubles): `cluster` (farm.execution.cluster.Cluster: joins
    Ray and discovers devices; default: the one at `address`), `builder`
    (farm.build.builder; default Halide's), `pool` (execution.pool.DevicePool over the
    devices to time on, one class; default: one per device class over the settings'
    devices, compiling with `builder`) and `trainer` (farm.model.trainer; default Halide's
    trainer); `opener` opens the pools' devices (default: by their kind;
    farm.testing.open_synthetic for synthetic ones). With devices of several classes the
    run directory holds one run per class (classes/CLASS/); each class's result is
    printed, and the first class's summary returned. `source` says where the pipelines
    come from and starts each class's round loop (farm.tuning.source; default: the
    settings' benchmarks, NamedPipelines; farm.workflows.pretrain draws them as it goes)."""
    progress = progress or Progress()
    here = Cluster(address).discover_here() if cluster is None else None
    cluster = cluster or Cluster(address)
    builder = builder or HalideBuilder()
    trainer = trainer or HalideTrainer()
    root = Path(run_dir)
    options: dict[str, Any] = {"isolation": settings.isolation, "holder": str(root)}
    if opener is not None:
        options["opener"] = opener
    source = source or NamedPipelines()
    if not settings.benchmarks and not source.draws:
        raise BadInput("name at least one benchmark")
    # Refused before Ray starts (seconds) whatever needs no cluster: --out, the settings
    # against the run's, and without an address the devices (this machine's).
    chosen = choose(here[0], settings.device_ids, settings.target) if here is not None else []
    validate_root(root, settings, by_class(chosen), source)
    check_here(chosen)
    lease_dir()  # (the device leases' folder: refused before Ray starts, too)
    if pool is None and cluster.local:
        prepare_here(settings.target)  # said, not built in silence by the compile workers
    try:
        with cluster:
            if pool is not None:
                return _tune_class(root, settings, progress, trainer, cluster, pool, source)
            devices = choose(cluster.discover()[0], settings.device_ids, settings.target)
            classes = by_class(devices)
            if len(classes) == 1 and not class_dirs(root):
                [only] = classes.values()
                one = DevicePool.on_cluster(only, settings.target, builder, cluster, **options)
                try:
                    return _tune_class(root, settings, progress, trainer, cluster, one,
                                       source)
                finally:
                    one.shutdown()
            validate_root(root, settings, classes, source)  # every class, before writes
            pools = {name: DevicePool.on_cluster(members, settings.target, builder, cluster,
                                                 **options)
                     for name, members in sorted(classes.items())}
            try:
                return _tune_classes(root, progress, trainer, cluster, settings, pools,
                                     source)
            finally:
                for p in pools.values():
                    p.shutdown()
    except KeyboardInterrupt:
        raise Interrupted(interrupted_note(root)) from None


def interrupted_note(root: Path) -> str:
    """What a Ctrl-C leaves in `root`, in words that are true of it."""
    try:
        runs = [RunDir(p) for p in class_dirs(root)] or [RunDir(root)]
        committed = sum(len(r.samples.committed_rounds()) for r in runs
                        if r.manifest_path.is_file())
    except (FarmError, OSError):  # a run directory another command will name the fault of
        committed = 0
    if committed:
        return (f"interrupted; the {committed} committed round(s) are kept in {root}. Rerun "
                "the same command to resume")
    if root.exists():
        return (f"interrupted before a round was committed; nothing to keep in {root}. "
                "Rerun the same command to start again")
    return "interrupted before anything was written. Rerun the same command to start"


def _tune_classes(root: Path, progress: Progress, trainer: Trainer, cluster: ClusterLike,
                  settings: TuneSettings, pools: dict[str, DevicePool],
                  source: PipelineSource) -> Any:
    """One run per device class, at once, in root/classes/CLASS/."""
    progress.message(f"{len(pools)} device classes, one model each, tuned at "
                     f"once into {root}/classes/: {', '.join(sorted(pools))}")
    threads = ThreadPoolExecutor(len(pools), thread_name_prefix="farm-class")
    try:
        jobs = {name: threads.submit(_tune_class, class_dir(root, name), settings,
                                     Progress(progress.stream, live=False, label=name),
                                     trainer, cluster, p, source)
                for name, p in pools.items()}
        results = {name: job.result() for name, job in jobs.items()}
    finally:
        # on Ctrl-C the other classes' rounds end when Ray shuts down (with the cluster):
        # committed rounds are kept, as for one class
        threads.shutdown(wait=False, cancel_futures=True)
    for name, r in results.items():
        progress.message(f"[{name}] {r.short()}")
    return results[sorted(results)[0]]


def _tune_class(path: Path, settings: TuneSettings, progress: Progress, trainer: Trainer,
                cluster: ClusterLike, pool: DevicePool, source: PipelineSource) -> Any:
    run = RunDir(path)
    settings, note = resolved(run, settings, [h.info for h in pool.usable()], source)
    validate(run, settings, [h.info for h in pool.usable()], source)  # before any write
    if note:
        progress.message(note)
    run.open()
    try:
        return source.tuning(run, settings, progress, trainer, cluster, pool).run()
    finally:
        run.close()


class Tuning:
    """One device class's run, from its first round (or where it stopped) to its end.

    Its hooks (first_pipelines, next_pipelines, total_rounds, ended, end, round_line,
    held_out, beam_checked, beam_reference, FAILED_ALIKE_PIPELINES) are where a pre-training
    (farm.workflows.pretrain) draws new pipelines round by round, judges and ends
    otherwise."""

    # a round whose candidates all failed alike on this many pipelines stops the run (a
    # lasting fault of the machine, not of one pipeline)
    FAILED_ALIKE_PIPELINES = 1

    def __init__(self, source: PipelineSource, run: RunDir, s: TuneSettings,
                 progress: Progress, trainer: Trainer, cluster: ClusterLike,
                 pool: DevicePool):
        self.source = source
        self.run_dir, self.s, self.progress, self.trainer = run, s, progress, trainer
        self.cluster, self.pool = cluster, pool
        self.started = time.monotonic()
        if run.took_over:
            progress.message(f"took over the lock of a driver that died ({run.took_over})")
        devices = [h.info for h in pool.usable()]
        existing = validate(run, s, devices, source)  # again, now that the run is locked
        manifest = run.begin(wanted_manifest(s, existing, source),
                             invocation_record(versions(), []))
        manifest.device_class = str(devices[0].device_class) if devices else None
        self.state: RunState = start(run, s, manifest, progress,
                                     self.first_pipelines(manifest), announce=not source.draws)
        self.ctx = RunContext(run, s, self.state, progress)
        self.kept = KeptArtifacts(self.ctx)
        self.checker = BeamChecker(self.ctx, self.kept, pool, self.beam_checked,
                                   self.beam_reference)
        self.steps = RoundSteps(self.ctx, trainer, self.checker, self.held_out)
        self.claims: Any = None  # the SeenActor the compile tasks claim schedules in
        self.rounds = s.rounds  # the rounds the run should hold (total_rounds)

    def run(self) -> TuneSummary:
        s, state, progress = self.s, self.state, self.progress
        progress.best_ms = state.one_best_ms
        progress.pipelines = len(state.tracks)
        done = state.committed
        if done:
            self.steps.finish(done)  # what a crash after its commit left undone
        self.rounds = self.total_rounds(done)
        if done >= self.rounds and self.ended():
            return self.end(None)
        self._announce(done)
        self.claims = shared(state.seen)  # compile tasks on every node claim in it
        scheduler = RoundScheduler(self.pool, threads=s.parallelism, timing=s.timing,
                                   compile_timeout_s=s.compile_timeout_s,
                                   on_update=progress.update)
        stopped = ""
        for round_no in range(done + 1, self.rounds + 1):
            if round_no > done + 1 and s.budget_s is not None and \
                    self._elapsed() >= s.budget_s:  # after a round of this invocation
                stopped = (f"the --budget of {format_duration(s.budget_s)} is spent "
                           f"after {plural(state.committed, 'round')}")
                break
            if round_no > done + 1:
                self._refresh_devices()
            self.next_pipelines(round_no)
            self._round(round_no, scheduler)
            for event in self.pool.events:
                progress.message(f"warning: {event}")
            self.pool.events.clear()
        return self.end(stopped)

    # --- the hooks --------------------------------------------------------------------

    def first_pipelines(self, manifest) -> tuple | None:
        """The run's pipelines as this invocation starts (None: the settings'): those of the
        last committed round, whose steps a crash may have left undone, or of the next."""
        return None

    def next_pipelines(self, round_no: int) -> None:
        """Change the run's pipelines (state.tracks) before round `round_no`."""

    def pipelines_line(self) -> str:
        """What the run tunes, for the line that starts an invocation."""
        return ", ".join(t.name for t in self.state.tracks)

    def total_rounds(self, done: int) -> int:
        """The rounds the run should hold, `done` of them committed."""
        return self.s.rounds

    def held_out(self, names: list[str], round_no: int) -> str | None:
        """The pipeline whose rows round `round_no`'s candidate models are judged on, not
        trained on (None: the round's rows): in a campaign, one pipeline in turn (the model
        must carry to a pipeline it was not trained on)."""
        return held_out_pipeline(names, round_no) if self.state.manifest.campaign else None

    def beam_checked(self, beams: dict) -> list[Track]:
        """The pipelines a beam check re-times (`beams`: the provisional beam searches
        built in the round, by name): every one."""
        return self.state.tracks

    def beam_reference(self, round_no: int) -> Weights | None:
        """The weights whose beam search round `round_no`'s provisional weights' is re-timed
        against: None, the start weights' (kept from the rounds)."""
        return None

    def ended(self) -> bool:
        """Whether a run that holds all its rounds has nothing left to do."""
        return all(self.run_dir.retiming_path(t.scope).exists() for t in self.state.tracks)

    def end(self, stopped: str | None) -> Any:
        """The run's end: re-time the finalists and hand over weights (farm.tuning.finalize),
        then its summary. `stopped`: why it stopped early ("" if it did not), None when
        it had ended before this invocation."""
        if stopped is None:
            self.progress.message(
                f"{self.run_dir.path} already holds {plural(self.state.committed, 'round')} "
                f"(--rounds {self.s.rounds}); raise --rounds to tune longer")
            return self._summary("")
        result = finalize(self._final_inputs(), self.pool, self.trainer, self.progress)
        return self._summary(stopped, result)

    def round_line(self, round_no: int, record: RoundRecord, distinct: int) -> str:
        """The line that says how round `round_no` went."""
        return _round_line(round_no, self.rounds, record, distinct)

    def _announce(self, done: int) -> None:
        """Record this invocation's devices, and say what it will do."""
        s, m = self.s, self.state.manifest
        devices = [h.info for h in self.pool.usable()]
        m.invocations[-1]["devices"] = [_device_record(d) for d in devices]
        self.run_dir.write_manifest(m)
        if done >= self.rounds:  # only the end of the run is left
            rounds = (f"{'all ' if done > 1 else ''}{plural(done, 'round')} done; finishing "
                      "(the final re-timing)")
        else:
            rounds = (f"round {self.rounds} of {self.rounds}" if done + 1 == self.rounds else
                      f"rounds {done + 1}..{self.rounds} of {self.rounds}") + (
                f", {plural(s.batch_size, 'candidate')} per "
                f"{'pipeline and ' if m.campaign else ''}round")
        self.progress.message(
            f"{self.pipelines_line()} on "
            f"{', '.join(d.id for d in devices)} (device class {m.device_class}): {rounds}, "
            f"each device holding {self.pool.depth}, run {m.run_id}")

    def _refresh_devices(self) -> None:
        """Phones come and go between rounds."""
        s = self.s
        found = [d for d in choose(self.cluster.discover()[0], s.device_ids, s.target,
                                   strict=False)
                 if str(d.device_class) == self.state.manifest.device_class]
        for change in self.pool.refresh(found):
            self.progress.message(f"devices: {change}")

    def _round(self, round_no: int, scheduler: RoundScheduler) -> None:
        s, state = self.s, self.state
        live_started, started_iso = time.monotonic(), now_iso()
        used = weights.load(self.run_dir.weights_path(round_no - 1))  # plan the round
        plan = self._plan(round_no, used)
        screened = None
        if s.screen > 1:
            plan, screened = screen(
                plan, s.screen, [t.scope for t in state.tracks], used, s.parallelism,
                lambda specs: self.pool.screen(specs, s.compile_timeout_s),
                held=lambda keys: ray.get(self.claims.holds.remote(keys)))
            self.progress.message(f"round {round_no}: {describe(screened)}")
        self.progress.round_started(round_no, self.rounds, len(state.tracks) * s.batch_size)
        try:
            outcomes = scheduler.run(
                plan, best_ms={i: t.best_ms for i, t in enumerate(state.tracks)},
                seen=self.claims,
                keep_below_ms={i: t.keep_below() for i, t in enumerate(state.tracks)})
        except LastingFault as e:  # nothing of this round is written
            raise LastingFault(
                f"{e}. Round {round_no} was not committed ("
                f"{plural(state.committed, 'round is', 'rounds are')}, in "
                f"{self.run_dir.path}): fix it and rerun the same command to resume",
                e.exit_code, e.cause) from None
        stop_if_all_failed_alike(outcomes, round_no, state.committed, self.run_dir.path,
                                 min_pipelines=self.FAILED_ALIKE_PIPELINES)
        # each pipeline's outcomes, by its own candidate index
        mine: list[list] = [[] for _ in state.tracks]
        for o in sorted(outcomes, key=lambda o: o.index):
            mine[plan.group(o.index)].append(replace(o, index=plan.locate(o.index)[1]))
        rows_of = self._commit(round_no, mine, used)
        beams = {t.name: o[1].artifact[0] for t, o in zip(state.tracks, mine, strict=True)
                 if len(o) > 1 and o[1].status == OK and o[1].artifact}
        record = self.steps.finish(round_no, Live(live_started, started_iso, outcomes, beams,
                                                  screened))
        self.kept.keep(rows_of, mine)
        state.round_s.append(record.wall_s)
        self.progress.round_s = sum(state.round_s) / len(state.round_s)
        distinct = ray.get(self.claims.size.remote())
        self.progress.round_finished(self.round_line(round_no, record, distinct))

    def _plan(self, round_no: int, used: Weights) -> CampaignPlan:
        s = self.s
        provisional_path = self.run_dir.provisional_weights
        provisional = weights.load(provisional_path) if provisional_path.exists() else None
        shares = round_shares(self.ctx, round_no)
        self.state.shares[round_no] = shares
        return CampaignPlan([
            s.strategy(self.state.manifest.run_id, round_no,
                       CandidateSpec(t.bench, s.target, used, parallelism=s.parallelism),
                       share.candidates, start_weights=s.start_weights,
                       provisional=provisional, scope=t.scope,
                       id_stride=self.state.manifest.id_stride)
            for t, share in zip(self.state.tracks, shares, strict=True)])

    def _commit(self, round_no: int, mine: list[list], used: Weights) -> list[list[dict]]:
        """Commit the round's rows (atomically: all or none); each pipeline's rows."""
        state, run, m = self.state, self.run_dir, self.state.manifest
        rows_of = [[outcome_row(m, round_no, o, t.record) for o in mine[i]]
                   for i, t in enumerate(state.tracks)]
        changed = False
        for t, rows in zip(state.tracks, rows_of, strict=True):
            ids = [r["pipeline_id"] for r in rows if r["pipeline_id"]]
            if t.record.pipeline_id is None and ids:
                t.record.pipeline_id, changed = ids[0], True
                if not m.campaign:
                    m.pipeline_id = ids[0]
        if changed:
            run.write_manifest(m)
        rows = [r for rs in rows_of for r in rs]
        note = with_predictions(rows, used)
        if note:
            self.progress.message(f"warning: {note}")
        run.samples.commit_round(round_no, rows)
        state.committed = round_no
        run.samples.compact()
        state.rows += len(rows)
        for t, trows in zip(state.tracks, rows_of, strict=True):
            best = min((r["runtime_ms"] for r in trows if r["status"] == OK), default=None)
            if best is not None and (t.best_ms is None or best < t.best_ms):
                t.best_ms = best
        self.progress.best_ms = state.one_best_ms
        return rows_of

    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _final_inputs(self) -> FinalInputs:
        state = self.state
        return FinalInputs(self.run_dir, self.s, state.manifest.run_id, state.committed,
                           TOP_SAMPLES, tuple(FinalPipeline(t.bench, t.scope, t.beam_sample,
                                                            self.kept.start_sample(t))
                                              for t in state.tracks), dict(self.kept.refs))

    def _summary(self, stopped: str, result: FinalResult | None = None) -> TuneSummary:
        return summary(self._final_inputs(), stopped, self._elapsed(), result)


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


def _device_record(d: DeviceInfo) -> dict:
    return {"id": d.id, "kind": d.kind, "node": d.node, "model": d.model}


class NamedPipelines:
    """The benchmarks the command names (farm.tuning.source): one makes a single run,
    several a campaign; the round loop is Tuning."""

    draws = False

    def identity(self, s: TuneSettings, existing: Manifest | None) -> Identity:
        return named_identity(s, existing)

    def check_resume(self, run: RunDir, existing: Manifest) -> None:
        return None

    def tuning(self, run: RunDir, s: TuneSettings, progress: Progress, trainer: Trainer,
               cluster: ClusterLike, pool: DevicePool) -> Tuning:
        return Tuning(self, run, s, progress, trainer, cluster, pool)
