"""The builder interface: what turns a candidate into a schedule and a binary.

It sits beside `farm.devices.base.Device` (what times a binary). Both are plain
objects that run where they are called; farm.execution.workers runs them on Ray (a build
inside a compile task, a device inside its actor), so a double of either
(farm.testing) goes through exactly the path the real ones take.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from farm.candidate import BuildResult, CandidateSpec, Library


class Builder(ABC):
    cpus: float = 1.0  # CPUs a compile task holds in Ray's accounting

    @abstractmethod
    def autoschedule(self, spec: CandidateSpec, cpu_limit_s: float | None = None
                     ) -> BuildResult:
        """The autoscheduler's choice, to catch a duplicate before it is built (a
        generator executable generates the code in the same run, kept for build()); a
        failure is the result's status, never an exception. A compile that would use
        more than `cpu_limit_s` of CPU is ended: status compile_timeout."""

    @abstractmethod
    def build(self, spec: CandidateSpec, cpu_limit_s: float | None = None
              ) -> tuple[BuildResult, bytes, Library | None]:
        """The schedule, the benchmark binary and the pipeline's library (for best/)."""

    def screen(self, spec: CandidateSpec, cpu_limit_s: float | None = None) -> BuildResult:
        """The autoscheduler's choice only, for screening by the cost model
        (farm.tuning.screening): as autoschedule(), without generating code."""
        return self.autoschedule(spec, cpu_limit_s)


class HalideBuilder(Builder):
    """Halide's autoscheduler and code generator (farm.build.compiler) in this worker's compile
    process (farm.build.process: its CPU time capped), paused while a host device on this
    machine times (farm.devices.gate)."""

    def autoschedule(self, spec: CandidateSpec, cpu_limit_s: float | None = None
                     ) -> BuildResult:
        from farm.build import process as compile_process
        from farm.devices import gate

        with gate.compiling():
            return compile_process.shared().call("autoschedule_result", spec, cpu_limit_s)

    def build(self, spec: CandidateSpec, cpu_limit_s: float | None = None
              ) -> tuple[BuildResult, bytes, Library | None]:
        from farm.build import process as compile_process
        from farm.devices import gate

        with gate.compiling():
            return compile_process.shared().call("build", spec, cpu_limit_s)

    def screen(self, spec: CandidateSpec, cpu_limit_s: float | None = None) -> BuildResult:
        from farm.build import process as compile_process
        from farm.devices import gate

        with gate.compiling():
            return compile_process.shared().call("screen_result", spec, cpu_limit_s)
