"""What runs on Ray workers: compile tasks, device actors, the schedule registry,
per-node discovery.

A candidate costs the driver one Ray call: `DeviceActor.candidate`. The device
actor submits the candidate's compile task itself, so a binary goes from the
compile worker to the device without a driver round trip. The compile task
autoschedules, claims the schedule in the run's registry (one actor, so a
duplicate is caught before codegen across every worker) and redraws a probe
whose schedule the run already has, then generates code and links. A device
actor holds several candidates at once (their compiles overlap) and times one
binary at a time.

Everything here returns values; a failed candidate is a status, not an
exception, so one bad schedule never takes the driver down. Ray's own retries
cover a worker process that dies (max_retries / max_restarts).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import cast

import ray

from farm.build.builder import Builder
from farm.candidate import (
    COMPILE_ERROR,
    COMPILE_TIMEOUT,
    COMPILE_WALL_FACTOR,
    CRASHED,
    DEVICE_LOST,
    DUPLICATE,
    FAULT,
    OK,
    Artifact,
    BuildResult,
    Library,
    Measurement,
)
from farm.devices.base import Device, DeviceInfo
from farm.devices.timing import TimingConfig
from farm.execution.leases import Holder, Lease, LeaseError, LeaseState
from farm.execution.leases import state as lease_state
from farm.faults import Fault, fault_of
from farm.model import featurization
from farm.search.plans import Plan, SeenSchedules

RUN_GRACE_S = 30.0  # beyond the run timeout, before a silent device actor ends itself
MAX_DEPTH = 32  # candidates a device actor holds at once (its compiles overlap)


@dataclass(frozen=True)
class Built:
    """A compile task's answer for candidate `index` of a plan."""

    index: int
    attempts: int  # the draw that was built (1 + redraws after duplicates)
    result: BuildResult
    precheck_s: float = 0.0  # autoscheduling before the build (finding duplicates)
    key: str | None = None  # the schedule key it claimed
    duplicate_of: int | None = None  # the twin's schedule id, for a duplicate

    @property
    def status(self) -> str:
        return DUPLICATE if self.duplicate_of is not None else self.result.status


def build_candidate(builder: Builder, plan: Plan, index: int, attempts: int, seen,
                    cpu_limit_s: float | None = None) -> tuple[Built, bytes, Library | None]:
    """Autoschedule, claim and redraw (for a plan that prechecks `index`), then build.
    `seen` is the run's SeenSchedules or an actor holding it (None: no duplicate check).
    `cpu_limit_s` bounds the CPU time of all of it (the compile timeout)."""
    spec, precheck_s, key = plan.spec(index, attempts), 0.0, None
    owner = plan.owner(index) if seen is not None else None

    def left() -> float | None:
        return None if cpu_limit_s is None else max(1.0, cpu_limit_s - precheck_s)

    while plan.precheck(index):
        result = builder.autoschedule(spec, left())
        precheck_s += result.schedule.autoschedule_s if result.schedule else 0.0
        if not result.ok:
            return Built(index, attempts, result, precheck_s), b"", None
        assert result.schedule is not None  # an ok BuildResult carries its schedule
        key = plan.claim_key(index, featurization.schedule_key(result.schedule.featurization))
        twin = _claim(seen, key, owner)
        if twin is None:
            break
        fresh = plan.redraw(index, attempts)
        if fresh is None:
            return Built(index, attempts, result, precheck_s, duplicate_of=twin), b"", None
        spec, attempts, key = fresh, attempts + 1, None
    result, binary, library = builder.build(spec, left())
    if not result.ok:
        return Built(index, attempts, result, precheck_s), b"", None
    assert result.schedule is not None  # an ok BuildResult carries its schedule
    if not result.schedule.featurization:  # a manual schedule: nothing to claim
        return Built(index, attempts, result, precheck_s), binary, library
    built_key = plan.claim_key(index, featurization.schedule_key(result.schedule.featurization))
    if built_key != key:
        twin = _claim(seen, built_key, owner)
        if twin is not None:
            return Built(index, attempts, result, precheck_s, duplicate_of=twin), b"", None
    return Built(index, attempts, result, precheck_s, key=built_key), binary, library


def _claim(seen, key: str, owner: int | None) -> int | None:
    if owner is None:
        return None
    if isinstance(seen, SeenSchedules):
        return seen.claim(key, owner)
    return ray.get(seen.claim.remote(key, owner))


@ray.remote(num_returns=3, max_retries=1)
def candidate_task(builder: Builder, plan: Plan, index: int, attempts: int, seen,
                   cpu_limit_s: float | None = None):
    try:
        built, binary, library = build_candidate(builder, plan, index, attempts, seen,
                                                 cpu_limit_s)
    except Exception as e:  # this machine cannot compile (the gate's folder, ...): a value
        fault = fault_of(e)
        if fault is None:
            raise
        return Built(index, attempts, BuildResult(FAULT, error=fault.message, fault=fault,
                                                  host=fault.node)), b"", None
    fault = built.result.fault
    if fault is not None and not fault.node_id:  # met in the compile process, outside Ray
        built = replace(built, result=replace(built.result, fault=replace(
            fault, node_id=ray.get_runtime_context().get_node_id())))
    return built, binary, library


@ray.remote(max_retries=1)
def screen_task(builder: Builder, specs: list, cpu_limit_s: float | None) -> list[BuildResult]:
    """Autoschedule `specs` only, one after another in this worker's compile process, for
    screening them by the model before any is built (farm.tuning.screening)."""
    return [builder.screen(spec, cpu_limit_s) for spec in specs]


@ray.remote(num_cpus=0, max_restarts=3)
class SeenActor:
    """The run's schedule keys, shared by every compile task (claims are serial)."""

    def __init__(self, seen: SeenSchedules):
        self.seen = seen

    def claim(self, key: str, owner: int) -> int | None:
        return self.seen.claim(key, owner)

    def release(self, key: str, owner: int) -> None:
        self.seen.release(key, owner)

    def holds(self, keys: list[str]) -> list[bool]:
        return [self.seen.holds(key) for key in keys]

    def size(self) -> int:
        return len(self.seen)

    def snapshot(self) -> SeenSchedules:
        return self.seen


@dataclass(frozen=True)
class Job:
    """One candidate of the plan a device actor was given (`DeviceActor.begin`): build it
    (or take `prebuilt`), then time it. Small and without object refs, except on a retry:
    a call that carries refs costs the driver Ray's reference bookkeeping."""

    plan: int  # the key the plan was given under
    index: int
    threads: int
    timing: TimingConfig
    compile_timeout_s: float
    keep: bool = False  # hand back the artifact's refs (the caller keeps it for re-timing)
    keep_below_ms: float | None = None  # ... also when it times faster than this
    prebuilt: tuple | None = None  # (Built, binary ref, library ref) from a failed device
    avoid_nodes: tuple[str, ...] = ()  # Ray node ids whose compiles met a lasting fault
    compile_options: tuple[tuple[str, int], ...] = ()  # its compile task's memory (Ray)
    attempt: int = 1  # the draw it is built from first (plan.first_attempt: a screened pick)


@dataclass(frozen=True)
class Done:
    """A device actor's answer to a Job."""

    index: int
    status: str
    built: Built | None = None
    measurement: Measurement | None = None
    error: str = ""
    log: str = ""
    artifact: Artifact | None = None  # of a built candidate
    finished_at: float = field(default_factory=time.time)
    fault: Fault | None = None  # status fault: the lasting fault that met it (not a row)


# ray's typed overloads of ray.remote(...) lack the actor option max_concurrency
@ray.remote(num_cpus=0, max_restarts=3, max_task_retries=0,  # type: ignore[call-overload]
            max_concurrency=MAX_DEPTH + 4)
class DeviceActor:
    """One per device, pinned to the device's node. Calls run concurrently (a thread each);
    a lock lets one binary time at a time, and the device's lease (farm.execution.leases)
    keeps other jobs' timings off it meanwhile."""

    def __init__(self, info: DeviceInfo, opener, builder: Builder, build_options: dict,
                 depth: int = 2, run_grace_s: float = RUN_GRACE_S, holder: str = "",
                 show_job: bool = True):
        # A device that cannot be opened (or whose lease folder cannot be used) answers
        # every call with its Fault: raised here, the typed error would reach the driver
        # only as the text of an ActorDiedError, after Ray restarted the actor to fail again
        self.device: Device | None = None
        self.fault: Fault | None = None
        self._lease: Lease | None = None
        try:
            self._lease = Lease(info.id, Holder.here(
                holder, ray.get_runtime_context().get_job_id() if show_job else ""))
            self.device = opener(info)
        except Exception as e:
            self.fault = fault_of(e, info.id, opening=True)
            if self.fault is None:
                raise  # a bug
        self._info = info
        self.run_grace_s = run_grace_s
        self.builder, self.build_options = builder, build_options
        self._lock = threading.Lock()
        # Of the `depth` candidates it holds, one times while the others compile: more
        # compiles at once would only queue in Ray behind other devices' first ones.
        self._compiling = threading.BoundedSemaphore(max(1, depth - 1))
        self._deadline: float | None = None
        self._plans: dict[int, tuple] = {}  # key -> (plan ref, seen)
        self._given = threading.Condition()
        self._activity: dict[int, tuple[str, float]] = {}  # index -> (phase, since)
        threading.Thread(target=self._watchdog, daemon=True).start()

    def begin(self, key: int, plan, seen) -> None:
        """The plan (and the schedule registry) the next Jobs refer to by `key`. Calls of
        a threaded actor may start out of order: a Job waits for its plan."""
        with self._given:
            self._plans = {key: (ray.put(plan), seen)}  # one plan at a time
            self._given.notify_all()

    def _plan(self, key: int) -> tuple:
        with self._given:
            self._given.wait_for(lambda: key in self._plans, timeout=60)
            return self._plans[key]

    def candidates(self, jobs: list[Job]) -> list[Done]:
        """Several Jobs in one call (the driver's cost is per call): each builds and times
        as `candidate` does, at once; the answer comes when all are done."""
        if len(jobs) == 1:
            return [self.candidate(jobs[0])]
        with ThreadPoolExecutor(len(jobs)) as each:
            return list(each.map(self.candidate, jobs))

    def candidate(self, job: Job) -> Done:
        try:
            return self._candidate(job)
        finally:
            self._activity.pop(job.index, None)

    def activity(self) -> list[tuple[int, str, float]]:
        """What each candidate it holds is doing: (index, phase, since: time.time())."""
        return [(i, phase, since) for i, (phase, since) in list(self._activity.items())]

    def _doing(self, index: int, phase: str) -> None:
        self._activity[index] = (phase, time.time())

    def _candidate(self, job: Job) -> Done:
        if self.fault is not None:
            return Done(job.index, FAULT, error=self.fault.message, fault=self.fault)
        built: Built | None = None
        data: bytes | None = None
        if job.prebuilt is not None:  # built for a device that failed: time it here
            built, binary, library = job.prebuilt
            try:
                data = ray.get(binary)
            except ray.exceptions.RayError:  # its owner died with it: build it again
                built = None
        if built is None:
            plan, seen = self._plan(job.plan)
            self._doing(job.index, "waiting to compile")
            with self._compiling:
                self._doing(job.index, "compiling")
                # num_returns=3: three ObjectRefs, which ray's stubs type as one
                meta, binary, library = cast("list[ray.ObjectRef]", candidate_task.options(
                    num_cpus=self.builder.cpus, **compile_options(job.avoid_nodes),
                    **dict(job.compile_options), **self.build_options).remote(
                    self.builder, plan, job.index, job.attempt, seen, job.compile_timeout_s))
                wall_s = job.compile_timeout_s * COMPILE_WALL_FACTOR
                ready, _ = ray.wait([meta], timeout=wall_s)
            if not ready:
                ray.cancel(meta, force=True)
                return Done(job.index, COMPILE_TIMEOUT, error=f"compile: cancelled after "
                            f"{wall_s:g} s of wall-clock time without finishing "
                            f"({COMPILE_WALL_FACTOR:g} x the {job.compile_timeout_s:g} s "
                            "compile timeout, which counts CPU time)")
            try:
                built = ray.get(meta)
            except ray.exceptions.OutOfMemoryError:  # the compile took what the node had
                return Done(job.index, COMPILE_ERROR, error=f"compile (memory): "
                            f"{MEMORY_KILLED}")
            except ray.exceptions.RayTaskError as e:  # a bug, not a bad candidate
                return Done(job.index, CRASHED, error=f"compile task failed: {first_line(e)}")
            except ray.exceptions.RayError as e:
                return Done(job.index, CRASHED, error="compile worker died twice (Ray retried "
                            f"once): {first_line(e)}")
        if built.status != OK:
            return Done(job.index, built.status, built, error=built.result.error or (
                f"same schedule features as schedule {built.duplicate_of}"),
                log=built.result.log, fault=built.result.fault)
        self._doing(job.index, "timing")
        m = self.run(data if data is not None else ray.get(binary), job.threads, job.timing)
        if m.fault is not None:  # the binary goes to another device, built
            return Done(job.index, FAULT, built, m, error=m.error, fault=m.fault,
                        artifact=Artifact(binary, library))
        keep = m.status == DEVICE_LOST or (m.ok and (job.keep or job.keep_below_ms is None
                                                     or m.best_ms < job.keep_below_ms))
        return Done(job.index, m.status, built, m, error=m.error, log=m.log,
                    artifact=Artifact(binary, library) if keep else None)

    def run(self, binary: bytes, threads: int, timing: TimingConfig) -> Measurement:
        if self.device is None or self._lease is None:
            assert self.fault is not None  # set when the device could not be opened
            return self._faulted(self.fault)
        with self._lock:
            try:
                with self._lease.use():
                    return self._timed(binary, threads, timing)
            except LeaseError as e:  # the lease cannot be taken: lasting, named once
                self.fault = fault_of(e, self.device.info.id, opening=True)
                assert self.fault is not None
                return self._faulted(self.fault)

    def _timed(self, binary: bytes, threads: int, timing: TimingConfig) -> Measurement:
        """(holding the device's lock and lease)"""
        assert self.device is not None
        # (the watchdog's clock starts once another job's lease is over)
        self._deadline = time.monotonic() + timing.timeout_s + self.run_grace_s
        started = time.time()
        try:
            m = self.device.run(binary, threads, timing)
        except Exception as e:  # a prerequisite of the device went away
            fault = fault_of(e, self.device.info.id)
            if fault is None:
                raise
            self.fault = fault  # for good: every later call answers with it
            return self._faulted(fault)
        finally:
            self._deadline = None
        return replace(m, timing_started_at=started, timing_ended_at=time.time())

    def close(self) -> None:
        """The job is done with the device: give its lease up and remove what it left on
        the device."""
        with self._lock:
            if self._lease is not None:
                self._lease.release()
            if self.device is not None:
                self.device.close()

    def _faulted(self, fault: Fault) -> Measurement:
        info = self._info
        return Measurement(FAULT, error=fault.message, device_id=info.id,
                           device_kind=info.kind, node=info.node, node_id=info.node_id,
                           fault=fault)

    def _watchdog(self) -> None:
        """A device call silent well past its run timeout (a wedged adb, a stuck harness)
        ends this process: Ray restarts the actor and the driver retries its calls."""
        while True:
            time.sleep(min(1.0, self.run_grace_s / 2))
            if self._deadline is not None and time.monotonic() > self._deadline:
                os._exit(1)

    def info(self) -> DeviceInfo:
        return self._info

    def pid(self) -> int:
        return os.getpid()


@ray.remote(num_cpus=0, max_retries=1)
def discover_task(node_id: str, node_name: str) -> tuple[list[DeviceInfo], list[str]]:
    """The devices attached to the node this task is pinned to, and notes."""
    from farm.devices.registry import discover_local

    return discover_local(node_name, node_id)


@ray.remote(num_cpus=0, max_retries=1)
def lease_task(device_ids: list[str], recent: int) -> list[LeaseState]:
    """Who holds and who waits for each of these devices of the node it is pinned to."""
    return [lease_state(i, recent=recent) for i in device_ids]


def compile_options(avoid_nodes: tuple[str, ...]) -> dict:
    """Ray options that keep a compile task off `avoid_nodes` (their compiles met a lasting
    fault): a label selector on the node id (Ray 2.49 and newer)."""
    if not avoid_nodes:
        return {}
    return {"label_selector": {"ray.io/node-id": f"!in({','.join(sorted(avoid_nodes))})"}}


# What Ray's errors say of a worker its memory monitor killed (Ray 2.60: the exit type, the
# OutOfMemoryError's text); the rest of its text is the node's whole memory report.
_OOM_WORDS = ("NODE_OUT_OF_MEMORY", "low on memory", "memory monitor", "OutOfMemoryError")


def killed_for_memory(e: Exception) -> bool:
    """Whether Ray's memory monitor killed the worker behind `e` (the node ran low)."""
    return isinstance(e, ray.exceptions.OutOfMemoryError) or any(
        w in f"{type(e).__name__}: {e}" for w in _OOM_WORDS)


MEMORY_KILLED = ("killed by Ray's memory monitor: the node ran low on memory (its report "
                 "is in Ray's logs); lower --batch-size or run fewer jobs on the node")


def describe_death(e: Exception) -> str:
    """One line for a Ray error that ended a worker: memory named when memory it was."""
    if killed_for_memory(e):
        return MEMORY_KILLED
    return f"{type(e).__name__}: {first_line(e)}"


def first_line(e: Exception) -> str:
    """What an error says in one line (for an exception raised in a task: that one)."""
    cause = getattr(e, "cause", None)
    if isinstance(cause, Exception):
        return f"{type(cause).__name__}: {first_line(cause)}"
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
