"""Benchmarks: the built-in generators in benchmarks/ and a user's `path.py:name`.

Both kinds are loaded the same way, from the file's text, so a Benchmark can
travel to other Ray nodes as a value (its source) and be loaded there without
sharing a file system.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path

from farm.errors import BenchmarkError

# Built-in pipelines that are near twins: a model trained on one has as good as seen the
# other, so `farm evaluate` leaves them out together. conv3x3a16 and conv3x3a32 are one
# generator (benchmarks/conv3x3.py) that differs only in its accumulator type.
TWINS: tuple[tuple[str, ...], ...] = (("conv3x3a16", "conv3x3a32"),)


@dataclass(frozen=True)
class Benchmark:
    name: str  # the generator's registered name
    path: str  # the file it came from, for messages
    source: str  # the file's text
    builtin: bool
    description: str = ""

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def ref(self) -> str:
        """How to name it on the command line."""
        return self.name if self.builtin else f"{self.path}:{self.name}"


def builtin_dir() -> Path:
    here = Path(__file__).resolve().parent
    installed = here / "benchmarks"  # benchmarks/ is mapped here at build time
    return installed if installed.is_dir() else here.parent / "benchmarks"


@functools.cache
def builtin_benchmarks() -> tuple[Benchmark, ...]:
    found = []
    for path in sorted(builtin_dir().glob("*.py")):
        if path.name.startswith("_"):
            continue
        source = path.read_text()
        for name, cls in generator_classes(source, str(path)).items():
            found.append(Benchmark(name, str(path), source, True, _describe(cls)))
    return tuple(sorted(found, key=lambda b: b.name))


def resolve(ref: str) -> Benchmark:
    """A built-in benchmark name, or `path/to/file.py:generator_name`."""
    if ":" in ref:
        file, _, name = ref.rpartition(":")
        return _user_benchmark(Path(file), name, ref)
    for bench in builtin_benchmarks():
        if bench.name == ref:
            return bench
    known = ", ".join(b.name for b in builtin_benchmarks())
    raise BenchmarkError(
        f"unknown benchmark {ref!r}; built-in ones are: {known} "
        "(or give your own generator as path/to/file.py:generator_name)")


def _user_benchmark(path: Path, name: str, ref: str) -> Benchmark:
    if not name:
        raise BenchmarkError(f"{ref!r} names no generator; write path/to/file.py:generator_name")
    try:
        source = path.read_text()
    except FileNotFoundError:
        raise BenchmarkError(f"generator file {path} does not exist (from {ref!r})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BenchmarkError(f"cannot read generator file {path}: {e}") from None
    classes = generator_classes(source, str(path))
    if name not in classes:
        have = ", ".join(sorted(classes)) or "none"
        raise BenchmarkError(
            f"{path} has no @hl.generator named {name!r} (it defines: {have})")
    return Benchmark(name, str(path.resolve()), source, False, _describe(classes[name]))


def generator_class(bench: Benchmark) -> type:
    """The generator class of `bench`, loaded into this process."""
    classes = generator_classes(bench.source, bench.path)
    try:
        return classes[bench.name]
    except KeyError:
        raise BenchmarkError(f"{bench.path} has no @hl.generator named {bench.name!r}") from None


@functools.lru_cache(maxsize=64)
def generator_classes(source: str, path: str) -> dict[str, type]:
    """Execute a generator file once per process; return its generators by name."""
    import halide as hl
    from halide import _generator_helpers

    module = types.ModuleType(f"farm_generator_{hashlib.sha256(source.encode()).hexdigest()[:16]}")
    module.__file__ = path
    sys.modules[module.__name__] = module  # dataclasses and pickling look modules up here
    try:
        code = compile(source, path, "exec")
        exec(code, module.__dict__)
    except SyntaxError as e:
        raise BenchmarkError(
            f"generator file {path} has a syntax error at line {e.lineno}: {e.msg}") from None
    except Exception as e:
        raise BenchmarkError(
            f"generator file {path} failed to load: {type(e).__name__}: {e}") from None
    finally:
        # Halide keeps a process-wide registry of generator names and refuses a
        # name twice; the farm never looks generators up there, so forget them
        # and let another version of the same file load later.
        for obj in list(vars(module).values()):
            name = getattr(obj, "_halide_registered_name", None)
            if isinstance(obj, type) and name:
                _generator_helpers._python_generators.pop(name, None)
    generators: dict[str, type] = {}
    for obj in vars(module).values():
        name = getattr(obj, "_halide_registered_name", None)
        if isinstance(obj, type) and issubclass(obj, hl.Generator) and name:
            generators[name] = obj
    return generators


def _describe(cls: type) -> str:
    for klass in cls.__mro__:
        if klass.__doc__ and klass is not object:
            return klass.__doc__.strip().splitlines()[0]
    return ""
