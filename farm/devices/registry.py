"""Device kinds by name: discovery on this machine, opening a device, its default target.

Adding a kind: a module that defines its `Kind` (farm.devices.base), and its line in KINDS.
"""

from __future__ import annotations

import socket

from farm.devices import android, host
from farm.devices.base import RUNS, Device, DeviceInfo, Kind

KINDS: dict[str, Kind] = {k.name: k for k in (
    host.KIND,  # this machine's CPU (discovered first: a node always has one)
    android.KIND,  # phones over adb
)}
RUNS.update({name: k.target_kind for name, k in KINDS.items()})


def kind(name: str) -> Kind:
    found = KINDS.get(name)
    if found is None:
        raise ValueError(f"unknown device kind {name!r} (known: {', '.join(KINDS)})")
    return found


def discover_local(node_name: str | None = None, node_id: str = ""
                   ) -> tuple[list[DeviceInfo], list[str]]:
    """This machine's devices of every kind, and notes for the user."""
    node = node_name or socket.gethostname()
    devices: list[DeviceInfo] = []
    notes: list[str] = []
    for k in KINDS.values():
        found, said = k.discover(node, node_id)
        devices += found
        notes += said
    return devices, notes


def open_device(info: DeviceInfo, isolation: str = "pause") -> Device:
    return kind(info.kind).open(info, isolation)


def default_target(info: DeviceInfo) -> str:
    """The target a device's candidates are compiled for when none is given."""
    return kind(info.kind).default_target(info)
