"""C++ toolchains: build the timing harness and the Halide runtime once, link per candidate.

Halide's own loop compiles RunGenMain.cpp and the Halide runtime again for
every sample (three quarters of its compile time). Here both are built once
per toolchain and target, cached on disk under the farm's cache directory,
and each candidate is a bare pipeline library (`no_runtime`) linked against
them in a fraction of a second.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from farm.errors import MissingPrerequisite, WorkFailed
from farm.machine.cache import build_once, cache_dir, intact
from farm.machine.halide_env import halide_env
from farm.machine.targets import TargetInfo

# beside its reader, farm.devices.timing
HARNESS_SOURCE = Path(__file__).resolve().parents[1] / "devices" / "harness" / "timing_main.cpp"
ANDROID_API = int(os.environ.get("FARM_ANDROID_API", "28"))


@dataclass(frozen=True)
class Toolchain:
    target: str  # the Halide target the pieces are compiled for
    cxx: tuple[str, ...]
    compile_flags: tuple[str, ...]
    link_flags: tuple[str, ...]

    @functools.cached_property
    def key(self) -> str:
        h = hashlib.sha256()
        for part in (self.target, *self.cxx, *self.compile_flags, *self.link_flags,
                     compiler_identity(self.cxx), halide_env().version,
                     HARNESS_SOURCE.read_text()):
            h.update(part.encode() + b"\0")
        return h.hexdigest()[:20]

    @property
    def directory(self) -> Path:
        return cache_dir("toolchain", self.key)

    def harness_object(self) -> Path:
        """The compiled timing harness, built on first use."""
        env = halide_env()

        def make(out: Path) -> None:
            try:
                _run([*self.cxx, *self.compile_flags, "-std=c++17", "-O2",
                      "-DHALIDE_NO_PNG", "-DHALIDE_NO_JPEG",
                      "-I", str(env.include_dir), "-I", str(env.tools_dir),
                      "-c", str(HARNESS_SOURCE), "-o", str(out)], "compiling the timing harness")
            except WorkFailed as e:  # the farm's own source: the compiler is what is broken
                raise MissingPrerequisite(f"{str(e)[:600]}: check the C++ compiler "
                                          f"{self.cxx[0]} (or set CXX)", cause="compiler") \
                    from None

        return build_once(self.directory / "harness.o", make)

    def link(self, pipeline_library: Path, function: str, out: Path) -> None:
        """Link the harness with a pipeline compiled as `function`: the harness calls
        farm_pipeline_*, which the linker aliases to the pipeline's own symbols."""
        aliases = []
        for suffix in ("argv", "metadata"):
            aliases += [f"-Wl,-u,{function}_{suffix}",
                        f"-Wl,--defsym=farm_pipeline_{suffix}={function}_{suffix}"]
        _run([*self.cxx, str(self.harness_object()), str(pipeline_library),
              str(runtime_library(self.target)), *aliases, "-o", str(out), *self.link_flags],
             "linking the benchmark binary")


def prepare_here(target: TargetInfo) -> None:
    """Build the host's timing harness in this process, saying so, when it is not built yet:
    for an embedded cluster, whose compile workers would otherwise build it silently
    (their output goes to Ray's logs) while the user waits on a quiet terminal."""
    if target.is_android:
        return  # built on the phones' nodes, with their NDK
    chain = for_target(target)
    if intact(chain.directory / "harness.o"):
        return
    print(f"building the timing harness once on this machine (~20 s; cached in "
          f"{chain.directory}) ...", file=sys.stderr, flush=True)
    chain.harness_object()


def runtime_library(target: str) -> Path:
    """The Halide runtime for `target`, built once per machine (no C++ compiler needed)."""
    import halide as hl

    def make(out: Path) -> None:
        hl.compile_standalone_runtime(str(out), hl.Target(target))

    key = hashlib.sha256(f"{target}\0{halide_env().version}".encode()).hexdigest()[:20]
    return build_once(cache_dir("runtime", key) / "halide_runtime.a", make)


def for_target(target: TargetInfo) -> Toolchain:
    if target.is_android:
        # FARM_HEXAGON: the harness times with the DSP in turbo and HVX powered on
        hexagon = ("-DFARM_HEXAGON",) if target.offload_hexagon else ()
        return Toolchain(target.compile, (str(ndk_clang()),), ("-fPIE", *hexagon),
                         ("-fPIE", "-pie", "-static-libstdc++", "-ldl", "-llog"))
    return Toolchain(target.compile, (host_compiler(),), (), ("-ldl", "-lpthread"))


def host_compiler() -> str:
    """This machine's C++ compiler: $CXX, else c++, as a path."""
    cxx = os.environ.get("CXX", "c++")
    found = shutil.which(cxx)
    if not found:
        raise MissingPrerequisite(
            f"no C++ compiler {cxx!r} on PATH: install one (Debian: apt install g++) or set CXX",
            cause="compiler")
    return found


def ndk_clang() -> Path:
    """The Android NDK's clang++ for arm64 (needs ANDROID_NDK_ROOT)."""
    root = os.environ.get("ANDROID_NDK_ROOT") or os.environ.get("ANDROID_NDK_HOME")
    if not root:
        raise MissingPrerequisite(
            "no Android NDK: set ANDROID_NDK_ROOT to an NDK (r25 or newer) to build "
            "arm-64-android candidates", cause="ndk")
    clang = (Path(root) / "toolchains" / "llvm" / "prebuilt" / "linux-x86_64" / "bin"
             / f"aarch64-linux-android{ANDROID_API}-clang++")
    if not clang.exists():
        raise MissingPrerequisite(
            f"ANDROID_NDK_ROOT={root} has no {clang.name} (looked in {clang.parent}); "
            "point it at an NDK r25 or newer, or set FARM_ANDROID_API", cause="ndk")
    return clang


@functools.cache
def compiler_identity(cxx: tuple[str, ...]) -> str:
    try:
        return subprocess.run([*cxx, "--version"], capture_output=True, text=True,
                              timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _run(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        raise WorkFailed(f"{what} timed out after 600 s: {' '.join(argv)}") from None
    except FileNotFoundError:  # gone since it was found (host_compiler): say the fix
        raise MissingPrerequisite(
            f"{what}: no C++ compiler at {argv[0]} any more: install one (Debian: apt install "
            "g++) or set CXX (ANDROID_NDK_ROOT for Android targets)", cause="compiler") from None
    except OSError as e:
        raise MissingPrerequisite(f"{what}: cannot run {argv[0]}: {e.strerror}",
                                  cause="compiler") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout)[-2000:]
        raise WorkFailed(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n{tail}")
