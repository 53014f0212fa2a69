"""The values that flow through the farm: candidate -> artifact -> measurement.

They are frozen dataclasses that cross the Ray boundary. A failure is a
status plus an error message, never an exception.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple, TypedDict

from farm.faults import Fault
from farm.machine.targets import TargetInfo
from farm.model.weights import Weights
from farm.pipelines.benchmark import Benchmark


class Status(str, Enum):  # noqa: UP042 (a str mixin: rows and records compare as text)
    """What became of a candidate. A str: it compares equal to, and is stored in Parquet
    and JSON as, its value ("ok", "duplicate", ...), and prints as that value."""

    OK = "ok"
    DUPLICATE = "duplicate"  # a schedule the run already has (not timed again)
    COMPILE_ERROR = "compile_error"
    COMPILE_TIMEOUT = "compile_timeout"
    RUN_ERROR = "run_error"
    RUN_TIMEOUT = "run_timeout"
    CRASHED = "crashed"  # the worker building it died
    DEVICE_LOST = "device_lost"
    # Never a row: a lasting fault of the device or node (farm.faults) met the candidate,
    # which goes to another device. Carried beside its Fault in a BuildResult or Measurement.
    FAULT = "fault"

    __str__ = str.__str__  # "ok", not "Status.OK", in messages and f-strings

    def __format__(self, format_spec: str) -> str:  # "ok" in f"{status:>8}" too
        return str.__format__(self, format_spec)


OK = Status.OK
DUPLICATE = Status.DUPLICATE
COMPILE_ERROR = Status.COMPILE_ERROR
COMPILE_TIMEOUT = Status.COMPILE_TIMEOUT
RUN_ERROR = Status.RUN_ERROR
RUN_TIMEOUT = Status.RUN_TIMEOUT
CRASHED = Status.CRASHED
DEVICE_LOST = Status.DEVICE_LOST
FAULT = Status.FAULT
STATUSES = tuple(s for s in Status if s is not FAULT)  # what a row may hold
# Failures that say nothing about the schedule: a schedule whose rows are all of these is
# measured again when drawn again.
TRANSIENT = (RUN_TIMEOUT, CRASHED, DEVICE_LOST)

DEFAULT_PARALLELISM = 32  # see docs/clusters.md, "Parallelism": measured on 2-core hosts
# The compile timeout is CPU time (farm.build.process); a compile that neither finishes
# nor runs out of CPU (a hang, or paused for long) is cancelled after this many times it
# in wall-clock time.
COMPILE_WALL_FACTOR = 4.0


class Search(TypedDict):
    """How the autoscheduler searches: CandidateSpec fields, passed as **BEAM_SEARCH."""

    beam_size: int
    random_dropout: int


BEAM_SEARCH: Search = {"beam_size": 32, "random_dropout": 100}  # candidate 0 of a round
# random_dropout: the % chance to keep a state
RANDOM_PROBE: Search = {"beam_size": 1, "random_dropout": 1}


@dataclass(frozen=True)
class CandidateSpec:
    """Everything that decides a candidate's schedule and binary."""

    benchmark: Benchmark
    target: TargetInfo
    weights: Weights | None  # None only for the manual schedule
    beam_size: int | None = 32  # None: the benchmark's manual schedule
    random_dropout: int = 100
    seed: int = 0
    parallelism: int = DEFAULT_PARALLELISM
    generator_params: tuple[tuple[str, str], ...] = ()
    planner: str = field(default="", compare=False)  # a farm.search.planners.Planner label

    @property
    def is_manual(self) -> bool:
        return self.beam_size is None

    def autoscheduler_params(self, weights_path: str) -> dict[str, str]:
        return {"beam_size": str(self.beam_size), "random_dropout": str(self.random_dropout),
                "random_dropout_seed": str(self.seed), "parallelism": str(self.parallelism),
                "weights_path": weights_path}


@dataclass(frozen=True)
class Schedule:
    """What the autoscheduler chose, before any code is generated."""

    source: str
    featurization: bytes
    autoschedule_s: float  # CPU seconds (compile times are CPU time: a paused compile
    # does not count, see farm.devices.gate)


@dataclass(frozen=True)
class Library:
    """A compiled pipeline for a user to link: NAME.a (without the Halide runtime), NAME.h."""

    name: str
    archive: bytes
    header: str


class Artifact(NamedTuple):
    """A built candidate as the driver holds it between its build and its re-timings: the
    ObjectRefs of its binary's bytes and of its Library (None: not kept), left in Ray's
    object store where they were made rather than copied to the driver."""

    binary: Any
    library: Any = None


@dataclass(frozen=True)
class BuildResult:
    """A compiled candidate; its binary and Library travel beside it as their own objects."""

    status: Status
    error: str = ""
    schedule: Schedule | None = None
    codegen_s: float | None = None  # None: not generated (autoscheduled only, or failed before)
    link_s: float | None = None
    host: str = ""
    log: str = ""  # tail of the compile log when it failed
    fault: Fault | None = None  # status fault: the lasting fault the compile met
    # the compile process's peak resident memory in MB, the processes it started included
    # (farm.build.process); None where it was not watched
    memory_mb: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def compile_s(self) -> float:
        return ((self.schedule.autoschedule_s if self.schedule else 0.0)
                + (self.codegen_s or 0.0) + (self.link_s or 0.0))


@dataclass(frozen=True)
class Measurement:
    """A candidate timed on a device (or why it could not be)."""

    status: Status
    runtimes_ms: tuple[float, ...] = ()
    error: str = ""
    device_id: str = ""
    device_kind: str = ""
    node: str = ""  # the farm's name for the device's node (farm.execution.cluster.Node.name)
    node_id: str = ""
    run_s: float = 0.0
    log: str = ""  # tail of the run's output when it failed
    fault: Fault | None = None  # status fault: the device's lasting fault
    # when the device ran it (time.time(), under its lease); None when it never ran
    timing_started_at: float | None = None
    timing_ended_at: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def best_ms(self) -> float:
        return min(self.runtimes_ms)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runtimes_ms)
