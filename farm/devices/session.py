"""Finding devices for a command: on this machine, or on a Ray cluster when an address is set."""

from __future__ import annotations

import os

from farm.devices.base import DeviceInfo
from farm.errors import BadInput, MissingPrerequisite
from farm.targets import TargetInfo, resolve


class DeviceSession:
    """Discovers devices (connecting to Ray if an address is given) and opens runners."""

    def __init__(self, address: str | None = None):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.cluster = None
        self.devices: list[DeviceInfo] = []
        self.notes: list[str] = []

    def __enter__(self):
        if self.address:
            from farm.cluster import Cluster

            self.cluster = Cluster(self.address)
            self.cluster.connect()
            self.devices, self.notes = self.cluster.discover()
        else:
            from farm.devices.registry import discover_local

            self.devices, self.notes = discover_local()
        return self

    def __exit__(self, *exc):
        if self.cluster is not None:
            self.cluster.shutdown()

    def pick(self, device_id: str | None, target_text: str | None) -> tuple[DeviceInfo,
                                                                            TargetInfo]:
        """The device `--device` names (default: the first for the target) and the target
        (default: host, or arm-64-android-hvx for a phone), checked for problems."""
        if device_id is not None:
            info = self.find(device_id)
        else:
            kind = resolve(target_text).device_kind if target_text else "host"
            info = next((d for d in self.devices if d.kind == kind), None)
            if info is None:
                raise MissingPrerequisite(f"no {kind} device found (see `farm devices`)")
        target = resolve(target_text or default_target(info))
        check_usable(info, target)
        return info, target

    def find(self, device_id: str) -> DeviceInfo:
        for d in self.devices:
            if d.id == device_id:
                return d
        raise BadInput(f"unknown device {device_id!r}; known devices: "
                       f"{', '.join(d.id for d in self.devices)} (see `farm devices`)")

    def runner(self, info: DeviceInfo):
        from farm.single_run import LocalRunner, RayRunner

        if self.cluster is not None:
            return RayRunner(info)
        from farm.devices.registry import open_device

        return LocalRunner(open_device(info))


def default_target(info: DeviceInfo) -> str:
    return "arm-64-android-hvx" if info.kind == "android" else "host"


def check_usable(info: DeviceInfo, target: TargetInfo) -> None:
    problem = info.problem_for(target)
    if problem:
        raise MissingPrerequisite(f"device {info.id} cannot be used: {problem}")
