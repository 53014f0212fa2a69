"""Device actors and compile tasks on Ray: who is free, who failed, who is quarantined.

A pool is plain state (Ray's ActorPool shape): device handles with their
actor and health, and a builder that submits compile tasks. A device whose
calls keep failing is quarantined and tried again later; one that failed too
often, or whose actor is gone for good, is lost and never handed work again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from farm.candidate import CandidateSpec
from farm.devices.base import DeviceInfo

QUARANTINE_AFTER = 3  # consecutive failed calls
QUARANTINE_S = 30.0  # first quarantine; doubles each time
LOST_AFTER = 4  # quarantines before a device counts as lost


@dataclass
class DeviceHandle:
    info: DeviceInfo
    actor: object  # ray.actor.ActorHandle
    busy: bool = False
    failures: int = 0  # consecutive failed calls
    quarantines: int = 0
    quarantined_until: float = 0.0
    lost: bool = False
    timed: int = 0
    busy_s: float = 0.0
    last_error: str = ""
    killing: bool = False  # the driver killed its actor for hanging

    def available(self, now: float) -> bool:
        return not (self.busy or self.lost or self.quarantined_until > now)


@dataclass
class DevicePool:
    handles: list[DeviceHandle]
    events: list[str] = field(default_factory=list)  # quarantines and losses, for the log
    options: dict = field(default_factory=dict)  # passed to each device actor
    quarantine_after: int = QUARANTINE_AFTER
    quarantine_s: float = QUARANTINE_S
    lost_after: int = LOST_AFTER

    @classmethod
    def create(cls, devices: list[DeviceInfo], options: dict, **policy) -> DevicePool:
        pool = cls([], options=options, **policy)
        for info in devices:
            pool.handles.append(DeviceHandle(info, pool._actor(info)))
        return pool

    def _actor(self, info: DeviceInfo):
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from farm.workers import DeviceActor

        strategy = (NodeAffinitySchedulingStrategy(info.node_id, soft=False)
                    if info.node_id else "DEFAULT")
        return DeviceActor.options(scheduling_strategy=strategy).remote(info, self.options)

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

    def acquire(self, avoid: frozenset[str] = frozenset()) -> DeviceHandle | None:
        """An idle, healthy device (the least used first), marked busy. Devices in `avoid`
        (where this work already failed) are passed over while any other can take it."""
        now = time.monotonic()
        others = [h for h in self.usable() if h.info.id not in avoid]
        free = [h for h in (others or self.usable()) if h.available(now)]
        if not free:
            return None
        handle = min(free, key=lambda h: (h.failures, h.busy_s))
        handle.busy = True
        return handle

    def release(self, handle: DeviceHandle, busy_s: float, ok: bool, error: str = "") -> None:
        handle.busy = handle.killing = False
        handle.busy_s += busy_s
        if ok:
            handle.timed += 1
            handle.failures = 0
            return
        handle.failures += 1
        handle.last_error = error
        if handle.failures >= self.quarantine_after:
            handle.failures = 0
            handle.quarantines += 1
            if handle.quarantines >= self.lost_after:
                self.lose(handle, error)
            else:
                wait = self.quarantine_s * 2 ** (handle.quarantines - 1)
                handle.quarantined_until = time.monotonic() + wait
                self.events.append(f"{handle.info.id} quarantined for {wait:.0f} s after "
                                   f"{self.quarantine_after} failures in a row: {error}")

    def lose(self, handle: DeviceHandle, error: str) -> None:
        import ray

        handle.lost = True
        handle.busy = False
        self.events.append(f"{handle.info.id} lost: {error}")
        ray.kill(handle.actor)  # never handed work again; free its process

    def retime(self, binaries: dict, threads: int, timing, rounds: int, decided=None,
               timeout_s: float = 900.0) -> dict:
        """Time each binary (label -> ObjectRef) `rounds` times, interleaved, on one free
        device (farm.verdict.interleave); {} when no device is left."""
        import ray

        from farm import verdict

        handle = None
        while handle is None:
            handle = self.acquire()
            if handle is None:
                if not self.usable():
                    return {}
                time.sleep(0.25)  # every device is busy or quarantined

        def time_one(label):
            try:
                m = ray.get(handle.actor.run.remote(binaries[label], threads, timing),
                            timeout=timeout_s)
            except (ray.exceptions.RayError, TimeoutError):
                return None
            return m.best_ms if m.ok else None

        try:
            return verdict.interleave(list(binaries), time_one, rounds, decided=decided)
        finally:
            self.release(handle, 0.0, ok=True)

    def usable(self) -> list[DeviceHandle]:
        return [h for h in self.handles if not h.lost]

    def shutdown(self) -> None:
        import ray

        for h in self.handles:
            ray.kill(h.actor)


class RayBuilder:
    """Submits compile work as Ray tasks: on any node with a free CPU, or, when `nodes` is
    given (Android targets link with the NDK of the phones' nodes), on those nodes."""

    def __init__(self, slots: int, nodes: list[str] | None = None):
        self.slots = slots
        self.nodes = nodes or []
        self._turn = 0

    def _options(self) -> dict:
        if not self.nodes:
            return {}
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._turn += 1
        node = self.nodes[self._turn % len(self.nodes)]
        return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node, soft=False)}

    def autoschedule(self, spec: CandidateSpec):
        from farm.workers import autoschedule_task

        return autoschedule_task.options(**self._options()).remote(spec)

    def build(self, spec: CandidateSpec):
        """Refs to (BuildResult, binary bytes, Library)."""
        from farm.workers import build_task

        return build_task.options(**self._options()).remote(spec)


class SyntheticBuilder:
    """Compile tasks that sleep `seconds` and hold no CPU: the driver's cost, measured."""

    def __init__(self, slots: int, seconds: float):
        self.slots = slots
        self.seconds = seconds

    def autoschedule(self, spec: CandidateSpec):
        from farm.workers import synthetic_autoschedule_task

        return synthetic_autoschedule_task.remote(spec)

    def build(self, spec: CandidateSpec):
        from farm.workers import synthetic_build_task

        return synthetic_build_task.remote(spec, self.seconds)
