"""Lasting faults: a device's or node's prerequisite that will not fix itself.

Three kinds of failure meet a candidate, and each is handled once, where it is known:
- the pipeline's own (it does not compile, its run fails): the data, a row with its status;
- transient (a worker died, a phone dropped off adb): retried elsewhere, and a device that
  keeps failing is quarantined a while (farm.execution.pool);
- lasting (the compile gate's folder refused, no C++ compiler, the NDK or the Hexagon
  runtime gone, adb gone, a full disk, unreadable weights): a Fault. The worker that meets
  one hands it back as a value instead of a failed candidate; the driver takes the device
  (a device's own prerequisite) or the node (its compile work) out of the run, names the
  cause once, and gives the candidate to another device without writing a row. With no
  device left the round is not committed: the run stops with the cause and its fix
  (errors.LastingFault).

Which errors are lasting is said by their type (errors.FarmError.lasting), so a new
prerequisite check only raises the right error.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

from farm.atomic import out_of_space
from farm.errors import FarmError, LastingFault


@dataclass(frozen=True)
class Fault:
    """A lasting fault met on a worker; crosses Ray as a value."""

    cause: str  # short, stable key (errors.FarmError.cause), e.g. "gate-folder"
    message: str  # one line: what is wrong and how to fix it
    exit_code: int  # 2: a prerequisite to fix; 1: a full disk
    node: str  # the machine it was met on (its hostname)
    node_id: str = ""  # its Ray node ("" outside Ray)
    device: str = ""  # the device whose own prerequisite failed; "": the node's compile work

    @property
    def where(self) -> str:
        return self.device or f"compiles on {self.node}"

    def describe(self) -> str:
        return f"{self.where}: {self.message}"


def fault_of(e: BaseException, device: str = "", opening: bool = False) -> Fault | None:
    """The lasting fault `e` is (met on this machine, by `device` when it is the device's
    own), or None: the candidate's failure, or a transient one. `opening`: `e` was raised
    while opening the device, so any farm error is lasting for it (it cannot be used)."""
    if isinstance(e, FarmError) and (e.lasting or opening):
        cause, code = e.cause, e.exit_code
    elif out_of_space(e):
        cause, code = "disk-full", 1
    else:
        return None
    message = " ".join(str(e).split()) or type(e).__name__
    return Fault(cause, message, code, socket.gethostname(), _node_id(), device)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def stop(faults: list[Fault]) -> LastingFault:
    """The error that stops a command when lasting faults took every device out: each
    cause named once, exit 2 when any is a prerequisite to fix."""
    seen: dict[str, Fault] = {}
    for f in faults:
        seen.setdefault(f.message, f)
    causes = list(seen.values())
    text = "; ".join(f.describe() for f in causes)
    what = "a lasting fault" if len(causes) == 1 else f"{len(causes)} lasting faults"
    return LastingFault(f"no device is left ({what}): {text}",
                        max(f.exit_code for f in causes), causes[0].cause)
