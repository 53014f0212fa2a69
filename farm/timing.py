"""How a candidate is timed, and reading the timing harness's output."""

from __future__ import annotations

from dataclasses import dataclass

HARNESS_DONE = "FARM_DONE"
HARNESS_SAMPLE = "FARM_SAMPLE_MS"


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
