"""The device interface: one device times one binary at a time."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from farm.candidate import Measurement, Status
from farm.devices.classes import DeviceClass, runs
from farm.devices.timing import TimingConfig

HOST, ANDROID = "host", "android"
# The kinds farm.devices.registry has registered, by name: which targets' devices each runs
# (a kind that is not registered here runs the targets of its own name's kind).
RUNS: dict[str, str] = {}
READY, UNUSABLE = "ready", "unusable"


@dataclass(frozen=True)
class DeviceInfo:
    id: str  # unique across the cluster, stable, short: "cpu@node", "SERIAL@node"
    kind: str
    node: str  # the farm's name for the node (hostname, or its farm-node label)
    node_id: str = ""  # the Ray node id ("" outside Ray)
    model: str = ""
    state: str = READY
    problem: str = ""  # why it cannot be used, and the fix
    serial: str = ""  # adb serial of a phone
    cores: int = 0
    features: tuple[str, ...] = ()  # e.g. "hexagon-runtime"
    target: str = ""  # the Halide target it needs: its node's host target, a phone's HVX one
    class_model: str = ""  # what its class is named by: the CPU model, the phone's SoC

    @property
    def device_class(self) -> DeviceClass:
        """Which devices' timings may train one model with this one's (farm.devices.classes)."""
        return DeviceClass(self.kind, self.class_model or self.model, self.target)

    @property
    def usable(self) -> bool:
        return self.state == READY

    def problem_for(self, target) -> str:
        """Why this device cannot run candidates for `target` (a TargetInfo), or ""."""
        if self.problem:
            return self.problem
        if target.device_kind != RUNS.get(self.kind, self.kind):
            return f"a {self.kind} device cannot run {target.compile} candidates"
        if self.target and not runs(self.target, target.compile):
            return (f"it runs {self.target} code, not {target.compile}: give a --target it "
                    "runs, or choose other devices with --device")
        if target.offload_hexagon and "hexagon-runtime" not in self.features:
            return ("no Hexagon runtime: set FARM_HEXAGON_RUNTIME on its node to a folder "
                    "with libhalide_hexagon_host.so and libhalide_hexagon_remote_skel.so")
        return ""


@dataclass(frozen=True)
class Kind:
    """A device kind: how the farm finds, opens and targets devices of it. A kind is one
    module that defines its Kind, and one line in farm.devices.registry that registers it."""

    name: str
    # (node name, Ray node id) -> the devices of this kind on this machine, and notes on
    # what kept others from being found
    discover: Callable[[str, str], tuple[list[DeviceInfo], list[str]]]
    open: Callable[[DeviceInfo, str], Device]  # (info, isolation) -> the device
    # the Halide target a device's candidates are compiled for when none is given
    default_target: Callable[[DeviceInfo], str] = lambda info: "host"
    runs: str = ""  # which targets it runs (TargetInfo.device_kind); "" for its own name's

    @property
    def target_kind(self) -> str:
        return self.runs or self.name


class Device(ABC):
    def __init__(self, info: DeviceInfo):
        self.info = info

    @abstractmethod
    def run(self, binary: bytes, threads: int, timing: TimingConfig) -> Measurement:
        """Time `binary` with `threads` Halide threads; never raises for a bad binary."""

    def close(self) -> None:  # noqa: B027 (optional: most devices leave nothing behind)
        """Remove what this job left on the device (the job is done with it)."""

    def measurement(self, status: Status, **fields) -> Measurement:
        return Measurement(status, device_id=self.info.id, device_kind=self.info.kind,
                           node=self.info.node,
                           node_id=self.info.node_id, **fields)


def safe_name(text: str) -> str:
    """A file-name-safe form of a device id."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)
