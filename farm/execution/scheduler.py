"""The driver's event loop for one batch of candidates: one Ray call per candidate.

Each candidate is a `DeviceActor.candidate` call (farm.execution.workers): the device
actor has it compiled (autoschedule, duplicate check, redraw and build in one
compile task) and times it. The driver keeps every healthy device holding
`pool.depth` candidates, so compiles fill the cluster while devices time, and
takes back answers in batches with a plain `ray.wait` loop (no threads, no
polling). A device call that fails is tried once more on another device (with
the binary already built when its owner is alive), then recorded as
device_lost; a device that keeps failing is quarantined (farm.execution.pool).
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import ray
from ray.exceptions import RayError

from farm.candidate import (
    COMPILE_ERROR,
    COMPILE_TIMEOUT,
    DEVICE_LOST,
    DUPLICATE,
    FAULT,
    OK,
    TRANSIENT,
    Artifact,
    BuildResult,
    CandidateSpec,
    Measurement,
)
from farm.devices.timing import TimingConfig
from farm.execution.pool import DEVICE_TRIES, DeviceHandle, DevicePool
from farm.execution.workers import Done, Job, describe_death
from farm.faults import Fault
from farm.search.plans import FixedPlan, Plan, SeenSchedules

CUTOFF_FACTOR = 3.0  # a candidate this much slower than the run's best is timed briefly
TICK_S = 1.0  # longest wait for an answer before progress is reported again
# Nothing answered for this long (a big pipeline's autoschedule takes minutes): ask the
# devices what they are doing, and again this often while it lasts.
SLOW_S = 30.0
LOOK_WAIT_S = 2.0  # how long the driver waits for those answers
# A pipeline whose compiles hit the compile timeout this often in a batch has the rest of
# its waiting candidates skipped (status compile_timeout, cause compile_timeout:skipped):
# each would hold a compile slot for the whole timeout, and one random pipeline's did for
# half an hour of a pre-training's round.
SKIP_AFTER_TIMEOUTS = 2


@dataclass
class Outcome:
    index: int
    spec: CandidateSpec
    status: str
    error: str = ""
    attempts: int = 1  # autoschedules tried (redraws after duplicates)
    precheck_s: float = 0.0  # time spent autoscheduling before the build
    build: BuildResult | None = None
    measurement: Measurement | None = None
    duplicate_of: int | None = None
    log: str = ""
    artifact: Artifact | None = None  # while the driver holds it
    finished_at: float = field(default_factory=time.time)  # when its result came in


@dataclass
class Counts:
    total: int = 0
    compiled: int = 0
    timed: int = 0
    failed: int = 0
    duplicate: int = 0
    done: int = 0
    best_ms: float | None = None
    statuses: dict = field(default_factory=dict)
    # after SLOW_S without an answer: what the longest-running candidate is doing, and
    # since when (time.time())
    waiting_on: tuple[str, float] | None = None


class RoundScheduler:
    def __init__(self, pool: DevicePool, *, threads: int, timing: TimingConfig,
                 compile_timeout_s: float, on_update=None, slow_s: float = SLOW_S):
        self.pool = pool
        self.threads = threads
        self.timing = timing
        self.compile_timeout_s = compile_timeout_s
        self.on_update = on_update or (lambda counts: None)
        self.slow_s = slow_s
        self._plan_key = 0
        # the batch run() works through, set anew by each run()
        self.plan: Plan = FixedPlan([])
        self.seen = None  # the SeenActor compile tasks claim schedules in (or None)
        self.best_ms: dict[int, float] = {}
        self.counts = Counts(total=0)
        self.outcomes: dict[int, Outcome] = {}
        self.waiting: deque[Job] = deque()
        self.tries: dict[int, int] = {}
        self.failed_on: dict[int, frozenset[str]] = {}
        self.calls: dict = {}  # ObjectRef -> (Job, DeviceHandle, submitted at)
        self._answered_at = self._looked_at = 0.0

    def run(self, plan: Plan, best_ms: Mapping[int, float | None] | None = None, seen=None,
            keep_below_ms: Mapping[int, float | None] | None = None) -> list[Outcome]:
        """Compile and time every candidate of `plan`. `seen` (a SeenActor, see `shared`)
        is where compile tasks claim schedules; `best_ms`, the run's best so far per
        pipeline (plan.group), lets clearly slower candidates stop timing after a few
        repeats. Outcomes hold their artifact (Outcome.artifact) when beam search, or
        faster than their pipeline's `keep_below_ms` (None or missing: every one)."""
        self.plan, self.seen = plan, seen
        self.best_ms = {g: ms for g, ms in (best_ms or {}).items() if ms is not None}
        keep = keep_below_ms or {}
        self._plan_key += 1
        for h in self.pool.usable():
            self._begin(h)
        total = len(plan.specs())
        self.counts = Counts(total=total)
        self.outcomes = {}
        self.waiting = deque(
            Job(self._plan_key, i, self.threads, self.timing, self.compile_timeout_s,
                keep=plan.is_beam(i), keep_below_ms=keep.get(plan.group(i)),
                attempt=plan.first_attempt(i))
            for i in range(total))
        self.tries, self.failed_on, self.calls = {}, {}, {}
        self.timeouts: dict = {}  # compile timeouts per pipeline (plan.group) this batch
        last_done, last_update = -1, 0.0
        self._answered_at = self._looked_at = time.monotonic()
        while len(self.outcomes) < total:
            self._submit()
            self._collect()
            if self.counts.done != last_done:
                self._answered_at, self.counts.waiting_on = time.monotonic(), None
            self._look()
            if self.counts.done != last_done or time.monotonic() - last_update > 1.0:
                self.on_update(self.counts)
                last_done, last_update = self.counts.done, time.monotonic()
        self.pool.memory.keep()
        return [self.outcomes[i] for i in range(total)]

    def _begin(self, handle: DeviceHandle):
        """Give `handle`'s actor the batch's plan (the ObjectRef of the call)."""
        return handle.actor.begin.remote(self._plan_key, self.plan, self.seen)

    def _look(self) -> None:
        """After slow_s without an answer, ask the devices holding work what it is doing and
        keep the longest-running candidate in counts.waiting_on (a Ray call per busy
        device, once per slow_s while it lasts)."""
        now = time.monotonic()
        if now - self._answered_at < self.slow_s or now - self._looked_at < self.slow_s:
            return
        self._looked_at = now
        asked = {h.actor.activity.remote(): h for h in self.pool.usable() if h.held}
        # a short wait (the loop is the driver's, results keep arriving), and what answered
        ready, _ = ray.wait(list(asked), num_returns=len(asked), timeout=LOOK_WAIT_S)
        doing = []
        for ref in ready:
            try:
                doing += [(since, index, phase, asked[ref]) for index, phase, since in
                          ray.get(ref)]
            except RayError:  # a device that died meanwhile: the collector sees to it
                continue
        self.counts.waiting_on = None
        if doing:
            since, index, phase, h = min(doing, key=lambda d: d[0])
            spec = self.plan.spec(index)
            search = "manual schedule" if spec.is_manual else f"beam {spec.beam_size}"
            self.counts.waiting_on = (f"{phase} {spec.benchmark.label} ({search}) on "
                                      f"{h.info.id}", since)

    def _submit(self) -> None:
        held = []
        while self.waiting:
            job = self.waiting.popleft()
            avoid = self.failed_on.get(job.index, frozenset())
            handle = self.pool.acquire(avoid)
            if handle is None:
                held.append(job)
                if not avoid:
                    break  # no device has room: the rest wait too
                continue
            jobs = [job]  # and more for the same device, while it has room: one call
            while (len(jobs) < self.pool.chunk and self.waiting
                   and handle.info.id not in self.failed_on.get(self.waiting[0].index, ())
                   and self.pool.reserve(handle)):
                jobs.append(self.waiting.popleft())
            jobs = [self._prepare(j) for j in jobs]
            self.calls[handle.actor.candidates.remote(jobs)] = (jobs, handle, time.monotonic())
        self.waiting.extendleft(reversed(held))
        if not self.pool.usable():
            raise self.pool.no_device_left()

    def _prepare(self, job: Job) -> Job:
        self.tries[job.index] = self.tries.get(job.index, 0) + 1
        job = replace(job, avoid_nodes=tuple(sorted(self.pool.faulty_nodes)),
                      compile_options=tuple(self.pool.memory.options(
                          self.plan.spec(job.index)).items()))
        best = self.best_ms.get(self.plan.group(job.index))
        if best is None or self.plan.is_beam(job.index):  # a beam search is timed in full
            return job
        return replace(job, timing=replace(job.timing, cutoff_ms=CUTOFF_FACTOR * best))

    def _collect(self) -> None:
        if not self.calls:  # work waits for a quarantined device to come back
            self.pool.wait_for_quarantine(TICK_S)
            return
        refs = list(self.calls)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        if not ready:
            ready, _ = ray.wait(refs, num_returns=1, timeout=TICK_S)
        try:
            answers = ray.get(ready)
        except RayError:  # some device actor died: take the answers one by one
            answers = [_answer(ref) for ref in ready]
        for ref, answer in zip(ready, answers, strict=True):
            jobs, handle, submitted = self.calls.pop(ref)
            if isinstance(answer, Exception):  # its actor died; Ray restarts it, planless
                if handle.rejoin is None:
                    self.pool.rejoin(handle, functools.partial(self._begin, handle))
                error = describe_death(answer)
                for job in jobs:
                    self._device_failed(job, handle, submitted, error, None)
                continue
            for job, done in zip(jobs, answer, strict=True):
                self._answered(job, handle, submitted, done)

    def _answered(self, job: Job, handle: DeviceHandle, submitted: float, done: Done) -> None:
        if done.status == FAULT:
            assert done.fault is not None  # a fault Done carries it
            self._faulted(job, handle, done.fault, done)
            return
        if done.status == DEVICE_LOST:
            prebuilt = (done.built, *done.artifact) if done.artifact else None
            self._device_failed(job, handle, None, done.error, prebuilt)
            return
        run_s = done.measurement.run_s if done.measurement else 0.0
        self.pool.release(handle, run_s, ok=True)
        self._finish(done)

    def _device_failed(self, job: Job, handle: DeviceHandle, submitted: float | None,
                       error: str, prebuilt: tuple | None) -> None:
        """`submitted`: when the call was made, if its actor died (one incident for every
        call it held); None for a failure the device reported itself."""
        self.pool.release(handle, 0.0, ok=False, error=error, submitted=submitted)
        self.failed_on[job.index] = self.failed_on.get(job.index, frozenset()) | {
            handle.info.id}
        if self.tries[job.index] < DEVICE_TRIES:
            self.waiting.appendleft(replace(job, prebuilt=prebuilt))
            return
        built = prebuilt[0] if prebuilt else None
        self._finish(Done(job.index, DEVICE_LOST, built, error=f"device {handle.info.id}: "
                          f"{error} (tried {self.tries[job.index]} times)"))

    def _faulted(self, job: Job, handle: DeviceHandle, fault: Fault, done: Done) -> None:
        """A lasting fault met the candidate: its device or node goes out of the run and
        the candidate to another device (built, when the device's timing met it), with no
        row and no try counted against it."""
        handle.held = max(0, handle.held - 1)
        self.pool.take_out(fault, handle)
        self.tries[job.index] -= 1
        prebuilt = (done.built, *done.artifact) if done.built and done.artifact else None
        self.waiting.appendleft(replace(job, prebuilt=prebuilt))

    def _finish(self, done: Done) -> None:
        built = done.built
        attempts = built.attempts if built else self.plan.first_attempt(done.index)
        if built is not None:
            self.pool.memory.measured(self.plan.spec(done.index, attempts), built.result)
        elif done.status == COMPILE_ERROR and done.error.startswith("compile (memory)"):
            self.pool.memory.killed(self.plan.spec(done.index, attempts))
        if done.status in TRANSIENT and built is not None and built.key is not None:
            self._release(built.key, self.plan.owner(done.index))
        self.outcomes[done.index] = Outcome(
            done.index, self.plan.spec(done.index, attempts), done.status, error=done.error,
            attempts=attempts, precheck_s=built.precheck_s if built else 0.0,
            build=built.result if built else None, measurement=done.measurement,
            duplicate_of=built.duplicate_of if built else None, log=done.log,
            artifact=done.artifact if done.status == OK else None,
            finished_at=done.finished_at)
        k = self.counts
        k.done += 1
        k.statuses[done.status] = k.statuses.get(done.status, 0) + 1
        if built is not None and built.result.ok and built.duplicate_of is None:
            k.compiled += 1
        if done.status == OK:
            k.timed += 1
            assert done.measurement is not None  # an ok Done was timed
            best = done.measurement.best_ms
            k.best_ms = best if k.best_ms is None else min(k.best_ms, best)
            group = self.plan.group(done.index)
            self.best_ms[group] = min(best, self.best_ms.get(group, best))
        elif done.status == DUPLICATE:
            k.duplicate += 1
        else:
            k.failed += 1
        if done.status == COMPILE_TIMEOUT:
            group = self.plan.group(done.index)
            self.timeouts[group] = self.timeouts.get(group, 0) + 1
            if self.timeouts[group] == SKIP_AFTER_TIMEOUTS:  # (those skipped count past it)
                self._skip(group)

    def _skip(self, group) -> None:
        """The waiting candidates of pipeline `group`: skipped, each a compile_timeout
        row that says why (those already given to a device go on)."""
        skipped = [j for j in self.waiting if self.plan.group(j.index) == group]
        self.waiting = deque(j for j in self.waiting if self.plan.group(j.index) != group)
        for job in skipped:
            self._finish(Done(job.index, COMPILE_TIMEOUT, error=(
                f"compile skipped: {SKIP_AFTER_TIMEOUTS} of its pipeline's candidates had "
                f"hit the {self.compile_timeout_s:g} s compile timeout in this batch (raise "
                "--compile-timeout to compile such a pipeline's candidates)")))

    def _release(self, key: str, owner: int | None) -> None:
        """A later draw of this schedule is measured: this one said nothing about it."""
        if owner is not None and self.seen is not None:
            self.seen.release.remote(key, owner)


def shared(seen: SeenSchedules):
    """The run's schedules in an actor every compile task claims in (claims are serial),
    on the driver's own node: a worker node that is lost takes no claims with it (its
    state would not survive a restart elsewhere), and the driver's node goes only with it."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from farm.execution.workers import SeenActor

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    return SeenActor.options(  # type: ignore[attr-defined]  # python/mypy#3135
        scheduling_strategy=here).remote(seen)


def _answer(ref):
    try:
        return ray.get(ref)
    except RayError as e:
        return e
