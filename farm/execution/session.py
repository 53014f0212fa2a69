"""Devices for a command: discovered on the Ray cluster (an embedded local one without an
address), chosen, checked against the target, and opened as a device pool."""

from __future__ import annotations

from dataclasses import dataclass

from farm.devices.base import DeviceInfo
from farm.errors import BadInput, MissingPrerequisite
from farm.execution.leases import LeaseState, lease_dir
from farm.machine.targets import TargetInfo, resolve
from farm.machine.toolchain import prepare_here


@dataclass(frozen=True)
class FoundDevices:
    """`farm devices`' answer (farm.api.devices)."""

    devices: list[DeviceInfo]
    notes: list[str]  # what kept other devices from being found
    leases: dict[str, LeaseState]  # by device id: who holds it, who waits


class DeviceSession:
    """Discovers the devices and opens pools over them on Ray (farm.execution.cluster). This
    machine's devices are found without Ray (`farm devices` need not start it); Ray starts
    with the first pool."""

    def __init__(self, address: str | None = None, cluster=None, holder: str = ""):
        """`holder`: what the device leases are taken for (the run directory, or the
        command), as `farm devices` shows it."""
        from farm.execution.cluster import Cluster

        self.cluster = cluster or Cluster(address)
        self._here = cluster is None and self.cluster.local
        self.holder = holder
        self.devices: list[DeviceInfo] = []
        self.notes: list[str] = []
        self._pools: list = []

    def __enter__(self):
        if self._here:
            from farm.devices.registry import discover_local

            self.devices, self.notes = discover_local()
        else:
            self.cluster.connect()
            self.devices, self.notes = self.cluster.discover()
        return self

    def __exit__(self, *exc):
        for pool in self._pools:
            pool.shutdown()
        self.cluster.shutdown()

    def pool(self, infos: list[DeviceInfo], target: TargetInfo, builder=None, **options):
        """A device pool over `infos` (farm.execution.pool), compiling on the whole cluster (Android
        candidates on the phones' own nodes, whose NDK links them)."""
        from farm.build.builder import HalideBuilder
        from farm.execution.pool import DevicePool

        self.preflight(infos)
        if self.cluster.local:
            prepare_here(target)
        self.cluster.connect()  # (once: it returns when Ray is up)
        options.setdefault("holder", self.holder)
        pool = DevicePool.on_cluster(infos, target, builder or HalideBuilder(), self.cluster,
                                     **options)
        self._pools.append(pool)
        return pool

    def preflight(self, infos: list[DeviceInfo]) -> None:
        """What this machine's devices need that Ray cannot fix (the compile gate's and the
        leases' folders), refused in a second: before Ray starts, and before a command's
        own long work (a model's training) that would end in the same refusal."""
        from farm.devices.host import check_here

        if self._here:
            check_here(infos)
            lease_dir()

    def leases(self, recent: int = 0) -> dict:
        """Who holds and who waits for each device, with its last `recent` logged leases
        (farm.execution.leases.LeaseState by device id), read on the device's node."""
        if self._here:
            from farm.execution.leases import state

            return {d.id: state(d.id, recent=recent) for d in self.devices}
        return self.cluster.leases(self.devices, recent)

    def pick(self, device_id: str | None, target_text: str | None) -> tuple[DeviceInfo,
                                                                            TargetInfo]:
        """The device `--device` names (default: the first for the target) and the target
        (default: host, or arm-64-android-hvx for a phone), checked for problems."""
        if device_id is not None and target_text is None:
            target_text = default_target(find(self.devices, device_id))
        target = resolve(target_text or "host")
        return choose(self.devices, [device_id] if device_id else [], target)[0], target


def find(devices: list[DeviceInfo], device_id: str) -> DeviceInfo:
    for d in devices:
        if d.id == device_id:
            return d
    raise BadInput(f"unknown device {device_id!r}; known devices: "
                   f"{', '.join(d.id for d in devices)} (see `farm devices`)")


def choose(found: list[DeviceInfo], device_ids, target: TargetInfo, strict: bool = True
           ) -> list[DeviceInfo]:
    """The devices to time `target` on: those `device_ids` names (each must exist and suit
    it), else every one of `found` that suits it (at least one). Not strict (between
    rounds, when phones come and go): those of them found now, silently."""
    if not strict:
        wanted = set(device_ids) or {d.id for d in found}
        return [d for d in found if d.id in wanted and not d.problem_for(target)]
    if device_ids:
        chosen = [find(found, i) for i in device_ids]
        for d in chosen:
            check_usable(d, target)
        return chosen
    usable = [d for d in found if not d.problem_for(target)]
    if not usable:
        problems = "; ".join(f"{d.id}: {d.problem_for(target)}" for d in found
                             if d.kind == target.device_kind)
        raise MissingPrerequisite(f"no usable {target.device_kind} device for target "
                                  f"{target.compile}" + (f" ({problems})" if problems
                                                         else " (see `farm devices`)"))
    return usable


def default_target(info: DeviceInfo) -> str:
    """The target its kind compiles for when none is given: a phone's class target (its
    SoC's HVX version, farm.devices.classes), a host's "host"."""
    from farm.devices.registry import default_target as of_kind

    return of_kind(info)


def check_usable(info: DeviceInfo, target: TargetInfo) -> None:
    problem = info.problem_for(target)
    if problem:
        raise MissingPrerequisite(f"device {info.id} cannot be used: {problem}")
