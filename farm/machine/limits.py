"""Upper bounds of every number a user gives the farm, and why each is what it is.

A number past its bound is refused before Ray starts, naming the option, the bound and the
reason: unbounded, `--batch-size 100000000` grew the driver to 14-18 GB, `--parallelism
3000000000` aborted it, `--beam-size 3000000000` killed the compile and `--retimes
3000000000` ran without end. docs/reliability.md lists them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import psutil

from farm.errors import BadInput

# What one planned candidate costs the driver while its round runs: its spec, its row (a
# featurization of ~1.3 KB a stage) and its place in the scheduler's queues, with room to
# spare; a round holds its whole batch at once.
DRIVER_BYTES_PER_CANDIDATE = 1 << 20
MEMORY_SHARE = 0.5  # of the driver's machine, for a round's candidates
# Of a node's memory, what one compile may use before it is ended (a row with cause
# compile_error:memory): past half, a second compile on the node could not run beside it,
# and Ray's memory monitor would kill workers at random instead (a beam-32 compile of a
# local Laplacian pipeline took 5-6 GB).
COMPILE_MEMORY_SHARE = 0.5


def compile_memory_limit() -> int:
    """Bytes one compile on this machine may use."""
    return int(psutil.virtual_memory().total * COMPILE_MEMORY_SHARE)


@dataclass(frozen=True)
class Bound:
    most: float
    why: str


BOUNDS = {
    "rounds": Bound(10_000, "a round is at least seconds of work and several files"),
    "parallelism": Bound(256, "Halide's thread pool runs at most 256 threads"),
    "beam_size": Bound(1_024, "the autoscheduler's time and memory grow with the beam; "
                              "beam 32 is Adams2019's own search"),
    "retimes": Bound(1_000, "each re-timing times every schedule once more"),
    "seeds": Bound(16, "each seed trains a model per group of pipelines"),
    "screen": Bound(8, "a probe's draws are those a duplicate may be redrawn with, "
                       "at most 8 (farm.search.plans.MAX_ATTEMPTS)"),
    "train_steps": Bound(100_000, "a training step is one pass over every pipeline"),
    "timeout_s": Bound(7 * 86_400, "a timeout must end: a week at most"),
    "budget_s": Bound(366 * 86_400, "a year at most"),
    "refresh_s": Bound(3_600, "the page reloads at least hourly"),
    "history": Bound(100_000, "lines of a device's lease log"),
    "pipelines": Bound(100_000, "random pipelines of a pre-training; its manifest lists "
                                "each (farm.store.jsonrecord bounds a record's size)"),
    "per_pipeline": Bound(1_024, "Halide's trainer takes at most 1024 schedules of a "
                                 "pipeline a step"),
    "pipelines_per_round": Bound(4_096, "pipelines a pre-training round draws"),
}


def _shown(x: float) -> str:
    return f"{x:,}" if isinstance(x, int) or float(x).is_integer() else f"{x:g}"


def max_batch_size() -> int:
    """The most candidates a round may plan on this machine (the driver holds them all)."""
    total = psutil.virtual_memory().total
    return max(1, int(total * MEMORY_SHARE // DRIVER_BYTES_PER_CANDIDATE))


def check(name: str, value: float, option: str | None = None) -> float:
    """`value` of option `name` (a BOUNDS key, or "batch_size"), or a BadInput naming the
    option the user typed (`option`, default --NAME), the bound and why."""
    flag = option or "--" + name.replace("_", "-")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInput(f"{flag} {value}: give a finite number")
    wrong = past_bound(name, value)
    if wrong:
        raise BadInput(f"{flag} {wrong}")
    return value


def past_bound(name: str, value: float) -> str | None:
    """What is wrong with a finite `value` of option `name` ("N is more than M (why)"), or
    None within its bound."""
    if name == "batch_size":
        most: float = max_batch_size()
        why = (f"a round's candidates are held in the driver, ~"
               f"{DRIVER_BYTES_PER_CANDIDATE >> 20} MB each, and this machine has "
               f"{psutil.virtual_memory().total / 2**30:.0f} GB")
    else:
        most, why = BOUNDS[name].most, BOUNDS[name].why
    return f"{_shown(value)} is more than {_shown(most)} ({why})" if value > most else None
