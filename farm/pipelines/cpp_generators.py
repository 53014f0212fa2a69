"""Generators that run as executables, the way Halide runs C++ generators (GenGen).

A C++ benchmark (a folder of `*_generator.cpp`, or one `file.cpp`) is built into a
generator executable once per node, C++ compiler and Halide wheel: against the wheel's
headers (include/, and share/tools/, where Halide's apps find halide_trace_config.h and
friends), its libHalide and libHalide_GenGen.a, cached under
FARM_CACHE_DIR/generators/KEY/ (KEY: the sources' sha256, the compiler, the wheel).
A prebuilt generator executable is used as it is; it must load the wheel's Adams2019
plugin, so link it against a shared libHalide of the same Halide version.

Each candidate is a run of the executable with Halide's own command line:
`-e schedule,featurization` autoschedules only (Halide lowers the pipeline but runs no
LLVM, so duplicates are still caught before codegen), and
`-e static_library,c_header,schedule,featurization` builds. The `autoscheduler.*`
parameters reach the autoscheduler (a Python generator's command line drops them,
FACTS.md). A run's CPU time is its process's (wait4); `cpu_limit_s` caps it with
RLIMIT_CPU, so a compile paused by farm.devices.gate is not charged for the pause.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from farm.errors import BenchmarkError, WorkFailed
from farm.machine.cache import build_once, cache_dir
from farm.machine.halide_env import halide_env
from farm.machine.toolchain import compiler_identity, host_compiler
from farm.pipelines.benchmark import CPP, Benchmark, parse_bool, write_files

CXX_FLAGS = ("-std=c++17", "-O1", "-fno-rtti")  # as Halide's apps build their generators
ASK_TIMEOUT_S = 120.0  # for an executable to list its generators or write a stub
# Halide's types by the names a Type GeneratorParam takes on the command line
HALIDE_TYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                "uint64", "float16", "bfloat16", "float32", "float64")
_INTS = ("int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t",
         "uint64_t")


class GeneratorFailed(WorkFailed):
    """A run of a generator executable exited with an error: `message` is Halide's."""

    def __init__(self, message: str, log: str):
        super().__init__(message)
        self.message, self.log = message, log


class CpuLimitReached(GeneratorFailed):
    """A compile used up its CPU budget (the compile timeout) and was ended."""


@dataclass(frozen=True)
class Param:
    name: str
    ctype: str  # its C++ type, as Halide's stub declares it
    default: str  # as one would write it on the command line

    def canonical(self, value: str) -> str:
        """`value` as the farm records it (radius=02 and radius=2 are one pipeline); a
        ValueError for a value of the wrong kind."""
        value = value.strip()
        if self.ctype in _INTS:
            return str(int(value, 10))
        if self.ctype == "bool":
            return "true" if parse_bool(value) else "false"
        if self.ctype in ("float", "double"):
            float(value)
            return value
        if self.ctype == "Type" and value not in HALIDE_TYPES:
            raise ValueError(value)
        return value  # the generator itself checks the rest when it runs

    @property
    def kind(self) -> str:
        if self.ctype == "Type":
            return f"Halide type ({', '.join(HALIDE_TYPES)})"
        return {"bool": "bool", "float": "float", "double": "float"}.get(
            self.ctype, "int" if self.ctype in _INTS else self.ctype)


@dataclass(frozen=True)
class Ran:
    """A finished run: CPU seconds, wall seconds, what it wrote, its compiler log."""

    cpu_s: float
    wall_s: float
    out_dir: Path
    compiler_log: dict

    def codegen_share(self) -> float:
        """Of this run's time, the share Halide spent lowering and in LLVM (its compiler
        log): what is not autoscheduling."""
        spent = sum(float(self.compiler_log.get(k, 0.0)) for k in (
            "compilation_time_halide_lowering", "compilation_time_llvm"))
        return min(1.0, spent / self.wall_s) if self.wall_s > 0 else 0.0


def executable(bench: Benchmark) -> Path:
    """The benchmark's generator executable on this node (built on first use)."""
    if bench.kind == CPP:
        return _built(bench)
    [(name, data)] = bench.files

    def write(tmp: Path) -> None:
        tmp.write_bytes(data)
        tmp.chmod(0o755)

    return build_once(cache_dir("generators", bench.sha256[:24]) / name, write)


def _built(bench: Benchmark) -> Path:
    env = halide_env()
    found = host_compiler()
    key = hashlib.sha256("\0".join((bench.sha256, found, compiler_identity((found,)),
                                    *CXX_FLAGS, str(env.root), env.version)).encode())
    folder = cache_dir("generators", key.hexdigest()[:24])
    log = folder / "build.log"

    def make(tmp: Path) -> None:
        print(f"building the C++ generator {bench.path} with {found} (once per machine and "
              "version of its files; a minute or two) ...", file=sys.stderr, flush=True)
        src = folder / "src"
        if src.is_symlink():  # planted: removed, never written through
            src.unlink()
        shutil.rmtree(src, ignore_errors=True)
        src.mkdir()
        write_files(src, bench.files, bench.path)
        argv = [found, *CXX_FLAGS, "-I", str(env.include_dir), "-I", str(env.tools_dir),
                "-I", str(src), *(str(src / u) for u in bench.units),
                str(env.lib_dir / "libHalide_GenGen.a"), "-L", str(env.lib_dir), "-lHalide",
                f"-Wl,-rpath,{env.lib_dir}", "-ldl", "-lpthread", "-o", str(tmp)]
        log.unlink(missing_ok=True)  # and made new ("x"): not through a link planted there
        with open(log, "x") as out, _cpu_uncapped():  # a node's one-off, not a candidate's
            out.write(" ".join(argv) + "\n")
            out.flush()
            code = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT).returncode
        if code != 0:  # the error as in the user's folder, not this copy of it
            origin = Path(bench.path)
            origin = origin.parent if origin.name in bench.units else origin
            first = _first_error(log.read_text(errors="replace")).replace(f"{src}/",
                                                                          f"{origin}/")
            raise BenchmarkError(f"the C++ generator {bench.path} does not compile: {first} "
                                 f"(full log: {log})")

    return build_once(folder / "generator", make)


@contextlib.contextmanager
def _cpu_uncapped() -> Iterator[None]:
    """Lift this process's RLIMIT_CPU (farm.build.process caps a candidate's compile)
    for the block, so the compiler it starts inherits no cap; restored after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
    resource.setrlimit(resource.RLIMIT_CPU, (hard, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if " error: " in line or line.startswith("error:") or "undefined reference" in line:
            return line.strip()
    lines = [x for x in text.splitlines()[1:] if x.strip()]
    return lines[0].strip() if lines else "the compiler said nothing"


@functools.cache
def generator_names(exe: Path) -> tuple[str, ...]:
    """The generators an executable registers (GenGen lists them when none is named)."""
    proc = _ask(exe, [str(exe)])
    text = proc.stderr + proc.stdout
    if "available Generators are:" not in text:
        raise BenchmarkError(f"{exe} does not answer as a Halide generator executable "
                             f"does: {' '.join(text.split())[:200] or f'exit {proc.returncode}'}")
    listed = text.split("available Generators are:", 1)[1]
    return tuple(w for w in listed.split() if re.fullmatch(r"[A-Za-z_][\w:]*", w))


@functools.cache
def generator_params(exe: Path, name: str) -> tuple[Param, ...]:
    """A generator's GeneratorParams, from the C++ stub Halide emits for it."""
    with tempfile.TemporaryDirectory(prefix="farm-stub-") as tmp:
        ran = _ask(exe, [str(exe), "-g", name, "-f", "stub", "-o", tmp, "-e", "cpp_stub",
                         "target=host"])
        stub = Path(tmp) / "stub.stub.h"
        if ran.returncode != 0 or not stub.exists():
            raise BenchmarkError(f"{exe}: cannot list the parameters of {name}: "
                                 f"{halide_error(ran.stderr + ran.stdout)}")
        text = stub.read_text()
    m = re.search(r"struct GeneratorParams final \{\n(.*?)\n\s*\n", text, re.S)
    params = []
    for line in (m.group(1).splitlines() if m else ()):
        p = re.fullmatch(r"\s*(.+?) (\w+)\{ (.*) \};", line)
        if p:
            default = re.sub(r"Halide::(U?Int|Float|BFloat)\((\d+)\)",
                             lambda t: f"{t.group(1).lower()}{t.group(2)}", p.group(3))
            if p.group(1) in ("float", "double"):  # a C literal: 0.f, 1.5f
                default = default.rstrip("f").rstrip(".") or "0"
            params.append(Param(p.group(2), p.group(1), default))
    return tuple(params)


def _ask(exe: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """Run the executable for what it tells (its generators, a stub); BenchmarkError when
    it cannot be run or does not answer."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, env=_env(),
                              timeout=ASK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"{exe} did not answer within {ASK_TIMEOUT_S:g} s; is it a "
                             "Halide generator executable?") from None
    except OSError as e:
        raise BenchmarkError(f"{exe} cannot be run ({e.strerror}); is it a Halide "
                             "generator executable built for this machine?") from None


def run(exe: Path, name: str, out_dir: Path, emits: tuple[str, ...], target: str,
        function: str, params: tuple[tuple[str, str], ...] = (),
        autoscheduler: dict[str, str] | None = None,
        cpu_limit_s: float | None = None) -> Ran:
    """Run generator `name` of `exe` into `out_dir` (its output in out_dir/generator.log).
    GeneratorFailed when it fails, CpuLimitReached when it runs out of `cpu_limit_s`."""
    argv = [str(exe), "-g", name, "-f", function, "-o", str(out_dir), "-e",
            ",".join((*emits, "compiler_log"))]
    if autoscheduler is not None:
        argv += ["-p", str(halide_env().plugin)]
    argv.append(f"target={target}")
    if autoscheduler is not None:
        argv += ["autoscheduler=Adams2019",
                 *(f"autoscheduler.{k}={v}" for k, v in sorted(autoscheduler.items()))]
    argv += [f"{k}={v}" for k, v in params]
    log_path = out_dir / "generator.log"
    start = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=out_dir,
                                env=_env(), preexec_fn=_die_with_parent())
        try:
            if cpu_limit_s is not None:  # CPU time counts from the start: exact, set now
                _, hard = resource.getrlimit(resource.RLIMIT_CPU)
                limit = max(1, int(cpu_limit_s + 0.999))
                kill_at = limit + 5  # SIGKILL, should SIGXCPU be ignored
                if hard != resource.RLIM_INFINITY:  # an unprivileged process cannot raise it
                    limit, kill_at = min(limit, hard), min(kill_at, hard)
                resource.prlimit(proc.pid, resource.RLIMIT_CPU, (limit, kill_at))
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # (Ctrl-C, a failed prlimit): no generator left running
            proc.kill()
            proc.wait()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    cpu_s, wall_s = usage.ru_utime + usage.ru_stime, time.monotonic() - start
    text = log_path.read_text(errors="replace")
    if cpu_limit_s is not None and (proc.returncode == -signal.SIGXCPU or (
            proc.returncode == -signal.SIGKILL and cpu_s >= cpu_limit_s)):
        raise CpuLimitReached(f"the generator ran out of its {cpu_limit_s:.0f} s of CPU",
                              text[-4000:])
    if proc.returncode != 0:
        raise GeneratorFailed(halide_error(text) or f"the generator exited with "
                              f"{proc.returncode}", text[-4000:])
    compiler_log = {}
    with_log = out_dir / f"{function}.halide_compiler_log"
    with contextlib.suppress(OSError, ValueError):
        compiler_log = json.loads(with_log.read_text())
    return Ran(cpu_s, wall_s, out_dir, compiler_log)


def halide_error(text: str) -> str:
    """The error a Halide program printed ("Unhandled exception: Error: ..."), one line."""
    m = re.search(r"Error:\s*(.*)", text, re.S)
    found = m.group(1) if m else text
    return " ".join(found.split())[:400]


def _env() -> dict[str, str]:
    # a prebuilt executable finds the wheel's libHalide (the farm's own have an rpath)
    lib = str(halide_env().lib_dir)
    old = os.environ.get("LD_LIBRARY_PATH")
    return dict(os.environ, LD_LIBRARY_PATH=f"{lib}:{old}" if old else lib)


def _die_with_parent():
    """A preexec_fn that ends the child with its parent (a compile cancelled by killing
    its worker must not leave a generator running), where one is safe: in a process of
    one thread (farm.build.process); None elsewhere."""
    if threading.active_count() != 1:
        return None

    def set_pdeathsig() -> None:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return set_pdeathsig
