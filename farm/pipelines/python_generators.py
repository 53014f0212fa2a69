"""Python generator files, loaded the way Halide loads them when the file runs as a script.

- Its generators have the names Halide gives them then: `@hl.generator(name="x")` is x,
  `@hl.generator()` is its class's name, and each `@hl.alias(y={...})` is y. The file's
  `if __name__ == "__main__":` block does not run.
- Halide keeps one registry of generator names per process and refuses a name twice;
  each load gets a registry of its own, so a file loads any number of times, and any
  version of it, aliases included.
- A benchmark with carried files (farm.pipelines.catalog says which travel) runs from a private
  temporary copy of its folder, written once per process and sha256 (`__file__` is the
  copy, so files next to it are found), with that folder first on sys.path while the
  file executes. Afterwards sys.path is restored and the folder's modules leave
  sys.modules, so two benchmarks with a same-named `helpers.py` do not clash. Import
  siblings at the top of the file: an import inside generate() runs later, when the
  farm builds the pipeline.
- An alias is built with its generator params applied. Its `autoscheduler` entry must be
  Adams2019 (the autoscheduler whose cost model the farm tunes) and the farm applies it
  itself: searched candidates are autoscheduled with Adams2019 and the farm's parameters,
  the manual candidate uses the generator's own schedule.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import sys
import tempfile
import threading
import types
from pathlib import Path, PurePosixPath

from farm.errors import BenchmarkError
from farm.pipelines.benchmark import Benchmark, Files, parse_bool, write_files

_AUTOSCHEDULER = "Adams2019"  # the one an alias may ask for


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
            if isinstance(default, bool):
                out[name] = parse_bool(value)
            else:
                out[name] = helpers.GeneratorParam._parse_value(name, type(default), value)
        except Exception:
            raise BenchmarkError(
                f"{label}: {name}={value!r} is not a valid {type(default).__name__}; its "
                f"parameters: {listed}") from None
    return out


def generator_class(bench: Benchmark) -> type:
    """The generator class of `bench`, loaded into this process."""
    classes = generator_classes(bench.source, bench.path, bench.files)
    try:
        cls = classes[bench.name]
    except KeyError:
        raise BenchmarkError(f"{bench.path} has no @hl.generator named {bench.name!r}") from None
    check_alias(bench.path, bench.name, cls)
    return cls


# Loading swaps process-wide state (Halide's registry, sys.path, sys.modules): one at a time.
_loading = threading.RLock()


@functools.lru_cache(maxsize=64)
def generator_classes(source: str, path: str, files: Files = ()) -> dict[str, type]:
    """Execute a generator file once per process; return its generators by the names
    Halide gives them when the file runs as a script (aliases included)."""
    from halide import _generator_helpers as helpers

    digest = Benchmark("", path, source, False, files=files).sha256
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


def check_alias(path: str, name: str, cls: type) -> None:
    wanted = cls.__dict__.get("_farm_alias_autoscheduler", "")
    if wanted not in ("", _AUTOSCHEDULER):
        base = getattr(cls.__mro__[1], "_halide_registered_name", "its generator")
        raise BenchmarkError(
            f"{path}:{name} is an alias for the {wanted} autoscheduler; the farm tunes "
            f"{_AUTOSCHEDULER}'s cost model: use {path}:{base} (or an alias for "
            f"{_AUTOSCHEDULER})")



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
        write_files(folder, files, main_name)
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



def describe(cls: type) -> str:
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
