"""`farm autotune`: the round loop. Plan, compile, time, record, accept, resume.

A round is committed atomically (farm.store). Then candidate weights are
trained on the earlier rounds and judged on this one (farm.acceptance). A
winner is provisional: a better ranking of random probes does not promise a
better beam search, so the next round also runs beam search with it
(candidate 1), and it is accepted only if that schedule, re-timed interleaved
against the start weights' beam search, is not slower (BEAM_CHECK_RATIO). The
weights after round N (round-N.weights) are the accepted ones; they plan round
N+1. Rerunning the same command resumes after the last committed round, and a
larger --rounds continues the run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

import ray

from farm import acceptance, atomic, costmodel, verdict, weights
from farm.builder import Builder, HalideBuilder
from farm.candidate import BEAM_SEARCH, DEFAULT_PARALLELISM, DUPLICATE, OK, TRANSIENT, CandidateSpec
from farm.catalog import Benchmark
from farm.cluster import Cluster
from farm.devices.base import DeviceInfo
from farm.devices.session import choose
from farm.errors import BadInput, Interrupted, RunDirError
from farm.finalize import FinalInputs, TuneSummary, finalize, summary
from farm.plan import RoundPlan, SeenSchedules
from farm.pool import DevicePool
from farm.progress import Progress, format_duration, format_ms
from farm.records import outcome_row, sample_id
from farm.rundir import RunDir, invocation_record, new_run_id, now_iso
from farm.runrecords import (
    AcceptanceRecord,
    BeamCheck,
    Manifest,
    RoundRecord,
    VerdictRecord,
)
from farm.scheduler import RoundScheduler, shared
from farm.store import STATE_COLUMNS, TRAIN_COLUMNS
from farm.targets import TargetInfo
from farm.timing import TimingConfig
from farm.trainer import HalideTrainer, Trainer
from farm.versions import versions
from farm.weights import Weights

TOP_SAMPLES = 2  # fastest distinct samples whose artifacts are kept to re-time at the end
BEAM_CHECK_RATIO = 1.1  # provisional weights' beam search / the start weights', at most
BEAM_CHECK_RETIMES = 5  # interleaved re-timings of the two
BEAM_CHECK_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class TuneSettings:
    benchmark: Benchmark
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
             pool: DevicePool | None = None, trainer: Trainer | None = None) -> TuneSummary:
    """Tune `settings` into `run_dir` (created, or resumed). Every collaborator may be
    passed in (farm.testing has doubles): `cluster` (farm.cluster.Cluster: joins Ray and
    discovers devices; default: the one at `address`), `builder` (farm.builder; default
    Halide's), `pool` (farm.pool.DevicePool over the devices to time on; default: one over
    the settings' devices, compiling with `builder`) and `trainer` (farm.trainer; default
    Halide's trainer)."""
    progress = progress or Progress()
    run = RunDir(run_dir)
    run.open()
    try:
        return _Tuning(run, settings, progress, trainer or HalideTrainer()).run(
            cluster or Cluster(address), builder or HalideBuilder(), pool)
    finally:
        run.close()


class _Tuning:
    # The run's schedules: a SeenSchedules (from _load_state) until run() hands it to a
    # SeenActor and keeps the actor's handle here instead (farm.scheduler.shared).
    seen: Any

    def __init__(self, run: RunDir, s: TuneSettings, progress: Progress, trainer: Trainer):
        self.run_dir, self.s, self.progress, self.trainer = run, s, progress, trainer
        self.started = time.monotonic()

    def run(self, cluster, builder: Builder, pool: DevicePool | None) -> TuneSummary:
        s, run = self.s, self.run_dir
        if run.took_over:
            self.progress.message(f"took over the lock of a driver that died ({run.took_over})")
        self.manifest = run.begin(self._wanted_manifest(), invocation_record(versions(), []))
        self._write_start_files()
        self._load_state()
        done = self.committed
        if done and not run.weights_path(done).exists():
            self.progress.message(f"round {done} was committed but not trained; training now")
            self._accept(done, weights.load(run.weights_path(done - 1)))
        if done >= s.rounds and run.retiming_record_path.exists():
            self.progress.message(f"{run.path} already holds {done} rounds (--rounds "
                                  f"{s.rounds}); raise --rounds to tune longer")
            return self._summary("")
        stopped = ""
        try:
            with cluster:
                if pool is None:
                    devices = choose(cluster.discover()[0], s.device_ids, s.target)
                    pool = DevicePool.on_cluster(devices, s.target, builder, cluster,
                                                 isolation=s.isolation)
                devices = [h.info for h in pool.usable()]
                self._check_class(devices)
                self.manifest.invocations[-1]["devices"] = [_device_record(d) for d in devices]
                run.write_manifest(self.manifest)
                self.progress.message(
                    f"{s.benchmark.name} on {', '.join(d.id for d in devices)} (device class "
                    f"{self.manifest.device_class}): rounds "
                    f"{done + 1}..{s.rounds} of {s.batch_size} candidates, each device "
                    f"holding {pool.depth}, run {self.manifest.run_id}")
                self.seen = shared(self.seen)  # compile tasks on every node claim in it
                scheduler = RoundScheduler(pool, threads=s.parallelism, timing=s.timing,
                                           compile_timeout_s=s.compile_timeout_s,
                                           on_update=self.progress.update)
                for round_no in range(done + 1, s.rounds + 1):
                    if round_no > done + 1 and s.budget_s is not None and \
                            self._elapsed() >= s.budget_s:  # after a round of this invocation
                        stopped = (f"the --budget of {format_duration(s.budget_s)} is spent "
                                   f"after {self.committed} rounds")
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
        except KeyboardInterrupt:
            raise Interrupted(
                f"interrupted; {self.committed} rounds are committed in {run.path}. Rerun the "
                "same command to resume") from None
        return self._summary(stopped)

    # setup
    def _check_class(self, devices: list[DeviceInfo]) -> None:
        """One device class per run: its timings train one model (farm.devices.classes)."""
        classes = sorted({str(d.device_class) for d in devices})
        if len(classes) > 1:
            raise BadInput(f"the devices are of {len(classes)} classes ({'; '.join(classes)}) "
                           "and a run trains one class's model: choose one class's devices "
                           "with --device (see `farm devices`)")
        recorded = self.manifest.device_class
        if recorded is not None and recorded != classes[0]:
            raise RunDirError(f"{self.run_dir.path} holds weights of device class {recorded}, "
                              f"not {classes[0]}: continue it on devices of its class "
                              "(--device) or start a new --out")
        self.manifest.device_class = classes[0]

    def _wanted_manifest(self) -> Manifest:
        s = self.s
        return Manifest(run_id=new_run_id(), benchmark=s.benchmark.ref, generator=s.benchmark.name,
                        benchmark_sha256=s.benchmark.sha256, target=s.target.compile,
                        schedule_target=s.target.schedule, batch_size=s.batch_size,
                        parallelism=s.parallelism,
                        start_weights_sha256=s.start_weights.sha256, created_at=now_iso())

    def _write_start_files(self) -> None:
        run = self.run_dir
        if not run.weights_path(0).exists():
            weights.write(self.s.start_weights, run.weights_path(0))
        if not self.s.benchmark.builtin:
            atomic.write_text(run.generator_copy, self.s.benchmark.source)

    def _load_state(self) -> None:
        store = self.run_dir.samples
        rounds = store.committed_rounds()
        if rounds != list(range(1, len(rounds) + 1)):
            raise RunDirError(f"{store.dir} holds rounds {rounds}, not 1..N; it was edited by "
                              "hand. Restore the missing rounds or start a new --out")
        self.committed = len(rounds)
        table = store.read(STATE_COLUMNS)
        self.seen = SeenSchedules()
        rows = table.to_pylist()
        for row in sorted(rows, key=lambda r: r["schedule_id"]):
            if row["schedule_key"] and row["status"] not in (DUPLICATE, *TRANSIENT):
                self.seen.claim(row["schedule_key"], row["schedule_id"])
        self.rows = len(rows)
        self.best_ms = min((r["runtime_ms"] for r in rows if r["status"] == OK), default=None)
        self.progress.best_ms = self.best_ms
        self.round_s: list[float] = []
        # Artifacts (binary, library) kept in Ray's object store for the final re-timing, by
        # sample id: the fastest few and the beam search of the best weights (a handful).
        self.artifacts: dict[str, tuple] = {}
        self._fastest: list[tuple[float, str]] = []
        self._beam_sample: str | None = None

    # one round
    def _round(self, round_no: int, scheduler: RoundScheduler) -> None:
        s, run = self.s, self.run_dir
        started, started_iso = time.monotonic(), now_iso()
        used = weights.load(run.weights_path(round_no - 1))
        base = CandidateSpec(s.benchmark, s.target, used, parallelism=s.parallelism)
        provisional = self._provisional()
        plan = RoundPlan(self.manifest.run_id, round_no, base, s.batch_size,
                         start_weights=s.start_weights, provisional=provisional)
        self.progress.round_started(round_no, s.rounds, s.batch_size)
        outcomes = scheduler.run(plan, best_ms=self.best_ms, seen=self.seen,
                                 keep_below_ms=self._fastest[-1][0]
                                 if len(self._fastest) == TOP_SAMPLES else None)
        rows = [outcome_row(self.manifest, round_no, o) for o in outcomes]
        if self.manifest.pipeline_id is None:
            ids = [r["pipeline_id"] for r in rows if r["pipeline_id"]]
            if ids:
                self.manifest.pipeline_id = ids[0]
                run.write_manifest(self.manifest)
        run.samples.commit_round(round_no, rows)
        self.committed = round_no
        run.samples.compact()
        self.rows += len(rows)
        round_best = min((r["runtime_ms"] for r in rows if r["status"] == OK), default=None)
        if round_best is not None and (self.best_ms is None or round_best < self.best_ms):
            self.best_ms = round_best
        self.progress.best_ms = self.best_ms
        beam_ms = self._beam_ms(rows[0])
        train_start = time.monotonic()
        current, check = used, None
        if provisional is not None and len(outcomes) > 1:
            check = self._beam_check(outcomes[1], scheduler)
            if check.passed:
                current = provisional
            self.progress.message(f"round {round_no}: provisional weights "
                                  f"{'accepted' if current is provisional else 'rejected'}: "
                                  f"{check.reason}")
            # kept under the round it planned a candidate in, so that sample can be rebuilt
            os.replace(run.provisional_weights, run.provisional_used(round_no))
        accepted = self._accept(round_no, current)
        retrain_s = time.monotonic() - train_start
        record = RoundRecord(
            round=round_no, started_at=started_iso, candidates=len(rows),
            weights_sha256=used.sha256, **_round_figures(rows, outcomes), beam_ms=beam_ms,
            best_ms=round_best, best_so_far_ms=self.best_ms, beam_check=check,
            acceptance=accepted, retrain_s=retrain_s, wall_s=time.monotonic() - started,
            finished_at=now_iso())
        run.write_round(record)
        self._keep_binaries(rows, outcomes)
        self.round_s.append(record.wall_s)
        self.progress.round_s = sum(self.round_s) / len(self.round_s)
        distinct = ray.get(self.seen.size.remote())
        self.progress.round_finished(_round_line(round_no, s.rounds, record, distinct))

    def _beam_ms(self, row: dict) -> float | None:
        """Candidate 0's runtime: its own, or its twin's when it repeated a schedule."""
        if row["status"] == OK:
            return row["runtime_ms"]
        if row["status"] == DUPLICATE and row["duplicate_of"] is not None:
            import pyarrow.dataset as ds

            twin = self.run_dir.samples.read(
                ["status", "runtime_ms"], filter=ds.field("schedule_id") == row["duplicate_of"])
            ok = [r["runtime_ms"] for r in twin.to_pylist() if r["status"] == OK]
            return ok[0] if ok else None
        return None

    def _accept(self, round_no: int, current: Weights) -> AcceptanceRecord:
        """Write `current` as the weights that plan the next round; train candidates on the
        rounds before `round_no` and judge them on it. A winner becomes provisional."""
        s, run = self.s, self.run_dir
        weights.write(current, run.weights_path(round_no))
        weights.write(current, run.latest_weights)
        table = run.samples.read(TRAIN_COLUMNS)
        settings = [replace(x, steps=s.train_steps) for x in acceptance.SETTINGS]
        decision = self.trainer.decide(
            table, "round", round_no, current, s.start_weights, run.sample_files,
            num_cores=s.parallelism, settings=settings, seed=round_no,
            log_dir=run.training_dir(round_no))
        if decision.accepted != "current":
            weights.write(decision.weights, run.provisional_weights)
            self.progress.message(f"round {round_no}: {decision.accepted} is provisional "
                                  f"(its beam search is checked next round): {decision.reason}")
        return AcceptanceRecord.from_json(decision.record())

    def _provisional(self) -> Weights | None:
        path = self.run_dir.provisional_weights
        return weights.load(path) if path.exists() else None

    def _beam_check(self, outcome, scheduler: RoundScheduler) -> BeamCheck:
        """Re-time the provisional weights' beam search against the start weights'."""
        s = self.s
        mine = outcome.artifact[0] if outcome.status == OK and outcome.artifact else \
            self._binary(outcome.spec, scheduler.pool)
        start_sid = sample_id(self.manifest.run_id, 1, 0)
        if start_sid not in self.artifacts:  # resumed: build it again
            spec = CandidateSpec(s.benchmark, s.target, s.start_weights,
                                 parallelism=s.parallelism, **BEAM_SEARCH)
            binary = self._binary(spec, scheduler.pool, keep_as=start_sid)
        else:
            binary = self.artifacts[start_sid][0]
        if mine is None or binary is None:
            return BeamCheck(passed=False, reason="its beam search or the start weights' "
                             "could not be built")
        times = scheduler.pool.retime({"provisional": mine, "start": binary}, s.parallelism,
                                      replace(s.timing, repeats=5), BEAM_CHECK_RETIMES,
                                      timeout_s=BEAM_CHECK_TIMEOUT_S)
        v = verdict.compare(times.get("provisional", []), times.get("start", []))
        passed = v.ratio is not None and v.ratio <= BEAM_CHECK_RATIO and \
            v.word != verdict.SLOWER
        return BeamCheck(passed=passed, verdict=VerdictRecord.from_json(v.as_json()),
                         reason=f"its beam search vs the start weights': {v.describe()} "
                                f"(accepted at most {BEAM_CHECK_RATIO:g}x and not "
                                "significantly slower)")

    def _binary(self, spec: CandidateSpec, pool: DevicePool, keep_as: str | None = None):
        """Build `spec`; the ObjectRef of its binary, or None when it does not build."""
        [(built, binary, library)] = pool.build([spec], BEAM_CHECK_TIMEOUT_S)
        if built is None or not built.result.ok:
            return None
        if keep_as is not None:
            self.artifacts[keep_as] = (binary, library)
        return binary

    def _keep_binaries(self, rows: list[dict], outcomes) -> None:
        self._beam_sample = rows[0]["sample_id"]  # beam search of the newest weights used
        self._fastest = sorted(self._fastest + [(r["runtime_ms"], r["sample_id"]) for r in rows
                                                if r["status"] == OK])[:TOP_SAMPLES]
        refs = {**self.artifacts, **{r["sample_id"]: o.artifact
                                    for r, o in zip(rows, outcomes, strict=True) if o.artifact}}
        start_beam = sample_id(self.manifest.run_id, 1, 0)  # the start weights' beam search
        wanted = {self._beam_sample, start_beam, *(sid for _, sid in self._fastest)}
        self.artifacts = {sid: refs[sid] for sid in wanted if sid in refs}

    # results
    def _elapsed(self) -> float:
        return time.monotonic() - self.started

    def _final_inputs(self) -> FinalInputs:
        return FinalInputs(self.run_dir, self.s, self.manifest.run_id, self.committed,
                           TOP_SAMPLES, dict(self.artifacts), self._beam_sample)

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
            "distinct_ok": len({r["schedule_key"] for r in rows if r["status"] == OK})}


def _round_line(round_no: int, rounds: int, rec: RoundRecord, distinct: int) -> str:
    st = rec.statuses
    failed = sum(v for k, v in st.items() if k not in (OK, DUPLICATE))
    acc, check = rec.acceptance, rec.beam_check
    assert acc is not None  # a round of this run (only old files lack it)
    held = acc.candidates[0].accuracy if acc.candidates else None
    trained = (f"held-out rank {held:.2f}; " if held is not None else "") + (
        f"beam check {'passed' if check.passed else 'failed'}; " if check else "") + (
        f"{acc.accepted} provisional" if acc.accepted != "current" else "weights kept")
    return (f"round {round_no}/{rounds}: {st.get(OK, 0)} ok, {failed} failed, "
            f"{st.get(DUPLICATE, 0)} duplicate, {rec.distinct_ok} distinct "
            f"({distinct} in the run); beam {format_ms(rec.beam_ms)}, best "
            f"{format_ms(rec.best_ms)} (run {format_ms(rec.best_so_far_ms)}); {trained}; "
            f"{rec.wall_s:.1f} s")


def _device_record(d: DeviceInfo) -> dict:
    return {"id": d.id, "kind": d.kind, "node": d.node, "model": d.model}
