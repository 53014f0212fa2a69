"""Devices of this machine, for commands that run without a Ray cluster."""

from __future__ import annotations

from farm.devices.base import Device
from farm.devices.host import host_info, local_host_device
from farm.errors import BadInput
from farm.targets import TargetInfo


def open_local_device(device_id: str | None, target: TargetInfo) -> Device:
    host = host_info()
    if target.is_android:
        raise BadInput(f"no Android device on this machine for target {target.compile}")
    if device_id in (None, host.id):
        return local_host_device()
    raise BadInput(f"unknown device {device_id!r}; this machine has: {host.id} "
                   "(see `farm devices`)")
