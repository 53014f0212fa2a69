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

from farm import catalog, toolchain
from farm.candidate import COMPILE_ERROR, OK, BuildResult, CandidateSpec, Library, Schedule
from farm.errors import FarmError
from farm.halide_env import load_autoscheduler
from farm.weights import cached_file


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
            params = catalog.param_values(spec.benchmark.label, cls, spec.benchmark.params,
                                          spec.benchmark.builtin)
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


# The last few pipelines this process autoscheduled: when the build of a candidate lands in
# the worker that checked it for duplicates, it skips the second autoschedule.
_scheduled: OrderedDict[CandidateSpec, tuple[Instance, Schedule]] = OrderedDict()
_KEEP_SCHEDULED = 4


def autoschedule(spec: CandidateSpec) -> Schedule:
    """Only the autoscheduler's choice: cheap, for finding duplicates before codegen."""
    instance, chosen = schedule(spec)
    _scheduled[spec] = (instance, chosen)
    while len(_scheduled) > _KEEP_SCHEDULED:
        _scheduled.popitem(last=False)
    return chosen


def autoschedule_result(spec: CandidateSpec) -> BuildResult:
    """autoschedule() as a value: status ok with the schedule, or compile_error."""
    host = socket.gethostname()
    try:
        return BuildResult(OK, schedule=autoschedule(spec), host=host)
    except Exception as e:
        return BuildResult(COMPILE_ERROR, error=f"compile (autoschedule) on {host}: "
                           f"{_describe(e)}", host=host)


def function_name(spec: CandidateSpec) -> str:
    """The C name of the compiled pipeline: the benchmark's name, made an identifier."""
    name = re.sub(r"\W", "_", spec.benchmark.name)
    return name if name[:1].isalpha() or name[:1] == "_" else f"p_{name}"


def build(spec: CandidateSpec, workdir: str | os.PathLike | None = None,
          ) -> tuple[BuildResult, bytes, Library | None]:
    """Autoschedule (or apply the manual schedule), generate code and link a binary.

    Returns the result, the benchmark binary and the pipeline's library (without the
    Halide runtime). Never raises for a bad candidate: the failure is the result's status.
    """
    host = socket.gethostname()
    with tempfile.TemporaryDirectory(prefix="farm-build-", dir=workdir) as tmp, \
            _captured_output(Path(tmp) / "compile.log") as log:
        chosen = None
        codegen_s = link_s = None
        try:
            tc = toolchain.for_target(spec.target)
            kept = _scheduled.pop(spec, None)
            instance, chosen = kept if kept is not None else schedule(spec)
            start = time.process_time()
            library = compile_library(spec, instance, Path(tmp), runtime=False)
            codegen_s = time.process_time() - start
            start = _children_cpu()
            binary = Path(tmp) / "bench"
            tc.link(Path(tmp) / f"{library.name}.a", library.name, binary)
            link_s = _children_cpu() - start
            return (BuildResult(OK, schedule=chosen, codegen_s=codegen_s, link_s=link_s,
                                host=host), binary.read_bytes(), library)
        except Exception as e:  # a failed candidate is a value, not an exception
            where = "autoschedule" if chosen is None else \
                "codegen" if codegen_s is None else "link"
            return BuildResult(COMPILE_ERROR,
                               error=f"compile ({where}) on {host}: {_describe(e)}",
                               schedule=chosen, codegen_s=codegen_s, link_s=link_s,
                               host=host, log=log.tail()), b"", None


def write_library(spec: CandidateSpec, out_dir: str | os.PathLike) -> Schedule:
    """Compile `spec` with the Halide runtime into NAME.a, NAME.h and NAME.schedule.h."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    instance, chosen = schedule(spec)
    compile_library(spec, instance, out_dir, runtime=True)
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
