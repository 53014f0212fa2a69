"""The device pool: device actors on Ray, who is free, who failed, who is quarantined.

Plain state (Ray's ActorPool shape): a handle per device with its actor, the
candidates it holds and its health. A device whose calls keep failing is quarantined
and tried again later; one that failed too often, or whose actor is gone for
good, is lost and never handed work again. Every command compiles and times
through a pool: `farm autotune` (RoundScheduler), the beam-search check and
the final re-timing, `farm run` and `farm bench` (build, retime).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import ray
from ray.exceptions import GetTimeoutError, RayError

from farm import faults
from farm.build.builder import Builder
from farm.candidate import (
    COMPILE_ERROR,
    COMPILE_WALL_FACTOR,
    DEVICE_LOST,
    BuildResult,
    CandidateSpec,
)
from farm.devices.base import DeviceInfo
from farm.devices.timing import TimingConfig
from farm.errors import FarmError, WorkFailed
from farm.execution.cluster import ClusterLike
from farm.execution.memory import CompileMemory, kept_compile_memory, smallest_node_mb
from farm.execution.workers import (
    MAX_DEPTH,
    MEMORY_KILLED,
    RUN_GRACE_S,
    Built,
    DeviceActor,
    candidate_task,
    compile_options,
    first_line,
    killed_for_memory,
    screen_task,
)
from farm.faults import Fault
from farm.machine.targets import TargetInfo
from farm.search.plans import FixedPlan
from farm.stats import verdict

QUARANTINE_AFTER = 3  # consecutive failed calls
QUARANTINE_S = 30.0  # first quarantine; doubles each time
LOST_AFTER = 4  # quarantines before a device counts as lost
CLOSE_S = 10.0  # a device's clean-up at the end, before its actor is ended anyway
DEVICE_TRIES = 2  # times a timing is handed to a device before it counts as device_lost
# A device whose actor died takes no work until its restarted actor answers a first call:
# sent at once, that call can reach the dead process before Ray has noticed, and fail.
REJOIN_TRIES = 10  # first calls that may fail so before the device counts a failure
REJOIN_PAUSE_S = 1.0


class NoUsableDevice(WorkFailed):
    """Every device is lost; committed rounds stay as they are."""


@dataclass
class Rejoin:
    """The first call to a device's restarted actor (one that sets it up again), made
    anew until it answers."""

    call: Callable[[], Any]  # makes the call: an ObjectRef
    ref: Any
    at: float  # when it was made (monotonic)
    tries: int = 1


@dataclass
class DeviceHandle:
    info: DeviceInfo
    actor: Any  # ActorHandle of a farm.execution.workers.DeviceActor (untyped methods)
    held: int = 0  # candidates (or re-timing calls) it holds now
    failures: int = 0  # consecutive failed calls
    quarantines: int = 0
    quarantined_until: float = 0.0
    lost: bool = False
    timed: int = 0
    busy_s: float = 0.0
    last_error: str = ""
    failed_at: float = 0.0  # when a call of it last failed (monotonic)
    rejoin: Rejoin | None = None  # its actor died: no work until the restarted one answers

    def available(self, now: float, depth: int) -> bool:
        return not (self.lost or self.held >= depth or self.quarantined_until > now
                    or self.rejoin is not None)


def open_device(info: DeviceInfo, isolation: str = "pause"):
    from farm.devices.registry import open_device as registry_open

    return registry_open(info, isolation)


@dataclass
class DevicePool:
    handles: list[DeviceHandle]
    builder: Builder
    opener: object = open_device  # DeviceInfo -> Device, called in each device actor
    depth: int = 2  # candidates a device holds at once: their compiles overlap its timing
    build_on_device_node: bool = False  # Android: link with the NDK of the phone's node
    run_grace_s: float = RUN_GRACE_S  # past the run timeout, a silent device actor ends itself
    events: list[str] = field(default_factory=list)  # quarantines and losses, for the log
    faults: list[Fault] = field(default_factory=list)  # lasting faults that took devices out
    faulty_nodes: set[str] = field(default_factory=set)  # Ray node ids whose compiles fail
    quarantine_after: int = QUARANTINE_AFTER
    quarantine_s: float = QUARANTINE_S
    lost_after: int = LOST_AFTER
    holder: str = ""  # who the device leases are for: the run directory, or the command
    # the Ray job that holds them, shown by `farm devices`: on a shared cluster only (every
    # embedded cluster's one job is 01000000, which tells nobody anything)
    show_job: bool = True
    memory: CompileMemory = field(default_factory=CompileMemory)  # what compiles declare

    @classmethod
    def create(cls, devices: list[DeviceInfo], builder: Builder, *, compile_slots: int = 1,
               opener=None, isolation: str = "pause", **options) -> DevicePool:
        """A pool over `devices`. Each holds enough candidates that `compile_slots` CPUs
        compile at once: ceil(slots / devices) + 1 (one timing while the rest compile)."""
        depth = min(MAX_DEPTH, math.ceil(compile_slots / max(1, len(devices))) + 1)
        pool = cls([], builder, opener or functools.partial(open_device, isolation=isolation),
                   depth=depth, **options)
        for info in devices:
            pool.handles.append(DeviceHandle(info, pool._actor(info)))
        pool.memory = kept_compile_memory()
        pool.memory.cap_mb = smallest_node_mb()
        return pool

    @classmethod
    def on_cluster(cls, devices: list[DeviceInfo], target: TargetInfo, builder: Builder,
                   cluster: ClusterLike, **options) -> DevicePool:
        """A pool over `devices` compiling on `cluster` (farm.execution.cluster.Cluster): on all its
        CPUs, or, for Android targets, on the phones' own nodes, whose NDK links them."""
        # (devices found without Ray have no node id: this machine is the whole cluster)
        nodes = ({d.node_id for d in devices if d.node_id} or None) if target.is_android \
            else None
        options.setdefault("show_job", not cluster.local)
        return cls.create(devices, builder, compile_slots=cluster.compile_slots(nodes),
                          build_on_device_node=target.is_android, **options)

    def _actor(self, info: DeviceInfo):
        strategy = _on_node(info.node_id) if info.node_id else "DEFAULT"
        build = {"scheduling_strategy": _on_node(info.node_id)} \
            if self.build_on_device_node and info.node_id else {}
        # mypy keeps a class's own type under a class decorator (python/mypy#3135): ray.remote
        # made DeviceActor an ActorClass
        return DeviceActor.options(  # type: ignore[attr-defined]
            scheduling_strategy=strategy).remote(
            info, self.opener, self.builder, build, self.depth, self.run_grace_s, self.holder,
            self.show_job)

    def refresh(self, found: list[DeviceInfo]) -> list[str]:
        """Take in devices that appeared and drop those that disappeared (between rounds)."""
        changes = []
        by_id = {d.id: d for d in found}
        for h in self.handles:
            if h.info.id not in by_id and not h.lost:
                self.lose(h, "no longer found by discovery")
                changes.append(f"{h.info.id} disappeared")
        known = {h.info.id for h in self.handles if not h.lost}
        for info in found:
            if info.id in known:
                continue
            was_lost = any(h.info.id == info.id for h in self.handles)
            self.handles = [h for h in self.handles if h.info.id != info.id]
            self.handles.append(DeviceHandle(info, self._actor(info)))
            changes.append(f"{info.id} {'is back' if was_lost else 'appeared'}")
        return changes

    # health
    def acquire(self, avoid: frozenset[str] = frozenset()) -> DeviceHandle | None:
        """A healthy device with room for a call (the least loaded first), its call counted.
        Devices in `avoid` (where this work already failed) are passed over while any
        other can take it."""
        others = [h for h in self.usable() if h.info.id not in avoid]
        return self._take(others or self.usable())

    def _take(self, handles: list[DeviceHandle]) -> DeviceHandle | None:
        """The least loaded of `handles` with room for a call, its call counted."""
        self.settle()
        now = time.monotonic()
        free = [h for h in handles if h.available(now, self.depth)]
        if not free:
            return None
        handle = min(free, key=lambda h: (h.held, h.failures, h.busy_s))
        handle.held += 1
        return handle

    def reserve(self, handle: DeviceHandle) -> bool:
        """Room for one more candidate on `handle` (counted when there is)?"""
        if handle.held >= self.depth:
            return False
        handle.held += 1
        return True

    @property
    def chunk(self) -> int:
        """Candidates per call: a device holds about two calls, so one's answer comes back
        while the other keeps it busy (the driver's cost is per call, not per candidate)."""
        return max(1, self.depth // 2)

    def release(self, handle: DeviceHandle, busy_s: float, ok: bool, error: str = "",
                submitted: float | None = None) -> None:
        """A call of `handle` (made at monotonic time `submitted`) answered."""
        handle.held = max(0, handle.held - 1)
        handle.busy_s += busy_s
        if ok:
            handle.timed += 1
            handle.failures = 0
        else:
            self.failed(handle, error, submitted)

    def failed(self, handle: DeviceHandle, error: str, submitted: float | None = None) -> None:
        """A call of `handle` failed: quarantine it after a few in a row, lose it after a
        few quarantines. A call made before the device's last failure was in flight then:
        it fails with it (a dead actor fails every call it held) and is not counted again."""
        if submitted is not None and submitted < handle.failed_at:
            return
        handle.failed_at = time.monotonic()
        handle.failures += 1
        handle.last_error = error
        if handle.failures < self.quarantine_after:
            return
        handle.failures = 0
        handle.quarantines += 1
        if handle.quarantines >= self.lost_after:
            self.lose(handle, error)
            return
        wait = self.quarantine_s * 2 ** (handle.quarantines - 1)
        handle.quarantined_until = time.monotonic() + wait
        self.events.append(f"{handle.info.id} quarantined for {wait:.0f} s after "
                           f"{self.quarantine_after} failures in a row: {error}")

    def rejoin(self, handle: DeviceHandle, call: Callable[[], Any]) -> None:
        """`handle`'s actor died and Ray restarts it: `call()` is its first call (made
        again until it answers); the device takes no work meanwhile."""
        handle.rejoin = Rejoin(call, call(), time.monotonic())

    def settle(self) -> None:
        """Restarted actors that answered their first call take work again (not waited
        for); one whose first call kept failing counts a failure."""
        for h in self.usable():
            r = h.rejoin
            if r is None or not ray.wait([r.ref], timeout=0)[0]:
                continue
            try:
                ray.get(r.ref)
                h.rejoin = None
            except RayError as e:
                if r.tries >= REJOIN_TRIES:
                    h.rejoin = None
                    self.failed(h, f"{type(e).__name__}: {first_line(e)}")
                elif time.monotonic() - r.at >= REJOIN_PAUSE_S:
                    h.rejoin = Rejoin(r.call, r.call(), time.monotonic(), r.tries + 1)

    def wait_rejoined(self, handle: DeviceHandle) -> None:
        """Until `handle`'s restarted actor answers its first call, or counts a failure."""
        while handle.rejoin is not None and not handle.lost:
            ray.wait([handle.rejoin.ref], timeout=REJOIN_PAUSE_S)
            self.settle()

    def lose(self, handle: DeviceHandle, error: str) -> None:
        self._retire([handle], f"{handle.info.id} lost: {error}")

    def _retire(self, handles: list[DeviceHandle], event: str) -> None:
        """Never hand `handles` work again, free their processes, and say why."""
        for h in handles:
            h.lost = True
            ray.kill(h.actor)
        self.events.append(event)

    def take_out(self, fault: Fault, handle: DeviceHandle | None = None) -> None:
        """A lasting fault (farm.faults) takes out of the run the device that met it (its
        own prerequisite), or the node whose compile work met it: that node's devices
        (any device found without Ray: the machine is the whole cluster) and, from now
        on, its compiles. Named once, in `events` and in `faults`: a device's candidates
        in flight when its prerequisite went each report the same fault."""
        if fault in self.faults:
            return
        self.faults.append(fault)
        if fault.device:
            out = [handle] if handle is not None and not handle.lost else []
        else:
            if fault.node_id:
                self.faulty_nodes.add(fault.node_id)
            out = [h for h in self.usable()
                   if not h.info.node_id or h.info.node_id == fault.node_id]
        if out:
            self._retire(out, f"{', '.join(h.info.id for h in out)} out of the run "
                         f"({fault.cause}): {fault.message}")

    def no_device_left(self) -> FarmError:
        """Why nothing is usable: the lasting faults, else the devices' losses."""
        if self.faults:
            return faults.stop(self.faults)
        return NoUsableDevice(f"no usable device is left ({'; '.join(self.events[-3:])})")

    def usable(self) -> list[DeviceHandle]:
        return [h for h in self.handles if not h.lost]

    def wait_for_quarantine(self, longest_s: float) -> None:
        """Sleep until the first quarantined device may be tried again (at most
        `longest_s`): nothing else can make progress meanwhile."""
        now = time.monotonic()
        ends = [h.quarantined_until for h in self.usable() if h.quarantined_until > now]
        time.sleep(min(longest_s, min(ends) - now) if ends else longest_s)

    # building and re-timing outside a round
    def build(self, specs: list[CandidateSpec], timeout_s: float
              ) -> list[tuple[Built | None, object, object]]:
        """Build `specs` as given (compile tasks on the cluster), each with `timeout_s` of
        CPU; for each (Built, or None when its worker died or the builds hung past the
        wall-clock backstop; binary ref, library ref). A build out of CPU is a Built with
        status compile_timeout. A build that meets a lasting fault takes its node out
        (take_out) and is built again elsewhere; with no device left, errors.LastingFault."""
        out: list[tuple[Built | None, object, object]] = [(None, None, None)] * len(specs)
        todo = list(range(len(specs)))
        while todo:
            if not self.usable():
                raise self.no_device_left()
            done = self._build_once([specs[i] for i in todo], timeout_s)
            again = []
            for i, (built, binary, library) in zip(todo, done, strict=True):
                fault = built.result.fault if built is not None else None
                if fault is None:
                    out[i] = (built, binary, library)
                    continue
                self.take_out(fault)
                if fault.node_id not in self.faulty_nodes:  # nowhere else to build it
                    raise self.no_device_left()
                again.append(i)
            todo = again
        self.memory.keep()
        return out

    def screen(self, specs: list[CandidateSpec], timeout_s: float) -> list[BuildResult]:
        """Autoschedule `specs` only (Builder.screen), in chunks spread over the cluster's
        CPUs, each with `timeout_s` of CPU: screening candidates by the model before they
        are built (farm.tuning.screening). A draw whose task failed is a compile_error; a
        lasting fault is left for the round's builds to meet and handle."""
        if not specs:
            return []
        tasks = max(1, min(len(specs), 2 * int(ray.cluster_resources().get("CPU", 1))))
        chunks = [specs[i::tasks] for i in range(tasks)]
        refs = [screen_task.options(num_cpus=self.builder.cpus,
                                    **compile_options(tuple(self.faulty_nodes)),
                                    **self.memory.options(chunk[0]),
                                    ).remote(self.builder, chunk, timeout_s)
                for chunk in chunks]
        deadline = time.monotonic() + COMPILE_WALL_FACTOR * timeout_s * len(chunks[0])
        out: list[BuildResult | None] = [None] * len(specs)
        for i, ref in enumerate(refs):
            try:
                results = ray.get(ref, timeout=max(0.0, deadline - time.monotonic()))
            except (RayError, GetTimeoutError) as e:
                ray.cancel(ref, force=True)
                failed = BuildResult(COMPILE_ERROR, error=f"screening: {first_line(e)}")
                results = [failed] * len(chunks[i])
            for j, result in enumerate(results):
                out[i + j * tasks] = result
        return [r for r in out if r is not None]

    def _build_once(self, specs: list[CandidateSpec], timeout_s: float
                    ) -> list[tuple[Built | None, object, object]]:
        plan = ray.put(FixedPlan(specs))
        nodes = sorted({h.info.node_id for h in self.usable() if h.info.node_id}) \
            if self.build_on_device_node else []
        # num_returns=3: each call gives three ObjectRefs, which ray's stubs type as one
        refs = [cast("list[ray.ObjectRef]", candidate_task.options(
            num_cpus=self.builder.cpus, **compile_options(tuple(self.faulty_nodes)),
            **self.memory.options(spec),
            **({"scheduling_strategy": _on_node(nodes[i % len(nodes)])} if nodes else {}),
        ).remote(self.builder, plan, i, 1, None, timeout_s)) for i, spec in enumerate(specs)]
        # as if built one after another: a backstop for hangs, CPU time bounds the rest
        deadline = time.monotonic() + COMPILE_WALL_FACTOR * timeout_s * len(specs)
        out: list[tuple[Built | None, object, object]] = []
        for meta, binary, library in refs:
            spec = specs[len(out)]
            try:
                built = ray.get(meta, timeout=max(0.0, deadline - time.monotonic()))
            except (RayError, GetTimeoutError) as e:
                ray.cancel(meta, force=True)
                built = None
                if killed_for_memory(e):  # a row that says so; run alone next time
                    self.memory.killed(spec)
                    built = Built(len(out), 1, BuildResult(
                        COMPILE_ERROR, error=f"compile (memory): {MEMORY_KILLED}"))
            if built is not None:
                self.memory.measured(spec, built.result)
            out.append((built, binary, library))
        return out

    def retime(self, binaries: dict, threads: int, timing: TimingConfig, rounds: int,
               decided=None, timeout_s: float = 900.0, device: str | None = None,
               errors: dict | None = None, on_round=None) -> dict:
        """Time each binary (label -> ObjectRef or bytes) `rounds` times, interleaved, on
        one device (`device`, else the first free one; farm.stats.verdict.interleave): each
        label's times aligned by round, None where a timing failed (its error in `errors`).
        A call that fails is tried again (a killed actor is restarted by Ray), and counts
        against the device's health. A device that meets a lasting fault goes out of the
        run and the re-timing starts again on another (one device's timings are compared);
        with none left, errors.LastingFault. {} when no device is left otherwise."""
        while True:
            handle = self._one(device)
            if handle is None:
                if self.faults:
                    raise self.no_device_left()
                return {}
            try:
                return self._retime_on(handle, binaries, threads, timing, rounds, decided,
                                       timeout_s, errors, on_round)
            except _TakenOut:
                continue

    def _retime_on(self, handle: DeviceHandle, binaries: dict, threads: int,
                   timing: TimingConfig, rounds: int, decided, timeout_s: float,
                   errors: dict | None, on_round=None) -> dict:
        def time_one(label):
            for _ in range(DEVICE_TRIES):
                started = time.monotonic()
                try:
                    m = ray.get(handle.actor.run.remote(binaries[label], threads, timing),
                                timeout=timeout_s)
                except GetTimeoutError:
                    ray.kill(handle.actor, no_restart=False)
                    self.failed(handle, f"no answer within {timeout_s:g} s")
                    self.rejoin(handle, handle.actor.activity.remote)
                    self.wait_rejoined(handle)
                    continue
                except RayError as e:
                    self.failed(handle, f"{type(e).__name__}: {first_line(e)}")
                    self.rejoin(handle, handle.actor.activity.remote)
                    self.wait_rejoined(handle)
                    continue
                handle.busy_s += time.monotonic() - started
                if m.fault is not None:
                    self.take_out(m.fault, handle)
                    raise _TakenOut
                if m.status == DEVICE_LOST:
                    self.failed(handle, m.error)
                    continue
                if not m.ok and errors is not None:
                    errors[label] = m.error
                return m.best_ms if m.ok else None
            return None

        try:
            return verdict.interleave(list(binaries), time_one, rounds, decided=decided,
                                      on_round=on_round)
        finally:
            handle.held -= 1

    def _one(self, device: str | None) -> DeviceHandle | None:
        """A device (`device`, or any) with room for a call, waiting out quarantines; None
        when none is left."""
        while True:
            wanted = [h for h in self.usable() if device in (None, h.info.id)]
            if not wanted:
                return None
            handle = self._take(wanted)
            if handle is not None:
                return handle
            self.wait_for_quarantine(1.0)

    def shutdown(self) -> None:
        """Each device gives its lease up and removes what the job left on it (a device
        that does not answer within CLOSE_S is not waited for), then its actor ends."""
        closing = [h.actor.close.remote() for h in self.handles if not h.lost]
        if closing:
            ray.wait(closing, num_returns=len(closing), timeout=CLOSE_S)
        for h in self.handles:
            ray.kill(h.actor)


class _TakenOut(Exception):
    """The device a re-timing ran on met a lasting fault."""


def _on_node(node_id: str):
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id, soft=False)
