"""The compile step: CandidateSpec -> schedule -> pipeline library -> benchmark binary.

Autoscheduling happens in-process: a Python generator run as a command line
drops every `autoscheduler.*` parameter (FACTS.md), which silently makes every
"random" candidate the same beam-search schedule.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from farm import catalog, toolchain
from farm.candidate import COMPILE_ERROR, OK, BuildResult, CandidateSpec, Schedule
from farm.errors import FarmError
from farm.halide_env import load_autoscheduler
from farm.weights import cached_file

PIPELINE_FUNCTION = "farm_pipeline"  # the name the timing harness links against


class Instance:
    """One generator instance with its pipeline built (uses Halide's generator internals,
    the only way to get a Pipeline from a Python generator in-process)."""

    def __init__(self, spec: CandidateSpec):
        import halide as hl

        cls = catalog.generator_class(spec.benchmark)
        if spec.is_manual:
            context = hl.GeneratorContext(hl.Target(spec.target.compile))
        else:
            context = hl.GeneratorContext(hl.Target(spec.target.schedule),
                                          hl.AutoschedulerParams("Adams2019", {}))
        with context:
            self.generator = cls(dict(spec.generator_params))
            self.pipeline = self.generator._build_pipeline()
        arginfos = self.generator._get_arginfos()
        self.arguments = [self.generator._get_input_parameter(a.name)._to_argument()
                          for a in arginfos if a.dir == hl.ArgInfoDirection.Input]
        self.outputs = [self.generator._get_output_func(a.name)
                        for a in arginfos if a.dir == hl.ArgInfoDirection.Output]


def _autoschedule(spec: CandidateSpec, instance: Instance) -> Schedule:
    import halide as hl

    load_autoscheduler()
    start = time.perf_counter()
    params = spec.autoscheduler_params(str(cached_file(spec.weights)))
    result = instance.pipeline.apply_autoscheduler(hl.Target(spec.target.schedule),
                                                   hl.AutoschedulerParams("Adams2019", params))
    if spec.target.offload_hexagon:
        for out in instance.outputs:
            out.hexagon()
    return Schedule(result.schedule_source, bytes(result.featurization),
                    time.perf_counter() - start)


def check_pipeline(spec: CandidateSpec) -> None:
    """Build and quickly autoschedule the generator once (beam 1, ~0.05 s), so a broken
    generator (bad types, no estimates) stops the command before any work starts."""
    from farm.errors import BenchmarkError

    what = "does not build"
    try:
        instance = Instance(spec)
        if not spec.is_manual:
            what = "does not autoschedule"
            _autoschedule(replace(spec, beam_size=1, random_dropout=100), instance)
    except FarmError:
        raise
    except Exception as e:
        message = " ".join(str(e).split()) or type(e).__name__
        raise BenchmarkError(f"generator {spec.benchmark.ref} {what}: {message[:300]}") \
            from None


def schedule(spec: CandidateSpec) -> tuple[Instance, Schedule]:
    """The pipeline with its schedule applied: the autoscheduler's, or the manual one."""
    instance = Instance(spec)
    if spec.is_manual:
        return instance, Schedule("", b"", 0.0)
    return instance, _autoschedule(spec, instance)


def autoschedule(spec: CandidateSpec) -> Schedule:
    """Only the autoscheduler's choice: cheap, for finding duplicates before codegen."""
    return schedule(spec)[1]


def autoschedule_result(spec: CandidateSpec) -> BuildResult:
    """autoschedule() as a value: status ok with the schedule, or compile_error."""
    host = socket.gethostname()
    try:
        return BuildResult(OK, schedule=autoschedule(spec), host=host)
    except Exception as e:
        return BuildResult(COMPILE_ERROR, error=f"compile (autoschedule) on {host}: "
                           f"{_describe(e)}", host=host)


def build(spec: CandidateSpec, workdir: str | os.PathLike | None = None,
          ) -> tuple[BuildResult, bytes]:
    """Autoschedule (or apply the manual schedule), generate code and link a binary.

    Never raises for a bad candidate: the failure is the result's status.
    """
    host = socket.gethostname()
    with tempfile.TemporaryDirectory(prefix="farm-build-", dir=workdir) as tmp, \
            _captured_output(Path(tmp) / "compile.log") as log:
        chosen = None
        codegen_s = link_s = None
        try:
            tc = toolchain.for_target(spec.target)
            instance, chosen = schedule(spec)
            start = time.perf_counter()
            library = Path(tmp) / f"{PIPELINE_FUNCTION}.a"
            _compile_library(spec, instance, {"static_library": library}, PIPELINE_FUNCTION,
                             runtime=False)
            codegen_s = time.perf_counter() - start
            start = time.perf_counter()
            binary = Path(tmp) / "bench"
            tc.link(library, binary)
            link_s = time.perf_counter() - start
            return BuildResult(OK, schedule=chosen, codegen_s=codegen_s, link_s=link_s,
                               host=host), binary.read_bytes()
        except Exception as e:  # a failed candidate is a value, not an exception
            where = "autoschedule" if chosen is None else \
                "codegen" if codegen_s is None else "link"
            return BuildResult(COMPILE_ERROR,
                               error=f"compile ({where}) on {host}: {_describe(e)}",
                               schedule=chosen, codegen_s=codegen_s, link_s=link_s,
                               host=host, log=log.tail()), b""


def write_library(spec: CandidateSpec, out_dir: str | os.PathLike, name: str) -> Schedule:
    """Write `name`.a (with runtime), `name`.h and `name`.schedule.h for a user to link."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    instance, chosen = schedule(spec)
    _compile_library(spec, instance, {"static_library": out_dir / f"{name}.a",
                                      "c_header": out_dir / f"{name}.h"}, name, runtime=True)
    if chosen.source:
        (out_dir / f"{name}.schedule.h").write_text(chosen.source)
    return chosen


def _compile_library(spec, instance, outputs: dict, name: str, runtime: bool) -> None:
    import halide as hl

    target = hl.Target(spec.target.compile)
    if not runtime:
        target = target.with_feature(hl.TargetFeature.NoRuntime)
    files = {getattr(hl.OutputFileType, kind): str(path) for kind, path in outputs.items()}
    instance.pipeline.compile_to(files, instance.arguments, name, target)


def _describe(e: Exception) -> str:
    if isinstance(e, FarmError):
        return str(e)
    return f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=-3)}"


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
