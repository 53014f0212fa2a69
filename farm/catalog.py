"""Benchmarks: the built-in generators in benchmarks/ and a user's `path.py:name`.

Both kinds are loaded the same way, from their text, so a Benchmark can travel to
other Ray nodes as a value and be loaded there without sharing a file system.

What travels with a Benchmark:
- `source`: the generator file's text.
- `files`: for a user's generator, the rest of its folder that the file may import or
  read: the other files at the top of the folder (sibling modules such as `helpers.py`,
  small data files) and its Python packages (subfolders with an `__init__.py`), each as
  (path relative to the folder, bytes). Left behind: hidden files and folders, bytecode,
  what the farm writes (`*.schedule.h`, `*.weights`, `*.sample`) and every other
  subfolder (data folders, run directories, virtualenvs). At most 50 MB in all: a bigger
  folder is refused (move the generator and the files it needs into a folder of their
  own). Built-in benchmarks carry nothing: benchmarks/ is installed on every node.
- `sha256`: of the source alone when nothing else travels (as it always was), else of the
  source and every carried file: a changed sibling is a changed pipeline.

How a generator file is loaded, the way Halide loads it when the file runs as a script:
- Its generators have the names Halide gives them then: `@hl.generator(name="x")` is x,
  `@hl.generator()` is its class's name, and each `@hl.alias(y={...})` is y. The file's
  `if __name__ == "__main__":` block does not run.
- Halide keeps one registry of generator names per process and refuses a name twice;
  each load gets a registry of its own, so a file loads any number of times, and any
  version of it, aliases included.
- A benchmark with carried files runs from a private temporary copy of its folder,
  written once per process and sha256 (`__file__` is the copy, so files next to it are
  found), with that folder first on sys.path while the file executes. Afterwards sys.path
  is restored and the folder's modules leave sys.modules, so two benchmarks with a
  same-named `helpers.py` do not clash. Import siblings at the top of the file: an
  import inside generate() runs later, when the farm builds the pipeline.
- An alias is built with its generator params applied. Its `autoscheduler` entry must be
  Adams2019 (the autoscheduler whose cost model the farm tunes) and the farm applies it
  itself: searched candidates are autoscheduled with Adams2019 and the farm's parameters,
  the manual candidate uses the generator's own schedule.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import sys
import tempfile
import threading
import types
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from farm.errors import BenchmarkError

# Built-in pipelines that are near twins: a model trained on one has as good as seen the
# other, so `farm evaluate` leaves them out together. conv3x3a16 and conv3x3a32 are one
# generator (benchmarks/conv3x3.py) that differs only in its accumulator type.
TWINS: tuple[tuple[str, ...], ...] = (("conv3x3a16", "conv3x3a32"),)

MAX_FOLDER_BYTES = 50 * 2**20  # what a user's generator may carry from its folder
# files of a generator's folder that never travel: bytecode and what the farm writes there
_LEFT_BEHIND = (".pyc", ".pyo", ".schedule.h", ".weights", ".sample")
_AUTOSCHEDULER = "Adams2019"  # the one an alias may ask for

Files = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Benchmark:
    name: str  # the generator's registered name
    path: str  # the file it came from, for messages
    source: str  # the file's text
    builtin: bool
    description: str = ""
    # the rest of its folder, (path relative to the folder, bytes) (see the module docstring)
    files: Files = field(default=(), repr=False)
    # generator parameters set on the command line (BENCH:name=value,...), sorted by name
    params: tuple[tuple[str, str], ...] = ()

    @property
    def sha256(self) -> str:
        """Of the generator's source (and carried files): its parameters are in `label`."""
        return _digest(self.source, self.files)

    @property
    def label(self) -> str:
        """The pipeline's name: the generator's, with its parameters when it has any. Two
        parameter sets of one generator are two pipelines (upstream: generator_args_sets)."""
        return self.name + (f":{format_params(self.params)}" if self.params else "")

    @property
    def ref(self) -> str:
        """How to name it on the command line."""
        base = self.name if self.builtin else f"{self.path}:{self.name}"
        return base + (f":{format_params(self.params)}" if self.params else "")


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
    """A built-in benchmark name, or `path/to/file.py:generator_name`, either followed by
    `:param=value,...` to set generator parameters."""
    ref, params = split_params(ref)
    bench = _resolve(ref)
    if not params:
        return bench
    values = param_values(bench.label, generator_class(bench), params, bench.builtin)
    # canonical text, so that radius=02 and radius=2 are one pipeline
    canonical = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}
    return replace(bench, params=tuple(sorted(canonical.items())))


def _resolve(ref: str) -> Benchmark:
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


def split_params(ref: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """`BENCH:a=1,b=2` -> (BENCH, (("a", "1"), ("b", "2"))); no `=` after the last colon:
    no parameters."""
    head, colon, tail = ref.rpartition(":")
    if not colon or "=" not in tail:
        return ref, ()
    params = []
    for item in tail.split(","):
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise BenchmarkError(f"{ref!r}: parameters are written name=value,name=value "
                                 f"after the benchmark, not {item!r}")
        params.append((name.strip(), value.strip()))
    names = [n for n, _ in params]
    if len(set(names)) != len(names):
        raise BenchmarkError(f"{ref!r} sets a parameter twice")
    return head, tuple(params)


def format_params(params: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f"{k}={v}" for k, v in params)


def generator_param_defaults(cls: type, builtin: bool = False) -> dict[str, object]:
    """A generator's GeneratorParams and their defaults (a built-in's `manual`, which picks
    the farm's manual schedule, is not one a user sets)."""
    from halide import _generator_helpers as helpers

    found: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        for name, value in vars(klass).items():
            if isinstance(value, helpers.GeneratorParam):
                found[name] = value._value
    if builtin:
        found.pop("manual", None)
    return found


def param_values(label: str, cls: type, params, builtin: bool = False) -> dict[str, object]:
    """`params` as the generator's typed values; a one-line BenchmarkError naming the
    generator's parameters for an unknown name or a bad value."""
    from halide import _generator_helpers as helpers

    known = generator_param_defaults(cls, builtin)
    listed = ", ".join(f"{k} (default {v!r})" for k, v in known.items()) or "none"
    out: dict[str, object] = {}
    for name, value in params:
        if name not in known:
            raise BenchmarkError(f"{label} has no parameter {name!r}; its parameters: {listed}")
        default = known[name]
        try:
            if isinstance(default, bool):  # Halide's parser takes bool("false") for True
                lowered = str(value).lower()
                if lowered not in ("true", "false", "1", "0"):
                    raise ValueError(value)
                out[name] = lowered in ("true", "1")
            else:
                out[name] = helpers.GeneratorParam._parse_value(name, type(default), value)
        except Exception:
            raise BenchmarkError(
                f"{label}: {name}={value!r} is not a valid {type(default).__name__}; its "
                f"parameters: {listed}") from None
    return out


def _user_benchmark(path: Path, name: str, ref: str) -> Benchmark:
    if not name:
        raise BenchmarkError(f"{ref!r} names no generator; write path/to/file.py:generator_name")
    try:
        source = path.read_text()
    except FileNotFoundError:
        raise BenchmarkError(f"generator file {path} does not exist (from {ref!r})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BenchmarkError(f"cannot read generator file {path}: {e}") from None
    where = path.resolve()
    files = _carried_files(where)
    classes = generator_classes(source, str(where), files)
    if name not in classes:
        have = ", ".join(sorted(classes)) or "none"
        raise BenchmarkError(
            f"{path} has no @hl.generator named {name!r} (it defines: {have})")
    _check_alias(str(path), name, classes[name])
    return Benchmark(name, str(where), source, False, _describe(classes[name]), files)


def generator_class(bench: Benchmark) -> type:
    """The generator class of `bench`, loaded into this process."""
    classes = generator_classes(bench.source, bench.path, bench.files)
    try:
        cls = classes[bench.name]
    except KeyError:
        raise BenchmarkError(f"{bench.path} has no @hl.generator named {bench.name!r}") from None
    _check_alias(bench.path, bench.name, cls)
    return cls


# Loading swaps process-wide state (Halide's registry, sys.path, sys.modules): one at a time.
_loading = threading.RLock()


@functools.lru_cache(maxsize=64)
def generator_classes(source: str, path: str, files: Files = ()) -> dict[str, type]:
    """Execute a generator file once per process; return its generators by the names
    Halide gives them when the file runs as a script (aliases included)."""
    from halide import _generator_helpers as helpers

    digest = _digest(source, files)
    module = types.ModuleType(f"farm_generator_{digest[:16]}")
    folder = _materialize(digest, Path(path).name, source, files) if files else None
    module.__file__ = str(folder / Path(path).name) if folder else path
    registry: dict[str, object] = {}
    original_fqname = helpers._fqname

    def fqname(cls) -> str:
        # the file runs as __main__ in Halide's eyes: an unnamed generator is its class's name
        return cls.__qualname__ if cls.__module__ == module.__name__ else original_fqname(cls)

    with _loading:
        saved_registry, saved_path = helpers._python_generators, list(sys.path)
        helpers._python_generators, helpers._fqname = registry, fqname
        hidden: dict[str, types.ModuleType] = {}
        names: set[str] = set()
        if folder is not None:
            names = _module_names(files, Path(path).name)
            hidden = _hide_modules(names)
            sys.path.insert(0, str(folder))
        sys.modules[module.__name__] = module  # dataclasses and pickling look modules up here
        before = set(sys.modules)
        try:
            exec(compile(source, path, "exec"), module.__dict__)
        except SyntaxError as e:
            raise BenchmarkError(_syntax_error(path, folder, e)) from None
        except Exception as e:
            raise BenchmarkError(
                f"generator file {path} failed to load: {type(e).__name__}: {e}") from None
        finally:
            helpers._python_generators, helpers._fqname = saved_registry, original_fqname
            sys.path[:] = saved_path
            if folder is not None:
                _drop_modules(before, names, folder)
                sys.modules.update(hidden)
    generators: dict[str, type] = {}
    for name, cls in registry.items():
        if isinstance(cls, type) and issubclass(cls, helpers.Generator):
            _farm_alias(cls)
            generators[name] = cls
    return generators


def _farm_alias(cls: type) -> None:
    """Take an alias's `autoscheduler` entry out of the params Halide applies: the farm
    decides how each candidate is scheduled (and refuses an alias for another one)."""
    params = cls.__dict__.get("_halide_alias_generator_params")
    if isinstance(params, dict) and "autoscheduler" in params:
        cls._farm_alias_autoscheduler = str(params["autoscheduler"])  # type: ignore[attr-defined]
        cls._halide_alias_generator_params = {  # type: ignore[attr-defined]
            k: v for k, v in params.items() if k != "autoscheduler"}


def _check_alias(path: str, name: str, cls: type) -> None:
    wanted = cls.__dict__.get("_farm_alias_autoscheduler", "")
    if wanted not in ("", _AUTOSCHEDULER):
        base = getattr(cls.__mro__[1], "_halide_registered_name", "its generator")
        raise BenchmarkError(
            f"{path}:{name} is an alias for the {wanted} autoscheduler; the farm tunes "
            f"{_AUTOSCHEDULER}'s cost model: use {path}:{base} (or an alias for "
            f"{_AUTOSCHEDULER})")


def _digest(source: str, files: Files) -> str:
    if not files:
        return hashlib.sha256(source.encode()).hexdigest()
    h = hashlib.sha256(b"farm benchmark folder 1\0")
    for part in (source.encode(), *(x for rel, data in sorted(files)
                                     for x in (rel.encode(), data))):
        h.update(len(part).to_bytes(8, "little"))
        h.update(part)
    return h.hexdigest()


def _left_behind(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__" or name.endswith(_LEFT_BEHIND)


def _carried_files(main: Path) -> Files:
    """The files of `main`'s folder that travel with it (see the module docstring)."""
    folder = main.parent
    found: list[tuple[str, Path]] = []
    try:
        for entry in sorted(folder.iterdir()):
            if _left_behind(entry.name) or entry.name == main.name:
                continue
            if entry.is_file():
                found.append((entry.name, entry))
            elif entry.is_dir() and (entry / "__init__.py").is_file():
                for root, dirs, names in os.walk(entry):
                    dirs[:] = sorted(d for d in dirs if not _left_behind(d))
                    for n in sorted(names):
                        p = Path(root, n)
                        if not _left_behind(n) and p.is_file():
                            found.append((p.relative_to(folder).as_posix(), p))
        size = sum(p.stat().st_size for _, p in found)
    except OSError as e:
        raise BenchmarkError(f"cannot list the folder of generator file {main}: {e}") from None
    if size > MAX_FOLDER_BYTES:
        raise BenchmarkError(
            f"{folder} holds {size / 2**20:.0f} MB that would travel with {main.name} to "
            f"every node (a generator carries its folder's files, up to "
            f"{MAX_FOLDER_BYTES // 2**20} MB): move {main.name} and the files it needs "
            "into a folder of their own")
    carried = []
    for rel, p in found:
        try:
            carried.append((rel, p.read_bytes()))
        except OSError as e:
            raise BenchmarkError(f"cannot read {p}, which travels with generator file "
                                 f"{main.name}: {e}") from None
    return tuple(carried)


_materialized: dict[str, Path] = {}


def _materialize(digest: str, main_name: str, source: str, files: Files) -> Path:
    """A private folder holding the benchmark's files, written once per process."""
    with _loading:
        folder = _materialized.get(digest)
        if folder is not None and folder.is_dir():
            return folder
        if not _materialized:
            atexit.register(_remove_materialized)
            _remove_orphans()
        folder = Path(tempfile.mkdtemp(prefix=f"farm-benchmark-{digest[:12]}-{os.getpid()}-"))
        for rel, data in files:
            where = PurePosixPath(rel)
            if where.is_absolute() or ".." in where.parts or not where.parts:
                raise BenchmarkError(f"generator file {main_name} carries a file outside "
                                     f"its folder: {rel!r}")
            target = folder.joinpath(*where.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        (folder / main_name).write_text(source, encoding="utf-8")
        _materialized[digest] = folder
        return folder


def _remove_materialized() -> None:
    for folder in _materialized.values():
        shutil.rmtree(folder, ignore_errors=True)


def _remove_orphans() -> None:
    """Remove the folders of processes that died without cleaning up (Ray ends its
    workers without running atexit): farm-benchmark-DIGEST-PID-RANDOM."""
    for folder in Path(tempfile.gettempdir()).glob("farm-benchmark-*-*-*"):
        try:
            pid = int(folder.name.split("-")[3])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except (ValueError, OSError):  # not ours, or its process lives (maybe another user's)
            continue


def _module_names(files: Files, main_name: str) -> set[str]:
    """The top-level module names a folder provides: its .py files and its packages."""
    names = {Path(main_name).stem}
    for rel, _ in files:
        parts = PurePosixPath(rel).parts
        if len(parts) > 1:
            names.add(parts[0])
        elif parts and parts[0].endswith(".py"):
            names.add(parts[0][:-3])
    return names


def _top(module: str) -> str:
    return module.partition(".")[0]


def _hide_modules(names: set[str]) -> dict[str, types.ModuleType]:
    """Take modules named like the folder's out of sys.modules while its file runs (as a
    script's folder shadows them), except the standard library's, imported before any
    script runs."""
    hidden = {}
    for name in list(sys.modules):
        top = _top(name)
        if top in names and top not in sys.stdlib_module_names:
            hidden[name] = sys.modules.pop(name)
    return hidden


def _drop_modules(before: set[str], names: set[str], folder: Path) -> None:
    """Forget the modules a file imported from its folder."""
    for name in [n for n in sys.modules if n not in before]:
        module = sys.modules[name]
        file = getattr(module, "__file__", None) or ""
        if _top(name) in names or file.startswith(str(folder) + os.sep):
            del sys.modules[name]


def _syntax_error(path: str, folder: Path | None, e: SyntaxError) -> str:
    if e.filename in (None, path, "<string>"):
        return f"generator file {path} has a syntax error at line {e.lineno}: {e.msg}"
    where = e.filename
    if folder is not None and where.startswith(str(folder) + os.sep):
        where = where[len(str(folder)) + 1:]
    return (f"generator file {path} failed to load: {where} has a syntax error at line "
            f"{e.lineno}: {e.msg}")


def _describe(cls: type) -> str:
    """The first sentence or so of the generator's docstring, else of its file's."""
    import halide as hl

    for klass in cls.__mro__:
        if klass is hl.Generator:
            break
        if klass.__doc__ and klass.__doc__.strip():
            return _first_paragraph(klass.__doc__)
    for klass in cls.__mro__:
        module = sys.modules.get(klass.__module__)
        if module is not None and module.__name__.startswith("farm_generator_") \
                and module.__doc__ and module.__doc__.strip():
            return _first_paragraph(module.__doc__)
    return ""


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.strip().split("\n\n")[0].split())
