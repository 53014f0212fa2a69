"""Targets: what a candidate is compiled for, what the autoscheduler sees, where it runs.

The Hexagon trap: Adams2019 sizes vectors by the target's natural vector
width, which for `arm-64-android-hvx` is the ARM host's 16 bytes (Halide
issue 8170). The farm autoschedules HVX candidates for `hexagon-32-noos-hvx`
(128-byte vectors), offloads the outputs with `.hexagon()`, and compiles for
the Android target.
"""

from __future__ import annotations

from dataclasses import dataclass

from farm.errors import BadInput

HVX_VERSIONS = ("hvx_v62", "hvx_v65", "hvx_v66", "hvx_v68")


@dataclass(frozen=True)
class TargetInfo:
    compile: str  # what the candidate is compiled for
    schedule: str  # what the autoscheduler sees (and featurizes for)
    device_kind: str  # "host" or "android": which device kind can run it

    @property
    def offload_hexagon(self) -> bool:
        return self.schedule.startswith("hexagon-")

    @property
    def is_android(self) -> bool:
        return self.device_kind == "android"


def resolve(target: str | None) -> TargetInfo:
    """Turn --target into a TargetInfo; 'host' (the default) is this machine's CPU."""
    import halide as hl

    from farm.machine.halide_env import host_target

    if target in (None, "", "host"):
        concrete = host_target()
        return TargetInfo(concrete, concrete, "host")
    if not hl.Target.validate_target_string(target):
        raise BadInput(
            f"--target {target!r} is not a Halide target string; examples: host, "
            "x86-64-linux-avx2, arm-64-android-hvx, arm-64-android-hvx-hvx_v66")
    t = hl.Target(target)
    if t.os == hl.TargetOS.Android:
        if t.arch != hl.TargetArch.ARM or t.bits != 64:
            raise BadInput(f"--target {target!r}: the farm runs Android targets on arm-64 only")
        if t.has_feature(hl.TargetFeature.HVX):
            versions = [v for v in HVX_VERSIONS if f"-{v}" in f"-{target}"]
            schedule = "-".join(["hexagon-32-noos-hvx", *versions])
            return TargetInfo(str(t), schedule, "android")
        return TargetInfo(str(t), str(t), "android")
    if t.os != hl.TargetOS.Linux:
        raise BadInput(
            f"--target {target!r}: the farm runs candidates on Linux hosts and Android phones; "
            "use a linux or android target")
    host = hl.get_host_target()
    if t.arch != host.arch or t.bits != host.bits:
        raise BadInput(
            f"--target {target!r} is not this host's architecture ({host.arch}-{host.bits}); "
            "cross targets other than Android are not supported")
    return TargetInfo(str(t), str(t), "host")
