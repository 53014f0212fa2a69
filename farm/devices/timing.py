"""How a candidate is timed, and reading the timing harness's output."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from enum import IntEnum

HARNESS_DONE = "FARM_DONE"
HARNESS_SAMPLE = "FARM_SAMPLE_MS"


class HarnessExit(IntEnum):
    """The timing harness's own exit statuses (farm/devices/harness/timing_main.cpp), by name."""

    BAD_ARGUMENTS = 2  # main(): --samples under 1
    HALIDE_ERROR = 3  # log_fail(): RunGen's fail(), which its halide_error handler calls too
    PIPELINE_ERROR = 4  # run_once(): the pipeline returned non-zero without a halide_error
    DSP_POWER = 5  # hexagon_prepare(): turbo or HVX power refused


HARNESS_EXIT_MEANINGS = {
    HarnessExit.BAD_ARGUMENTS: "the timing harness was given bad arguments",
    HarnessExit.HALIDE_ERROR: "the pipeline failed in Halide (a halide_error while it ran, "
                              "e.g. an out-of-bounds access or a failed allocation, or "
                              "inputs that could not be made from its estimates)",
    HarnessExit.PIPELINE_ERROR: "the pipeline returned an error",
    HarnessExit.DSP_POWER: "the DSP could not be put in turbo with HVX on",
}
# What a POSIX shell (adb shell on a phone) reports for a program it could not start
SHELL_EXITS = {126: "the benchmark could not be executed (permission or format)",
               127: "the benchmark or a library it needs was not found"}


def exit_reason(code: int, stderr: str = "", *, via_shell: bool = False) -> str:
    """A failed run of the benchmark binary in words: the harness's own status by name and
    meaning, a signal by name, with the harness's last line on stderr when it printed one.
    `via_shell`: the status came through a shell (adb shell), which reports a program
    killed by signal N as 128 + N and one it could not start as 126 or 127."""
    line = _last_line(stderr)
    said = f": {line}" if line else ""
    if code < 0 or (via_shell and 128 < code < 128 + 65):
        number = -code if code < 0 else code - 128
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        return f"the benchmark was killed by {name}{said}"
    if code in HARNESS_EXIT_MEANINGS:
        known = HarnessExit(code)
        return f"{HARNESS_EXIT_MEANINGS[known]} (exit status {code}, {known.name}){said}"
    if via_shell and code in SHELL_EXITS:
        return f"{SHELL_EXITS[code]} (exit status {code}){said}"
    return f"the benchmark exited with status {code}, not one of the harness's own{said}"


def _last_line(stderr: str, limit: int = 300) -> str:
    """The last line the benchmark printed on stderr (its harness's message), shortened."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    if not lines:
        return ""
    line = lines[-1]
    return line if len(line) <= limit else line[:limit - 3] + "..."


@dataclass(frozen=True)
class TimingConfig:
    repeats: int = 10  # timings reported per run of the harness (its --samples)
    min_sample_ms: float = 20.0  # each repeat loops the pipeline at least this long
    warmup_ms: float = 30.0
    max_total_ms: float = 2000.0  # slow schedules stop after 3 repeats once this is spent
    timeout_s: float = 60.0  # the whole run is killed after this long
    cutoff_ms: float | None = None  # stop after 3 repeats when the best is slower than this

    def harness_args(self) -> list[str]:
        args = [f"--samples={self.repeats}", f"--min_sample_ms={self.min_sample_ms:g}",
                f"--warmup_ms={self.warmup_ms:g}", f"--max_total_ms={self.max_total_ms:g}"]
        if self.cutoff_ms:
            args.append(f"--cutoff_ms={self.cutoff_ms:g}")
        return args


def parse_harness_output(stdout: str) -> tuple[float, ...]:
    """The per-repeat times in ms; ValueError when the harness did not finish."""
    samples = []
    done = False
    for line in stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == HARNESS_SAMPLE:
            samples.append(float(parts[1]))
        elif parts[:1] == [HARNESS_DONE]:
            done = True
    if not done or not samples:
        raise ValueError("the timing harness stopped before reporting its samples")
    if any(not (s > 0) for s in samples):
        raise ValueError(f"the timing harness reported a non-positive time: {samples}")
    return tuple(samples)
