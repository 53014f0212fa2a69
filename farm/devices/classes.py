"""Device classes: which devices' timings may train one cost model.

A class is (kind, model, target): a host's CPU model and the Halide target its node
reports for itself; a phone's SoC and the Hexagon target its HVX version implies. Timings
of two classes never train one model, and weights belong to a class.

A phone's HVX version comes from its SoC (`getprop`), by the table below, which
FARM_SOC_HVX overrides or extends: `FARM_SOC_HVX=sm8450=v69,mysoc=v66`. The target uses
the highest version Halide knows that the SoC has (Halide 21 knows v62, v65, v66, v68 and
rejects hvx_v69 and hvx_v73; without a version feature it assumes v60).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

# SoC (ro.soc.model or ro.board.platform, lower case) -> its Hexagon's HVX version
SOC_HVX = {
    "msm8996": 60, "msm8998": 62, "sdm845": 65, "sm8150": 66, "msmnile": 66,
    "sm8250": 66, "kona": 66, "sm8350": 68, "lahaina": 68, "sm8450": 69, "taro": 69,
    "sm8475": 69, "sm8550": 73, "kalama": 73, "sm8650": 75, "pineapple": 75,
}
HALIDE_HVX = (62, 65, 66, 68)  # the hvx_vNN features Halide 21 knows
ANDROID_HVX = "arm-64-android-hvx"


@dataclass(frozen=True)
class DeviceClass:
    kind: str
    model: str  # a host's CPU model name, a phone's SoC
    target: str  # the Halide target its candidates are compiled for

    @property
    def name(self) -> str:
        model = re.sub(r"[^A-Za-z0-9]+", "-", self.model).strip("-").lower() or "unknown"
        return f"{self.kind}-{model}"

    def __str__(self) -> str:
        return f"{self.name} ({self.target})"


def class_name(recorded: str) -> str:
    """A class as a run records it ("host-amd-epyc (x86-64-linux-...)", str(DeviceClass))
    named as `farm devices` names it ("host-amd-epyc")."""
    return recorded.split(" (", 1)[0]


def soc_hvx(soc: str, environ=os.environ) -> int | None:
    """The HVX version of `soc`, from FARM_SOC_HVX or the table; None when unknown."""
    table = dict(SOC_HVX)
    for item in environ.get("FARM_SOC_HVX", "").split(","):
        name, _, version = item.strip().partition("=")
        digits = version.strip().lower().removeprefix("v")
        if name and digits.isdigit():
            table[name.strip().lower()] = int(digits)
    return table.get(soc.lower())


def hexagon_target(soc: str, environ=os.environ) -> str:
    """The Android HVX target for a phone with `soc`: the highest HVX version Halide knows
    that the SoC has (plain arm-64-android-hvx when its version is unknown or v60)."""
    version = soc_hvx(soc, environ)
    known = [v for v in HALIDE_HVX if version is not None and v <= version]
    return f"{ANDROID_HVX}-hvx_v{known[-1]}" if known else ANDROID_HVX


# Target features that say what the processor must have; the others (tune_*, no_asserts,
# debug, ...) only change how code is generated, and every device of the architecture runs it.
ISA_PREFIXES = ("sse", "avx", "f16c", "fma", "x86_apx", "arm_", "armv", "sve", "hvx")


def runs(device_target: str, target: str) -> bool:
    """Can a device whose own target is `device_target` run code compiled for `target`?
    The same architecture, bits and OS, no instruction-set feature it lacks, and no HVX
    version above its own (an hvx_v68 DSP runs hvx_v66 code)."""
    mine, theirs = device_target.split("-"), target.split("-")

    def hvx(features) -> int:
        return max((int(f[5:]) for f in features if re.fullmatch(r"hvx_v\d+", f)), default=0)

    needed = {f for f in theirs[3:] if f.startswith(ISA_PREFIXES) and not f.startswith("hvx_v")}
    return (mine[:3] == theirs[:3] and needed <= set(mine[3:])
            and hvx(theirs[3:]) <= hvx(mine[3:]))
