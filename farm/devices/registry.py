"""Device kinds by name: discovery on this machine and opening a device from its info."""

from __future__ import annotations

from farm.devices import android
from farm.devices.base import ANDROID, HOST, Device, DeviceInfo
from farm.devices.host import HostDevice, host_info


def discover_local(node_name: str | None = None, node_id: str = ""
                   ) -> tuple[list[DeviceInfo], list[str]]:
    """This machine's devices (its CPU and phones over adb), and notes for the user."""
    host = host_info(node_name, node_id)
    phones, notes = android.discover(host.node, node_id)
    return [host, *phones], notes


def open_device(info: DeviceInfo, isolation: str = "pause") -> Device:
    if info.kind == HOST:
        return HostDevice(info, isolation)
    if info.kind == ANDROID:
        return android.AndroidDevice(info, isolation)
    raise ValueError(f"unknown device kind {info.kind!r}")
