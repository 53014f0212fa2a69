"""farm devices: every device of this machine or cluster, and what keeps one from use."""

from __future__ import annotations

from farm.devices.base import DeviceInfo
from farm.devices.session import DeviceSession
from farm.output import columns

HEADER = ("DEVICE", "KIND", "NODE", "MODEL", "STATE", "PROBLEM")


def main(args) -> int:
    with DeviceSession(args.address) as session:
        print(format_devices(session.devices))
        for note in session.notes:
            print(f"note: {note}")
    return 0


def format_devices(devices: list[DeviceInfo]) -> str:
    rows = [HEADER, *((d.id, d.kind, d.node, d.model or "-", d.state, d.problem or "-")
                      for d in devices)]
    return columns(rows)
