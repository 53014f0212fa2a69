"""farm devices: every device of this machine or cluster, what keeps one from use, and which
job holds or waits for it."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING

from farm.commands import options
from farm.report.output import columns

if TYPE_CHECKING:
    from farm.devices.base import DeviceInfo
    from farm.execution.leases import Holder, LeaseState

HEADER = ("DEVICE", "KIND", "NODE", "MODEL", "CLASS", "TARGET", "STATE", "PROBLEM")
LEASE_HEADER = ("DEVICE", "HELD BY", "SINCE", "WAITING")
HISTORY_HEADER = ("DEVICE", "RUN", "RAY JOB", "FROM", "TO", "ENDED")

EPILOG = """leases:
  A device is timed by one job at a time, whichever jobs share the cluster: every job
  that times (autotune, pretrain, run, bench, evaluate) takes the device's lease first,
  and jobs that share a device take turns. The second table shows who holds each device
  (the run directory and the Ray job) and who waits for it. Every lease is logged on the
  device's node (FARM_LEASE_DIR, by default ~/.local/state/halide-farm/leases):
  --history N prints each device's last N leases."""


def add_parser(sub) -> None:
    p = sub.add_parser("devices", help="list the devices of this machine or cluster, what "
                       "keeps any from being used, and which job holds or waits for each",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    options.add_address(p)
    p.add_argument("--history", type=options.bounded_int("history"), default=0, metavar="N",
                   help="also print each device's last N leases: who timed on it, and when")


def main(args) -> int:
    from farm import api

    found = api.devices(args.address, history=args.history)
    print(format_devices(found.devices))
    print()
    print(format_leases(found.devices, found.leases))
    if args.history:
        print()
        print(format_history(found.devices, found.leases))
    for note in found.notes:
        print(f"note: {note}")
    return 0


def format_devices(devices: list[DeviceInfo]) -> str:
    rows = [HEADER, *((d.id, d.kind, d.node, d.model or "-", d.device_class.name,
                       d.target or "-", d.state, d.problem or "-")
                      for d in devices)]
    return columns(rows)


def format_leases(devices: list[DeviceInfo], leases: dict[str, LeaseState]) -> str:
    """Who holds and who waits for each device that a job holds or waits for."""
    rows = []
    for d in devices:
        s = leases.get(d.id)
        if s is None:
            rows.append((d.id, "? (its node did not answer)", "-", "-"))
        elif s.holder is not None or s.waiting:
            rows.append((d.id, _who(s.holder) if s.holder else "-",
                         _clock(s.holder.since) if s.holder else "-",
                         "; ".join(_who(w) for w in s.waiting) or "-"))
    if not rows:
        return "no job holds or waits for a device now"
    return columns([LEASE_HEADER, *rows])


def format_history(devices: list[DeviceInfo], leases: dict[str, LeaseState]) -> str:
    rows = [(d.id, line.get("run", "?"), line.get("job") or "-", line.get("from", "?"),
             line.get("to", "?"), line.get("ended", "?"))
            for d in devices for line in (leases[d.id].recent if d.id in leases else ())]
    return columns([HISTORY_HEADER, *rows]) if rows else "no lease logged yet"


def _who(h: Holder) -> str:
    return f"{h.run or '?'}" + (f" (job {h.job})" if h.job else "")


def _clock(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")
