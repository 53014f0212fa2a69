"""A generator's parameters: how a BENCH writes them (`BENCH:name=value,...`), checked
and written canonically (radius=02 and radius=2 are one pipeline), their defaults, and
whether two names are one pipeline.
"""

from __future__ import annotations

from farm.errors import BenchmarkError
from farm.pipelines import cpp_generators, python_generators
from farm.pipelines.benchmark import CPP, EXECUTABLE, Benchmark, Params


def split_params(ref: str) -> tuple[str, Params]:
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


def canonical(values: dict[str, object]) -> dict[str, str]:
    """Parameter values as text, so that radius=02 and radius=2 are one pipeline."""
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in values.items()}


def same_pipeline(bench: Benchmark, label: str) -> bool:
    """Whether the pipeline a run names `label` is `bench`, however either was written:
    `random` and `random:seed=0` are one pipeline (the generator's defaults fill in what a
    name leaves out). By name, not source: an edited generator of the same name still
    counts as seen."""
    try:
        base, params = split_params(label)
    except BenchmarkError:  # not a name this farm writes: not this pipeline
        return False
    if base != bench.name:
        return False
    unset = defaults(bench)
    return {**unset, **dict(params)} == {**unset, **dict(bench.params)}


def defaults(bench: Benchmark) -> dict[str, str]:
    """A generator's parameters at their defaults, as the farm writes values."""
    if bench.kind in (CPP, EXECUTABLE):  # (its executable is built, and cached, by now)
        out = {}
        for p in cpp_generators.generator_params(cpp_generators.executable(bench), bench.name):
            try:
                out[p.name] = p.canonical(p.default)
            except ValueError:  # a default the stub spells otherwise: as it is
                out[p.name] = p.default
        return out
    return canonical(python_generators.generator_param_defaults(
        python_generators.generator_class(bench), bench.builtin))


def cpp_params(bench: Benchmark, params: Params) -> Params:
    """C++ generator parameters, checked against the generator's GeneratorParams and
    written canonically; the generator checks values of other types when it runs."""
    known = {p.name: p for p in cpp_generators.generator_params(
        cpp_generators.executable(bench), bench.name)}
    listed = param_list(bench)
    out = {}
    for name, value in params:
        if name == "target" or name.startswith("autoscheduler"):
            raise BenchmarkError(f"{bench.label}: the farm sets {name} itself; its "
                                 f"parameters: {listed}")
        if name not in known:
            raise BenchmarkError(f"{bench.label} has no parameter {name!r}; its parameters: "
                                 f"{listed}")
        try:
            out[name] = known[name].canonical(value)
        except ValueError:
            raise BenchmarkError(f"{bench.label}: {name}={value!r} is not a valid "
                                 f"{known[name].kind}; its parameters: {listed}") from None
    return tuple(sorted(out.items()))


def param_names(bench: Benchmark) -> tuple[str, ...]:
    """The names of a benchmark's generator parameters."""
    return tuple(defaults(bench))


def param_list(bench: Benchmark) -> str:
    """`radius (default 1), ...`: a benchmark's parameters, for messages."""
    if bench.kind in (CPP, EXECUTABLE):
        found = cpp_generators.generator_params(cpp_generators.executable(bench), bench.name)
        return ", ".join(f"{p.name} (default {p.default})" for p in found) or "none"
    known = python_generators.generator_param_defaults(
        python_generators.generator_class(bench), bench.builtin)
    return ", ".join(f"{k} (default {v!r})" for k, v in known.items()) or "none"
