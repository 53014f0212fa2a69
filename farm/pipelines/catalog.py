"""Benchmarks by name: the built-ins in benchmarks/ and the user's generators.

What BENCH can be (`farm benchmarks` says it too):
- a built-in name: `median3x3`;
- a Python generator file and the generator's name: `path/to/file.py:name`
  (farm.pipelines.python_generators: the names Halide gives them when the file runs as a
  script, aliases included);
- a C++ generator folder, as Halide's apps and the seed's benchmarks keep them: `path/to/dir`
  (every `*_generator.cpp` in it is compiled into one generator executable), or one file,
  `path/to/file.cpp`; with `:name` to pick among several generators (farm.pipelines.cpp_generators);
- a prebuilt generator executable: `path/to/exe` or `path/to/exe:name`;
any of them followed by `:param=value,...` to set generator parameters. A bare name that
is a built-in and also a path here is refused as ambiguous (write `./name` for the path).

Everything a benchmark needs travels with it as a value (farm.pipelines.benchmark), so it builds on
any Ray node without a shared file system:
- a Python file: its text, and the rest of its folder that it may import or read: the
  other files at the top of the folder (sibling modules such as `helpers.py`, small data
  files) and its Python packages (subfolders with an `__init__.py`);
- a C++ generator: every file at the top of its folder (its `*_generator.cpp`, headers,
  the app's other files) and the C and C++ sources and headers of its subfolders;
- an executable: itself.
Left behind: hidden files and folders, bytecode, what the farm writes (`*.schedule.h`,
`*.weights`, `*.sample`) and every other file of a subfolder (data folders, run
directories, virtualenvs). At most 50 MB in all: a bigger folder is refused (move the
generator and the files it needs into a folder of their own). Built-in benchmarks carry
nothing: benchmarks/ is installed on every node.

A run directory is data, never code (docs/autotuning.md: the run directory). What it records
about its generators (a manifest's BENCH, its sha256) is resolved by `recorded`: a built-in
always (it is installed with the farm); a user's generator only when the user names its
path again on the command line, and only when its files still hash to what the run
recorded, checked before any of its code runs (imported, compiled or executed). The copy of
a generator kept in the run directory (generator.py, generators/NAME/) never runs by
itself: its sha256 sits in the same run directory, so whoever wrote one could write the
other.
"""

from __future__ import annotations

import difflib
import functools
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from farm.errors import BenchmarkError, RunDirError
from farm.pipelines import cpp_generators, python_generators
from farm.pipelines.benchmark import CPP, EXECUTABLE, FORMS, Benchmark, Files, format_params
from farm.pipelines.params import canonical, cpp_params, split_params

# Built-in pipelines that are near twins: a model trained on one has as good as seen the
# other, so `farm evaluate` leaves them out together. conv3x3a16 and conv3x3a32 are one
# generator (benchmarks/conv3x3.py) that differs only in its accumulator type.
TWINS: tuple[tuple[str, ...], ...] = (("conv3x3a16", "conv3x3a32"),)

MAX_FOLDER_BYTES = 50 * 2**20  # what a user's generator may carry from its folder
# files of a generator's folder that never travel: bytecode and what the farm writes there
_LEFT_BEHIND = (".pyc", ".pyo", ".schedule.h", ".weights", ".sample")
_CPP_SOURCES = (".h", ".hh", ".hpp", ".hxx", ".inc", ".inl", ".c", ".cc", ".cpp", ".cxx")
_CPP_UNITS = (".cpp", ".cc", ".cxx")


def builtin_dir() -> Path:
    here = Path(__file__).resolve().parents[1]  # farm/
    installed = here / "benchmarks"  # benchmarks/ is mapped here at build time
    return installed if installed.is_dir() else here.parent / "benchmarks"


# The farm's own generators by name: built in, but not among the built-in benchmarks (not in
# `all`, not in a campaign of the built-ins); each draws a pipeline per parameter set.
GENERATORS = {"random": Path(__file__).with_name("random_pipeline.py")}


@functools.cache
def farm_generator(name: str) -> Benchmark | None:
    """The farm's own generator `name` (GENERATORS), or None."""
    path = GENERATORS.get(name)
    if path is None:
        return None
    source = path.read_text()
    cls = python_generators.generator_classes(source, str(path))[name]
    return Benchmark(name, str(path), source, True, python_generators.describe(cls))


def _benchmarks_in(folder: Path) -> tuple[Benchmark, ...]:
    found = []
    for path in sorted(folder.glob("*.py")):
        if path.name.startswith("_"):
            continue
        source = path.read_text()
        for name, cls in python_generators.generator_classes(source, str(path)).items():
            found.append(Benchmark(name, str(path), source, True, python_generators.describe(cls)))
    return tuple(sorted(found, key=lambda b: b.name))


@functools.cache
def builtin_benchmarks() -> tuple[Benchmark, ...]:
    """The six built-ins (Halide's hexagon benchmarks): the suite `all`."""
    return _benchmarks_in(builtin_dir())


@functools.cache
def corpus_families() -> dict[str, tuple[Benchmark, ...]]:
    """The corpus of real pipelines (benchmarks/corpus/), by family: a family is a file,
    named what its pipelines have in common. Not in `all`: the suite `corpus` is all of it,
    and each family is a suite of its own."""
    families: dict[str, tuple[Benchmark, ...]] = {}
    for b in _benchmarks_in(builtin_dir() / "corpus"):
        families[Path(b.path).stem] = (*families.get(Path(b.path).stem, ()), b)
    return dict(sorted(families.items()))


@functools.cache
def corpus_benchmarks() -> tuple[Benchmark, ...]:
    return tuple(sorted((b for f in corpus_families().values() for b in f),
                        key=lambda b: b.name))


def family_of(name: str) -> str | None:
    """The corpus family of built-in pipeline `name` (its generator's name); None when it
    is not in the corpus."""
    return next((f for f, benches in corpus_families().items()
                 if any(b.name == name for b in benches)), None)


# Suites: names that stand for several built-in benchmarks.
ALL, CORPUS = "all", "corpus"


def suites() -> dict[str, tuple[str, ...]]:
    """Every suite's name and its benchmarks' names: `all` (the six built-ins), `corpus`
    and one per corpus family."""
    return {ALL: tuple(b.name for b in builtin_benchmarks()),
            CORPUS: tuple(b.name for b in corpus_benchmarks()),
            **{f: tuple(b.name for b in benches) for f, benches in corpus_families().items()}}


def suite(name: str) -> tuple[str, ...] | None:
    """The benchmarks' names suite `name` stands for; None when it names no suite."""
    return suites().get(name)


def expand(refs: Sequence[str]) -> list[str]:
    """BENCH arguments with each suite's name replaced by its benchmarks' names, in order,
    each pipeline once."""
    out: list[str] = []
    for ref in refs:
        for r in suite(ref) or (ref,):
            if r not in out:
                out.append(r)
    return out


def _known() -> tuple[Benchmark, ...]:
    """Every built-in benchmark: the six and the corpus."""
    return builtin_benchmarks() + corpus_benchmarks()


class SourceChanged(BenchmarkError):
    """A generator's files hash to another sha256 than a run recorded: found before any of
    its code ran. `path`: the generator's file or folder."""

    def __init__(self, path: str, recorded: str, found: str):
        super().__init__(f"{path} changed since the run tuned it (sha256 {recorded[:12]} "
                         f"then, {found[:12]} now); restore the generator the run tuned, or "
                         "tune the changed one in a new run")
        self.path = path


def resolve(ref: str, sha256: str | None = None) -> Benchmark:
    """A benchmark by any of the names in the module docstring. With `sha256` (what a run
    recorded), one whose source and carried files hash otherwise is refused (SourceChanged)
    before any of its code runs: read, hashed, then loaded."""
    ref, params = split_params(ref)
    bench = _resolve(ref, sha256)
    if bench.builtin and bench.name in GENERATORS and "version" not in dict(params):
        # a farm generator's version is part of every pipeline's name: a seed is one
        # pipeline of one version
        defaults = python_generators.generator_param_defaults(
            python_generators.generator_class(bench))
        params = (*params, ("version", str(defaults["version"])))
    if not params:
        return bench
    if bench.kind in (CPP, EXECUTABLE):
        return replace(bench, params=cpp_params(bench, params))
    cls = python_generators.generator_class(bench)
    values = python_generators.param_values(bench.label, cls, params, bench.builtin)
    return replace(bench, params=tuple(sorted(canonical(values).items())))


def twins(label: str) -> tuple[str, ...]:
    """The built-in near twins of pipeline `label` (TWINS), itself left out."""
    return tuple(t for group in TWINS if label in group for t in group if t != label)


def recorded(ref: str, sha256: str, named: Sequence[str], where: str, again: str
             ) -> Benchmark:
    """The benchmark a run directory records as `ref` (its files' `sha256`; "" when it
    recorded none), resolved only when its code may run (see the module docstring): a
    built-in, or a user's generator whose path one of `named` (the BENCHes the user gave on
    the command line) names too. Otherwise a RunDirError, before anything is read: `where`
    names the record, `again` the command line that names the generator, with `{path}` for
    its path or `{ref}` for the whole BENCH."""
    path = generator_path(ref)
    if path is None:
        return resolve(ref, sha256 or None)
    if not sha256:  # nothing to check its files against: a record emptied, or forged
        raise RunDirError(f"{where} names the generator {path} but records no sha256 of its "
                          "files, so the farm cannot tell it is the generator the run tuned; "
                          "tune it in a new run")
    mine = next((arg for arg in named if names_path(arg, path)), None)
    if mine is None:
        raise RunDirError(f"{where} names the generator {path}, and the farm runs no code a "
                          "run directory names: if you trust that file, name it: "
                          + again.replace("{path}", str(path)).replace("{ref}", ref))
    # read from the path the user gave, never the one the record spells: that could be a
    # link whose writer points it elsewhere once the two were found to be the same file
    head, params = split_params(ref)
    name = _path_and_name(head)[1]
    own = str(generator_path(mine)) + (f":{name}" if name else "") + (
        f":{format_params(params)}" if params else "")
    return resolve(own, sha256 or None)


def generator_path(ref: str) -> Path | None:
    """The file or folder of the generator BENCH `ref` names; None for a built-in. Reads
    no file."""
    head, _ = split_params(ref)
    if any(b.name == head for b in _known()):
        return None
    return _path_and_name(head)[0]


def names_path(arg: str, path: Path) -> bool:
    """Whether the BENCH `arg` names the generator at `path` (the same file or folder)."""
    try:
        mine = generator_path(arg)
    except BenchmarkError:
        return False
    if mine is None:
        return False
    try:
        return os.path.samefile(mine, path)
    except OSError:  # one of them is not there
        return False


def _path_and_name(ref: str) -> tuple[Path, str]:
    """`path/to/file.py:name` -> (its path, the generator's name; "" when not given)."""
    path, name = Path(ref), ""
    if not path.exists() and ":" in ref:
        file, _, name = ref.rpartition(":")
        path = Path(file)
    return path, name


def _check_sha(bench: Benchmark, sha256: str | None) -> Benchmark:
    """`bench` when `sha256` is None or its own; SourceChanged otherwise."""
    if sha256 is not None and bench.sha256 != sha256:
        raise SourceChanged(bench.path, sha256, bench.sha256)
    return bench


def _resolve(ref: str, sha256: str | None = None) -> Benchmark:
    builtin = next((b for b in _known() if b.name == ref), None) or \
        farm_generator(ref)
    if builtin is not None:
        if Path(ref).exists():
            raise BenchmarkError(f"{ref!r} is a built-in benchmark and a path here: write "
                                 f"./{ref} for the path, or run elsewhere for the built-in")
        return _check_sha(builtin, sha256)
    path, name = _path_and_name(ref)
    if path.suffix == ".py":
        return _python_benchmark(path, name, ref, sha256)
    if path.is_dir() or path.suffix in _CPP_UNITS:
        return _cpp_benchmark(path, name, ref, sha256)
    if path.is_file() and os.access(path, os.X_OK):
        return _executable_benchmark(path, name, sha256)
    if path.exists():
        raise BenchmarkError(f"{path} is not a generator: give {FORMS}")
    if path.suffix or "/" in ref:
        raise BenchmarkError(f"{path} does not exist (from {ref!r})")
    names = [*suites(), *(b.name for b in _known()), *GENERATORS]
    close = difflib.get_close_matches(ref, names, n=1)
    hint = f"did you mean {close[0]}? " if close else ""
    raise BenchmarkError(f"unknown benchmark {ref!r}; {hint}`farm benchmarks` lists the "
                         f"built-in ones and suites (or give your own: {FORMS})")


def _python_benchmark(path: Path, name: str, ref: str, sha256: str | None) -> Benchmark:
    if not name:
        raise BenchmarkError(f"{ref!r} names no generator; write path/to/file.py:generator_name")
    try:
        source = path.read_text()
    except FileNotFoundError:
        raise BenchmarkError(f"generator file {path} does not exist (from {ref!r})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise BenchmarkError(f"cannot read generator file {path}: {e}") from None
    where = path.resolve()
    files = _carried_files(where.parent, skip=where.name, cpp=False)
    _check_sha(Benchmark(name, str(where), source, False, files=files), sha256)  # before it runs
    classes = python_generators.generator_classes(source, str(where), files)
    if name not in classes:
        have = ", ".join(sorted(classes)) or "none"
        raise BenchmarkError(
            f"{path} has no @hl.generator named {name!r} (it defines: {have})")
    python_generators.check_alias(str(path), name, classes[name])
    return Benchmark(name, str(where), source, False,
                     python_generators.describe(classes[name]), files)


def _cpp_benchmark(path: Path, name: str, ref: str, sha256: str | None) -> Benchmark:
    if not path.exists():
        raise BenchmarkError(f"C++ generator {path} does not exist (from {ref!r})")
    where = path.resolve()
    folder = where if where.is_dir() else where.parent
    files = _carried_files(folder, skip=None, cpp=True)
    if where.is_dir():
        units = tuple(rel for rel, _ in files if rel.endswith("_generator.cpp") and "/" not in rel)
        if not units:
            raise BenchmarkError(
                f"{path} holds no *_generator.cpp: a C++ generator folder holds "
                "NAME_generator.cpp files, as Halide's apps do (or name the file: "
                "path/to/file.cpp)")
    else:
        units = (where.name,)
    bench = Benchmark("", str(where), "", False, _leading_comment(files, units[0]), files,
                      kind=CPP, units=units)
    return _named(_check_sha(bench, sha256), name)  # checked before it is built


def _executable_benchmark(path: Path, name: str, sha256: str | None) -> Benchmark:
    where = path.resolve()
    size = where.stat().st_size
    if size > MAX_FOLDER_BYTES:
        raise BenchmarkError(
            f"{path} is {size / 2**20:.0f} MB, more than the {MAX_FOLDER_BYTES // 2**20} MB a "
            "generator may carry to every node: link it against the halide wheel's shared "
            "libHalide (as the farm builds C++ generators), or give the farm its sources")
    try:
        data = where.read_bytes()
    except OSError as e:
        raise BenchmarkError(f"cannot read the generator executable {path}: {e.strerror}; "
                             "it must be readable to travel to the nodes") from None
    bench = Benchmark("", str(where), "", False, f"generator executable {where.name}",
                      ((where.name, data),), kind=EXECUTABLE, units=(where.name,))
    return _named(_check_sha(bench, sha256), name)  # checked before it runs


def _named(bench: Benchmark, name: str) -> Benchmark:
    """`bench` as its generator `name`, or as its only one when no name is given."""
    names = cpp_generators.generator_names(cpp_generators.executable(bench))
    if not name and len(names) == 1:
        name = names[0]
    if name not in names:
        have = ", ".join(names) or "none"
        if not name:
            raise BenchmarkError(f"{bench.path} registers several generators ({have}): "
                                 f"name one, {bench.path}:NAME")
        raise BenchmarkError(f"{bench.path} has no generator named {name!r} (it "
                             f"registers: {have})")
    return replace(bench, name=name)


def _leading_comment(files: Files, unit: str) -> str:
    """A C++ generator's description: the comment its first unit starts with."""
    text = dict(files).get(unit, b"").decode(errors="replace")
    lines = []
    for line in text.splitlines():
        text_of_line = line.lstrip("/").strip()
        if not line.startswith("//") or not text_of_line:  # its first paragraph
            break
        lines.append(text_of_line)
    return " ".join(" ".join(lines).split())


def _left_behind(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__" or name.endswith(_LEFT_BEHIND)


def _carried_files(folder: Path, skip: str | None, cpp: bool) -> Files:
    """The files of `folder` that travel with its generator (see the module docstring);
    `skip`: the Python file itself, which travels as the source."""
    found: list[tuple[str, Path]] = []
    size = 0

    def add(rel: str, p: Path) -> bool:
        """List `p`; whether the files so far still fit (the walk stops when not: a file
        at the top of a big tree must not wait for all of it)."""
        nonlocal size
        found.append((rel, p))
        size += p.stat().st_size
        return size <= MAX_FOLDER_BYTES

    try:
        for entry in sorted(folder.iterdir()):
            if size > MAX_FOLDER_BYTES:
                break
            if _left_behind(entry.name) or entry.name == skip:
                continue
            if entry.is_file():
                add(entry.name, entry)
            elif entry.is_dir() and (cpp or (entry / "__init__.py").is_file()):
                for root, dirs, names in os.walk(entry):
                    dirs[:] = sorted(d for d in dirs if not _left_behind(d))
                    for n in sorted(names):
                        p = Path(root, n)
                        if not _left_behind(n) and p.is_file() and (
                                not cpp or n.endswith(_CPP_SOURCES)) and \
                                not add(p.relative_to(folder).as_posix(), p):
                            break
                    if size > MAX_FOLDER_BYTES:
                        break
    except OSError as e:
        raise BenchmarkError(f"cannot list the generator's folder {folder}: {e}") from None
    what = skip or "the generator"
    if size > MAX_FOLDER_BYTES:
        raise BenchmarkError(
            f"{folder} holds {size / 2**20:.0f} MB that would travel with {what} to "
            f"every node (a generator carries its folder's files, up to "
            f"{MAX_FOLDER_BYTES // 2**20} MB): move {what} and the files it needs "
            "into a folder of their own")
    carried = []
    for rel, p in found:
        try:
            carried.append((rel, p.read_bytes()))
        except OSError as e:
            raise BenchmarkError(f"cannot read {p}, which travels with {what}: {e}") from None
    return tuple(carried)
