"""farm devices: every device of this machine or cluster, and what keeps one from use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from farm.commands import options
from farm.report.output import columns

if TYPE_CHECKING:
    from farm.devices.base import DeviceInfo

HEADER = ("DEVICE", "KIND", "NODE", "MODEL", "CLASS", "TARGET", "STATE", "PROBLEM")


def add_parser(sub) -> None:
    p = sub.add_parser("devices", help="list the devices of this machine or cluster, and what "
                       "keeps any from being used")
    options.add_address(p)


def main(args) -> int:
    from farm import api

    found, notes = api.devices(args.address)
    print(format_devices(found))
    for note in notes:
        print(f"note: {note}")
    return 0


def format_devices(devices: list[DeviceInfo]) -> str:
    rows = [HEADER, *((d.id, d.kind, d.node, d.model or "-", d.device_class.name,
                       d.target or "-", d.state, d.problem or "-")
                      for d in devices)]
    return columns(rows)
