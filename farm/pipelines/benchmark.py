"""A benchmark: a generator the farm can build, as a value that travels to any Ray node.

Three kinds, by how Halide runs the generator:
- python: a Python generator file (`@hl.generator`), built in-process
  (farm.pipelines.python_generators);
- cpp: C++ generator sources (a folder of `*_generator.cpp`, or one file), built into a
  generator executable once per node (farm.pipelines.cpp_generators);
- executable: a prebuilt generator executable (farm.pipelines.cpp_generators).

A Benchmark carries what building it needs: `source` (a Python file's text; empty for
the other kinds) and `files`, (path relative to its folder, bytes): for Python the rest
of its folder, for C++ every source and header of its folder, for an executable the
executable itself. farm.pipelines.catalog decides what travels; `sha256` covers all of it, so a
changed file is a changed pipeline.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from farm import atomic
from farm.errors import BenchmarkError

PYTHON, CPP, EXECUTABLE = "python", "cpp", "executable"
# What a BENCH argument may be, for messages and --help
FORMS = ("a built-in name (`farm benchmarks`), path/to/file.py:generator_name, a C++ "
         "generator folder path/to/dir (its *_generator.cpp), path/to/file.cpp[:name] or a "
         "generator executable[:name]")

Files = tuple[tuple[str, bytes], ...]
Params = tuple[tuple[str, str], ...]


def parse_bool(value: str) -> bool:
    """A generator parameter's boolean as written on a command line: true/false/1/0 (any
    case); ValueError for anything else (Halide's own parser takes "false" for True)."""
    lowered = str(value).strip().lower()
    if lowered not in ("true", "false", "1", "0"):
        raise ValueError(value)
    return lowered in ("true", "1")


@dataclass(frozen=True)
class Benchmark:
    name: str  # the generator's registered name
    path: str  # the file or folder it came from, for messages and its ref
    source: str  # a Python generator file's text ("" for the other kinds)
    builtin: bool
    description: str = ""
    files: Files = field(default=(), repr=False)  # see the module docstring
    # generator parameters set on the command line (BENCH:name=value,...), sorted by name
    params: Params = ()
    kind: str = PYTHON
    # a C++ benchmark's files compiled into its generator executable (the others are
    # headers and the like); an executable's: its one file
    units: tuple[str, ...] = ()

    @functools.cached_property  # over up to 50 MB of files, asked for every candidate
    def sha256(self) -> str:
        """Of the generator's source (and carried files): its parameters are in `label`."""
        if not self.files and self.kind == PYTHON:
            return hashlib.sha256(self.source.encode()).hexdigest()  # as it always was
        h = hashlib.sha256(b"farm benchmark folder 1\0")
        parts = [self.source.encode(), *(x for rel, data in sorted(self.files)
                                          for x in (rel.encode(), data))]
        if self.kind != PYTHON:  # a Python benchmark's digest stays what it was
            parts = [self.kind.encode(), *(u.encode() for u in self.units), *parts]
        for part in parts:
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
        return h.hexdigest()

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


def write_files(folder: Path, files: Files, origin: str) -> None:
    """Write carried `files` into `folder` (`origin`, the benchmark's path, for messages),
    each as a new file renamed into place (farm.atomic): a symlink planted in a folder
    written before (a run's generators/NAME/) is replaced, and a subfolder that is a link
    refused, never written through."""
    for rel, data in files:
        where = PurePosixPath(rel)
        if where.is_absolute() or ".." in where.parts or not where.parts:
            raise BenchmarkError(f"{origin} carries a file outside its folder: {rel!r}")
        target = folder.joinpath(*where.parts)
        atomic.real_dir(target.parent, folder)
        atomic.replace_bytes(target, data)


def format_params(params: Params) -> str:
    return ",".join(f"{k}={v}" for k, v in params)
