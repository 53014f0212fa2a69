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

    @classmethod
    def create(cls, devices: list[DeviceInfo], options: dict) -> DevicePool:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from farm.workers import DeviceActor

        handles = []
        for info in devices:
            strategy = (NodeAffinitySchedulingStrategy(info.node_id, soft=False)
                        if info.node_id else "DEFAULT")
            actor = DeviceActor.options(scheduling_strategy=strategy).remote(info, options)
            handles.append(DeviceHandle(info, actor))
        return cls(handles)

    def acquire(self) -> DeviceHandle | None:
        """An idle, healthy device (the least used first), marked busy."""
        now = time.monotonic()
        free = [h for h in self.handles if h.available(now)]
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
        if handle.failures >= QUARANTINE_AFTER:
            handle.failures = 0
            handle.quarantines += 1
            if handle.quarantines >= LOST_AFTER:
                self.lose(handle, error)
            else:
                wait = QUARANTINE_S * 2 ** (handle.quarantines - 1)
                handle.quarantined_until = time.monotonic() + wait
                self.events.append(f"{handle.info.id} quarantined for {wait:.0f} s after "
                                   f"{QUARANTINE_AFTER} failures in a row: {error}")

    def lose(self, handle: DeviceHandle, error: str) -> None:
        handle.lost = True
        handle.busy = False
        self.events.append(f"{handle.info.id} lost: {error}")

    def usable(self) -> list[DeviceHandle]:
        return [h for h in self.handles if not h.lost]

    def next_return(self) -> float | None:
        """When the earliest quarantined device may be tried again (monotonic time)."""
        times = [h.quarantined_until for h in self.usable() if h.quarantined_until > 0]
        return min(times) if times else None

    def shutdown(self) -> None:
        import ray

        for h in self.handles:
            ray.kill(h.actor)


class RayBuilder:
    """Submits compile work as Ray tasks on any node with a free CPU."""

    def __init__(self, slots: int):
        self.slots = slots

    def autoschedule(self, spec: CandidateSpec):
        from farm.workers import autoschedule_task

        return autoschedule_task.remote(spec)

    def build(self, spec: CandidateSpec):
        """(ref to BuildResult, ref to binary bytes)."""
        from farm.workers import build_task

        return build_task.remote(spec)
