"""The compile step: CandidateSpec -> schedule -> pipeline library -> benchmark binary.

Autoscheduling happens in-process: a Python generator run as a command line
drops every `autoscheduler.*` parameter (FACTS.md), which silently makes every
"random" candidate the same beam-search schedule.
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
import time
import traceback
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from farm.candidate import (
    COMPILE_ERROR,
    COMPILE_TIMEOUT,
    FAULT,
    OK,
    BuildResult,
    CandidateSpec,
    Library,
    Schedule,
)
from farm.errors import BenchmarkError, FarmError
from farm.faults import fault_of
from farm.machine import toolchain
from farm.machine.halide_env import load_autoscheduler
from farm.model.weights import cached_file
from farm.pipelines import cpp_generators, python_generators
from farm.pipelines.benchmark import PYTHON
from farm.pipelines.params import param_list


class Instance:
    """One generator instance with its pipeline built (uses Halide's generator internals,
    the only way to get a Pipeline from a Python generator in-process)."""

    def __init__(self, spec: CandidateSpec):
        import halide as hl

        cls = python_generators.generator_class(spec.benchmark)
        if spec.is_manual:
            context = hl.GeneratorContext(hl.Target(spec.target.compile))
        else:
            context = hl.GeneratorContext(hl.Target(spec.target.schedule),
                                          hl.AutoschedulerParams("Adams2019", {}))
        with context:
            params = python_generators.param_values(spec.benchmark.label, cls,
                                                    spec.benchmark.params, spec.benchmark.builtin)
            self.generator = cls({**params, **dict(spec.generator_params)})
            self.pipeline = self.generator._build_pipeline()
        arginfos = self.generator._get_arginfos()
        self.arguments = [self.generator._get_input_parameter(a.name)._to_argument()
                          for a in arginfos if a.dir == hl.ArgInfoDirection.Input]
        self.outputs = [self.generator._get_output_func(a.name)
                        for a in arginfos if a.dir == hl.ArgInfoDirection.Output]


def _autoschedule(spec: CandidateSpec, instance: Instance) -> Schedule:
    import halide as hl

    load_autoscheduler()
    start = time.process_time()
    assert spec.weights is not None  # only a searched spec is autoscheduled, never a manual one
    params = spec.autoscheduler_params(str(cached_file(spec.weights)))
    result = instance.pipeline.apply_autoscheduler(hl.Target(spec.target.schedule),
                                                   hl.AutoschedulerParams("Adams2019", params))
    if spec.target.offload_hexagon:
        for out in instance.outputs:
            out.hexagon()
    return Schedule(result.schedule_source, bytes(result.featurization),
                    time.process_time() - start)


def check_pipeline(spec: CandidateSpec) -> None:
    """Build and quickly autoschedule the generator once (beam 1, ~0.05 s), so a broken
    generator (bad types, no estimates, bad parameters) stops the command before any work
    starts."""
    quick = spec if spec.is_manual else replace(spec, beam_size=1, random_dropout=100)
    what = "does not build"
    try:
        if spec.benchmark.kind != PYTHON:
            what = what if spec.is_manual else "does not autoschedule"
            with tempfile.TemporaryDirectory(prefix="farm-check-") as tmp:
                _run_generator(quick, Path(tmp), ("c_header",) if spec.is_manual else
                               _SCHEDULE_ONLY, runtime=False, cpu_limit_s=None)
            return
        instance = Instance(spec)
        if not spec.is_manual:
            what = "does not autoschedule"
            _autoschedule(quick, instance)
    except cpp_generators.GeneratorFailed as e:
        params = ""
        if any(w in e.message for w in _BAD_PARAMETER):
            params = f"; its parameters: {param_list(spec.benchmark)}"
        raise BenchmarkError(f"generator {spec.benchmark.ref} {what}: {e.message[:300]}"
                             f"{params}") from None
    except FarmError:
        raise
    except Exception as e:
        message = " ".join(str(e).split()) or type(e).__name__
        raise BenchmarkError(f"generator {spec.benchmark.ref} {what}: {message[:300]}") \
            from None


def schedule(spec: CandidateSpec) -> tuple[Instance, Schedule]:
    """A Python generator's pipeline with its schedule applied: the autoscheduler's, or the
    manual one."""
    instance = Instance(spec)
    if spec.is_manual:
        return instance, Schedule("", b"", 0.0)
    return instance, _autoschedule(spec, instance)


# The last few candidates this process autoscheduled: when the build of a candidate lands
# in the worker that checked it for duplicates, it does not autoschedule it again. A Python
# pipeline keeps its scheduled Instance; a generator executable cannot be handed a schedule,
# so its duplicate check generates the code in the same run, kept here for the build: a
# duplicate then costs a codegen it did not need, a new schedule one autoschedule, not two
# (which, for a big pipeline's minutes of autoscheduling, is the larger cost).
_scheduled: OrderedDict[CandidateSpec, tuple[Instance, Schedule]] = OrderedDict()
_generated: OrderedDict[CandidateSpec, tuple[Schedule, Library, float]] = OrderedDict()
_KEEP_SCHEDULED = 4


def autoschedule(spec: CandidateSpec, cpu_limit_s: float | None = None) -> Schedule:
    """The autoscheduler's choice, for finding duplicates before the rest of the build."""
    if spec.benchmark.kind != PYTHON:
        with tempfile.TemporaryDirectory(prefix="farm-schedule-") as tmp:
            generated = _generate(spec, Path(tmp), False, cpu_limit_s)
        _keep(_generated, spec, generated)
        return generated[0]
    instance, chosen = schedule(spec)
    _keep(_scheduled, spec, (instance, chosen))
    return chosen


def _keep(kept: OrderedDict, spec: CandidateSpec, value) -> None:
    kept[spec] = value
    while len(kept) > _KEEP_SCHEDULED:
        kept.popitem(last=False)


def screen_schedule(spec: CandidateSpec, cpu_limit_s: float | None = None) -> Schedule:
    """The autoscheduler's choice only, for screening a candidate by the cost model before
    it is built (farm.tuning.screening): a generator executable lowers the pipeline without
    generating code (about a fifth of a build's CPU, PERFORMANCE.md), and nothing is kept for a
    build, since most screened candidates are never built."""
    if spec.benchmark.kind == PYTHON:
        return schedule(spec)[1]
    with tempfile.TemporaryDirectory(prefix="farm-screen-") as tmp:
        ran = _run_generator(spec, Path(tmp), (), False, cpu_limit_s)
        return _read_schedule(spec, ran, ran.cpu_s)


def autoschedule_result(spec: CandidateSpec, cpu_limit_s: float | None = None) -> BuildResult:
    """autoschedule() as a value: status ok with the schedule, compile_error or
    compile_timeout."""
    return _schedule_result(autoschedule, spec, cpu_limit_s)


def screen_result(spec: CandidateSpec, cpu_limit_s: float | None = None) -> BuildResult:
    """screen_schedule() as a value, as autoschedule_result."""
    return _schedule_result(screen_schedule, spec, cpu_limit_s)


def _schedule_result(how, spec: CandidateSpec, cpu_limit_s: float | None) -> BuildResult:
    host = socket.gethostname()
    try:
        return BuildResult(OK, schedule=how(spec, cpu_limit_s), host=host)
    except cpp_generators.CpuLimitReached as e:
        return BuildResult(COMPILE_TIMEOUT, error=f"compile (autoschedule) on {host}: {e} "
                           "(--compile-timeout)", host=host, log=_failure_log(e, None))
    except Exception as e:
        fault = fault_of(e)
        if fault is not None:
            return BuildResult(FAULT, error=fault.message, host=host, fault=fault)
        return BuildResult(COMPILE_ERROR, error=f"compile (autoschedule) on {host}: "
                           f"{_describe(e)}", host=host, log=_failure_log(e, None))


# A generator executable's runs (farm.pipelines.cpp_generators): autoschedule only, or build.
_SCHEDULE_ONLY = ("schedule", "featurization")
_BUILD = ("static_library", "c_header")
# what Halide says of a bad generator parameter on the command line
_BAD_PARAMETER = ("Unable to parse", "Enumeration value not found", "has no GeneratorParam",
                  "Type not found")


def _run_generator(spec: CandidateSpec, out_dir: Path, emits: tuple[str, ...], runtime: bool,
                   cpu_limit_s: float | None) -> cpp_generators.Ran:
    if spec.target.offload_hexagon:
        raise BenchmarkError(
            f"{spec.benchmark.label} is a C++ generator: the farm offloads HVX candidates "
            f"by autoscheduling for {spec.target.schedule} and applying .hexagon() to a "
            "Python generator's outputs in-process; a C++ generator cannot be built that "
            f"way for {spec.target.compile} (use a Python generator, or an arm-64-android "
            "target without hvx)")
    target = spec.target.compile if runtime else f"{spec.target.compile}-no_runtime"
    auto = None
    if not spec.is_manual:
        assert spec.weights is not None  # a searched spec has weights
        auto = spec.autoscheduler_params(str(cached_file(spec.weights)))
        emits = tuple(dict.fromkeys((*emits, *_SCHEDULE_ONLY)))
    return cpp_generators.run(cpp_generators.executable(spec.benchmark), spec.benchmark.name,
                              out_dir, emits, target, function_name(spec),
                              (*spec.benchmark.params, *spec.generator_params), auto,
                              cpu_limit_s)


def _read_schedule(spec: CandidateSpec, ran: cpp_generators.Ran, autoschedule_s: float) -> Schedule:
    if spec.is_manual:
        return Schedule("", b"", 0.0)
    base = ran.out_dir / function_name(spec)
    return Schedule(Path(f"{base}.schedule.h").read_text(),
                    Path(f"{base}.featurization").read_bytes(), autoschedule_s)


def _generate(spec: CandidateSpec, out_dir: Path, runtime: bool, cpu_limit_s: float | None
              ) -> tuple[Schedule, Library, float]:
    """Autoschedule and generate code with the generator executable, in one run: its CPU
    time split by the share of lowering and LLVM in Halide's compiler log."""
    ran = _run_generator(spec, out_dir, _BUILD, runtime, cpu_limit_s)
    codegen_s = ran.cpu_s if spec.is_manual else ran.cpu_s * ran.codegen_share()
    name = function_name(spec)
    library = Library(name, (out_dir / f"{name}.a").read_bytes(),
                      (out_dir / f"{name}.h").read_text())
    return _read_schedule(spec, ran, ran.cpu_s - codegen_s), library, codegen_s


# C library functions a generator may well be named after: a pipeline compiled under one of
# these names would take the place of the library's function in the timing harness's binary
# (the farm's own `random` generator would be libc's random())
_LIBC_NAMES = frozenset((
    "abort", "abs", "atan", "ceil", "clock", "cos", "div", "exit", "exp", "fabs", "floor",
    "free", "log", "main", "malloc", "memcpy", "pow", "qsort", "rand", "random", "round",
    "signal", "sin", "sqrt", "srand", "system", "tan", "time"))


def function_name(spec: CandidateSpec) -> str:
    """The C name of the compiled pipeline: the benchmark's name, made an identifier (and
    never a C library function's)."""
    name = re.sub(r"\W", "_", spec.benchmark.name)
    name = name if name[:1].isalpha() or name[:1] == "_" else f"p_{name}"
    return f"{name}_pipeline" if name in _LIBC_NAMES else name


def build(spec: CandidateSpec, workdir: str | os.PathLike | None = None,
          cpu_limit_s: float | None = None) -> tuple[BuildResult, bytes, Library | None]:
    """Autoschedule (or apply the manual schedule), generate code and link a binary.

    Returns the result, the benchmark binary and the pipeline's library (without the
    Halide runtime). Never raises for a bad candidate: the failure is the result's status.
    `cpu_limit_s` caps a generator executable's CPU time (farm.build.process caps this
    process's own).
    """
    host = socket.gethostname()
    with tempfile.TemporaryDirectory(prefix="farm-build-", dir=workdir) as tmp, \
            _captured_output(Path(tmp) / "compile.log") as log:
        chosen = None
        codegen_s = link_s = None
        where = "autoschedule"
        try:
            tc = toolchain.for_target(spec.target)
            if spec.benchmark.kind == PYTHON:
                kept = _scheduled.pop(spec, None)
                instance, chosen = kept if kept is not None else schedule(spec)
                where = "codegen"
                start = time.process_time()
                library = compile_library(spec, instance, Path(tmp), runtime=False)
                codegen_s = time.process_time() - start
            else:
                where = "generator"
                generated = _generated.pop(spec, None)
                if generated is not None:  # by its duplicate check
                    (Path(tmp) / f"{generated[1].name}.a").write_bytes(generated[1].archive)
                chosen, library, codegen_s = generated or _generate(spec, Path(tmp), False,
                                                                    cpu_limit_s)
            where = "link"
            start = _children_cpu()
            binary = Path(tmp) / "bench"
            tc.link(Path(tmp) / f"{library.name}.a", library.name, binary)
            link_s = _children_cpu() - start
            return (BuildResult(OK, schedule=chosen, codegen_s=codegen_s, link_s=link_s,
                                host=host), binary.read_bytes(), library)
        except cpp_generators.CpuLimitReached as e:
            return BuildResult(COMPILE_TIMEOUT, error=f"compile ({where}) on {host}: {e} "
                               "(--compile-timeout)", host=host, log=_failure_log(e, log)), \
                b"", None
        except Exception as e:  # a failed candidate is a value, not an exception
            fault = fault_of(e)  # ... and so is a machine that cannot compile
            if fault is not None:
                return BuildResult(FAULT, error=fault.message, host=host, fault=fault), \
                    b"", None
            return BuildResult(COMPILE_ERROR,
                               error=f"compile ({where}) on {host}: {_describe(e)}",
                               schedule=chosen, codegen_s=codegen_s, link_s=link_s,
                               host=host, log=_failure_log(e, log)), b"", None


def write_library(spec: CandidateSpec, out_dir: str | os.PathLike) -> Schedule:
    """Compile `spec` with the Halide runtime into NAME.a, NAME.h and NAME.schedule.h."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if spec.benchmark.kind == PYTHON:
        instance, chosen = schedule(spec)
        compile_library(spec, instance, out_dir, runtime=True)
    else:
        chosen, _, _ = _generate(spec, out_dir, True, None)
    if chosen.source:
        (out_dir / f"{function_name(spec)}.schedule.h").write_text(chosen.source)
    return chosen


def compile_library(spec, instance, out_dir: Path, runtime: bool) -> Library:
    """NAME.a and NAME.h of the scheduled pipeline in `out_dir` (NAME: function_name)."""
    import halide as hl

    name = function_name(spec)
    target = hl.Target(spec.target.compile)
    if not runtime:
        target = target.with_feature(hl.TargetFeature.NoRuntime)
    archive, header = out_dir / f"{name}.a", out_dir / f"{name}.h"
    instance.pipeline.compile_to({hl.OutputFileType.static_library: str(archive),
                                  hl.OutputFileType.c_header: str(header)},
                                 instance.arguments, name, target)
    return Library(name, archive.read_bytes(), header.read_text())


def _children_cpu() -> float:
    t = os.times()
    return t.children_user + t.children_system


def _describe(e: Exception) -> str:
    if isinstance(e, FarmError):
        return str(e)
    return f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"


def _failure_log(e: Exception, log: _Log | None) -> str:
    """The tail of what a failed compile printed: a generator executable's own output, else
    this process's."""
    if isinstance(e, cpp_generators.GeneratorFailed):
        return e.log[-4000:]
    return log.tail() if log is not None else ""


class _Log:
    def __init__(self, path: Path):
        self.path = path

    def tail(self, limit: int = 4000) -> str:
        try:
            return self.path.read_text(errors="replace")[-limit:]
        except OSError:
            return ""


@contextmanager
def _captured_output(path: Path):
    """Send this process's stdout/stderr (Halide and LLVM print there) to `path`."""
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        yield _Log(path)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (fd, *saved):
            os.close(f)


def manual_spec(spec: CandidateSpec, manual: str | None = None) -> CandidateSpec:
    """The same benchmark and target with its manual schedule."""
    params = (("manual", manual),) if manual else ()
    return replace(spec, beam_size=None, weights=None, generator_params=params)
