"""Device kinds by name: discovery on this machine and opening a device from its info."""

from __future__ import annotations

from farm.devices.base import HOST, Device, DeviceInfo
from farm.devices.host import HostDevice, host_info


def discover_local(node_name: str | None = None, node_id: str = "") -> list[DeviceInfo]:
    """The devices of this machine: its CPU (and phones over adb, see farm.devices.android)."""
    return [host_info(node_name, node_id)]


def open_device(info: DeviceInfo, isolation: str = "pause") -> Device:
    if info.kind == HOST:
        return HostDevice(info, isolation)
    raise ValueError(f"unknown device kind {info.kind!r}")
