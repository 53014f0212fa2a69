"""The driver's event loop for one batch of candidates: compile, dedup, time.

A plain `ray.wait` loop (no threads): compile tasks fill the cluster's CPU
slots; a candidate goes to a free device as soon as it is built. Random probes
are autoscheduled first (cheap) so a schedule this run already measured is
redrawn before codegen (50 times dearer). Timeouts kill the work; a device
call that fails is retried once on any device, then recorded as device_lost.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Protocol

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayError, TaskCancelledError

from farm import featurization
from farm.candidate import (
    COMPILE_TIMEOUT,
    CRASHED,
    DEVICE_LOST,
    DUPLICATE,
    OK,
    TRANSIENT,
    BuildResult,
    CandidateSpec,
    Measurement,
)
from farm.errors import WorkFailed
from farm.pool import DeviceHandle, DevicePool
from farm.timing import TimingConfig

CUTOFF_FACTOR = 3.0  # a candidate this much slower than the run's best is timed briefly
RUN_GRACE_S = 30.0  # beyond the run timeout, before the driver kills a silent device actor
DEVICE_TRIES = 2  # times a candidate is handed to a device before it counts as device_lost
TICK_S = 0.25


class NoUsableDevice(WorkFailed):
    """Every device is lost; committed rounds stay as they are."""


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
    artifact: tuple | None = None  # ObjectRefs to (binary, Library), while the driver holds them
    finished_at: float = field(default_factory=time.time)  # when its result came in


class RoundPlan(Protocol):
    def specs(self) -> list[CandidateSpec]: ...

    def precheck(self, index: int) -> bool:
        """Autoschedule first, to catch a duplicate before codegen?"""

    def claim(self, index: int, schedule_key: str) -> int | None:
        """Record the schedule for `index`; return the twin's schedule id if already seen."""

    def release(self, index: int, schedule_key: str) -> None:
        """Forget `index`'s claim: its measurement failed for a transient reason."""

    def redraw(self, index: int, attempt: int) -> CandidateSpec | None:
        """A fresh spec after a duplicate, or None when out of tries."""


@dataclass
class _Candidate:
    index: int
    spec: CandidateSpec
    attempts: int = 1
    precheck_s: float = 0.0
    key: str | None = None
    build: BuildResult | None = None
    binary: object = None  # ObjectRef to the binary's bytes
    library: object = None  # ObjectRef to its Library
    device_tries: int = 0
    failed_on: frozenset[str] = frozenset()  # devices whose calls failed for this candidate


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


class RoundScheduler:
    def __init__(self, builder, pool: DevicePool, *, threads: int, timing: TimingConfig,
                 compile_timeout_s: float, on_update=None):
        self.builder = builder
        self.pool = pool
        self.threads = threads
        self.timing = timing
        self.compile_timeout_s = compile_timeout_s
        self.on_update = on_update or (lambda counts: None)

    def run(self, plan: RoundPlan, best_ms: float | None = None) -> list[Outcome]:
        """Compile and time every candidate of `plan`. `best_ms`, the run's best so far,
        lets clearly slower candidates stop timing after a few repeats."""
        self.plan = plan
        self.best_ms = best_ms
        self.counts = Counts(total=len(plan.specs()))
        self.outcomes: dict[int, Outcome] = {}
        self.todo: deque = deque()
        self.compiling: dict = {}  # ref -> (kind, candidate, started, binary ref)
        self.timing_calls: dict = {}  # ref -> (candidate, device handle, started)
        self.to_time: deque[_Candidate] = deque()
        for i, spec in enumerate(plan.specs()):
            self.todo.append(("auto" if plan.precheck(i) else "build", _Candidate(i, spec)))
        last_done, last_update = -1, 0.0
        try:
            while len(self.outcomes) < self.counts.total:
                self._submit()
                self._wait()
                self._check_timeouts()
                if self.counts.done != last_done or time.monotonic() - last_update > 1.0:
                    self.on_update(self.counts)
                    last_done, last_update = self.counts.done, time.monotonic()
        finally:  # on an error or Ctrl-C, abandon the compile work in flight
            for ref in self.compiling:
                ray.cancel(ref, force=True)
        return [self.outcomes[i] for i in range(self.counts.total)]

    # submitting work
    def _submit(self) -> None:
        now = time.monotonic()
        while self.todo and len(self.compiling) < self.builder.slots:
            kind, c = self.todo.popleft()
            if kind == "auto":
                self.compiling[self.builder.autoschedule(c.spec)] = (kind, c, now, None)
            else:
                meta, binary, library = self.builder.build(c.spec)
                self.compiling[meta] = (kind, c, now, (binary, library))
        for c in list(self.to_time):
            handle = self.pool.acquire(c.failed_on)
            if handle is None:
                if not c.failed_on:
                    break  # no device is free: the others wait too
                continue
            self.to_time.remove(c)
            c.device_tries += 1
            timing = self.timing
            if self.best_ms is not None and c.index != 0:
                timing = replace(timing, cutoff_ms=CUTOFF_FACTOR * self.best_ms)
            ref = handle.actor.run.remote(c.binary, self.threads, timing)
            self.timing_calls[ref] = (c, handle, now)
        if not self.pool.usable():
            errors = "; ".join(self.pool.events[-3:])
            raise NoUsableDevice(f"no usable device is left ({errors})")

    def _wait(self) -> None:
        refs = [*self.compiling, *self.timing_calls]
        if not refs:  # work is waiting for a quarantined device to come back
            time.sleep(TICK_S)
            return
        # Take everything that is ready; block (up to a tick) only when nothing is.
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        if not ready:
            ready, _ = ray.wait(refs, num_returns=1, timeout=TICK_S)
        for ref in ready:
            if ref in self.compiling:
                self._compiled(ref, *self.compiling.pop(ref))
            elif ref in self.timing_calls:
                self._timed(ref, *self.timing_calls.pop(ref))

    # results
    def _compiled(self, ref, kind, c: _Candidate, started, artifact) -> None:
        try:
            result: BuildResult = ray.get(ref)
        except TaskCancelledError:
            return  # cancelled by the timeout check, which recorded the outcome
        except RayError as e:
            self._finish(c, CRASHED, error=f"compile worker died twice (Ray retried once): "
                         f"{_first_line(e)}")
            return
        if kind == "auto":
            c.precheck_s += result.schedule.autoschedule_s if result.schedule else 0.0
        if not result.ok:
            self._finish(c, result.status, error=result.error, build=result, log=result.log)
            return
        key = featurization.schedule_key(result.schedule.featurization)
        if key != c.key:
            twin = self.plan.claim(c.index, key)
            if twin is not None:
                fresh = self.plan.redraw(c.index, c.attempts) if kind == "auto" else None
                if fresh is None:
                    self._finish(c, DUPLICATE, build=result, duplicate_of=twin,
                                 error=f"same schedule features as schedule {twin}")
                else:
                    c.spec, c.attempts = fresh, c.attempts + 1
                    self.todo.appendleft(("auto", c))
                return
            c.key = key
        if kind == "auto":
            self.todo.appendleft(("build", c))  # finish started candidates first
            return
        c.build, (c.binary, c.library) = result, artifact
        self.counts.compiled += 1
        self.to_time.append(c)

    def _timed(self, ref, c: _Candidate, handle: DeviceHandle, started) -> None:
        busy = time.monotonic() - started
        try:
            m: Measurement = ray.get(ref)
        except (RayActorError, GetTimeoutError, RayError) as e:
            self._device_failed(c, handle, busy, f"{type(e).__name__}: {_first_line(e)}")
            return
        if m.status == DEVICE_LOST:
            self._device_failed(c, handle, busy, m.error)
            return
        self.pool.release(handle, busy, ok=True)
        self._finish(c, m.status, error=m.error, build=c.build, measurement=m, log=m.log,
                     artifact=(c.binary, c.library))

    def _device_failed(self, c: _Candidate, handle: DeviceHandle, busy: float, error: str):
        self.pool.release(handle, busy, ok=False, error=error)
        c.failed_on = c.failed_on | {handle.info.id}
        if c.device_tries < DEVICE_TRIES:
            self.to_time.appendleft(c)
        else:
            self._finish(c, DEVICE_LOST, build=c.build,
                         error=f"device {handle.info.id}: {error} (tried {c.device_tries} times)")

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        for ref, (kind, c, started, _) in list(self.compiling.items()):
            if now - started > self.compile_timeout_s:
                del self.compiling[ref]
                ray.cancel(ref, force=True)
                self._finish(c, COMPILE_TIMEOUT, error=f"compile ({kind}): killed after the "
                             f"{self.compile_timeout_s:g} s compile timeout")
        limit = self.timing.timeout_s + RUN_GRACE_S
        for _c, handle, started in list(self.timing_calls.values()):
            if now - started > limit and not handle.killing:
                handle.killing = True  # its call fails next and is retried elsewhere
                ray.kill(handle.actor, no_restart=False)

    def _finish(self, c: _Candidate, status: str, **fields) -> None:
        if status in TRANSIENT and c.key is not None:
            self.plan.release(c.index, c.key)  # a later draw of this schedule is measured
        self.outcomes[c.index] = Outcome(c.index, c.spec, status, attempts=c.attempts,
                                         precheck_s=c.precheck_s, **fields)
        k = self.counts
        k.done += 1
        k.statuses[status] = k.statuses.get(status, 0) + 1
        if status == OK:
            k.timed += 1
            best = fields["measurement"].best_ms
            k.best_ms = best if k.best_ms is None else min(k.best_ms, best)
            self.best_ms = best if self.best_ms is None else min(self.best_ms, best)
        elif status == DUPLICATE:
            k.duplicate += 1
        else:
            k.failed += 1


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
