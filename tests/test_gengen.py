"""C++ generators and generator executables (farm.pipelines.cpp_generators), with the real
compiler and Halide."""

import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from farm.build import compiler
from farm.candidate import COMPILE_TIMEOUT, OK, RANDOM_PROBE, CandidateSpec, Measurement
from farm.errors import BenchmarkError
from farm.machine import targets
from farm.model import featurization
from farm.pipelines import catalog, cpp_generators
from farm.pipelines.benchmark import CPP, EXECUTABLE

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "cpp"
CPPGEN = Path(__file__).parent / "data" / "cppgen"
# Halide's own C++ apps (apps/NAME/NAME_generator.cpp): byte-identical copies are not
# committed (see tests/data/halide_apps/README.txt); FARM_HALIDE_CPP_APPS=path/to/Halide/apps
# Halide's C++ apps (apps/ of a Halide checkout), when FARM_HALIDE_CPP_APPS points at them
HALIDE_CPP_APPS = Path(os.environ["FARM_HALIDE_CPP_APPS"]) if os.environ.get(
    "FARM_HALIDE_CPP_APPS") else None


def probe(bench, host, baseline, seed=1, **fields):
    return CandidateSpec(bench, host, baseline, seed=seed, **{**RANDOM_PROBE, **fields})


def test_a_folder_names_its_one_generator_and_carries_its_sources():
    bench = catalog.resolve(str(EXAMPLES / "median3x3"))
    assert (bench.name, bench.kind, bench.units) == ("median3x3", CPP,
                                                     ("median3x3_generator.cpp",))
    assert bench.description.startswith("3x3 median of a uint8 image")
    assert catalog.resolve(bench.ref) == bench  # the ref names it again
    pair = catalog.resolve(f"{CPPGEN / 'pair'}:darken")
    assert dict(pair.files).keys() == {"pair_generator.cpp", "include/pair_helpers.h"}


def test_a_changed_header_is_a_changed_pipeline(tmp_path):
    shutil.copytree(CPPGEN / "pair", tmp_path / "pair")
    before = catalog.resolve(f"{tmp_path / 'pair'}:darken")
    header = tmp_path / "pair" / "include" / "pair_helpers.h"
    header.write_text(header.read_text() + "// edited\n")
    assert catalog.resolve(f"{tmp_path / 'pair'}:darken").sha256 != before.sha256


def test_a_file_or_folder_with_several_generators_needs_a_name():
    with pytest.raises(BenchmarkError, match=r"registers several generators \(brighten, "
                       r"darken\): name one"):
        catalog.resolve(str(CPPGEN / "pair"))
    with pytest.raises(BenchmarkError, match=r"has no generator named 'dim' \(it registers: "
                       r"brighten, darken\)"):
        catalog.resolve(f"{CPPGEN / 'pair' / 'pair_generator.cpp'}:dim")
    assert catalog.resolve(f"{CPPGEN / 'pair' / 'pair_generator.cpp'}:darken").name == "darken"


def test_a_folder_without_generators_and_a_missing_path_are_clear(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(BenchmarkError, match=r"holds no \*_generator.cpp"):
        catalog.resolve(str(tmp_path))
    with pytest.raises(BenchmarkError, match=r"does not exist"):
        catalog.resolve(str(tmp_path / "gone"))
    with pytest.raises(BenchmarkError, match=r"is not a generator"):
        catalog.resolve(str(tmp_path / "notes.txt"))


def test_a_generator_that_does_not_compile_names_the_first_error_and_the_log(tmp_path):
    (tmp_path / "bad_generator.cpp").write_text(
        '#include "Halide.h"\nusing namespace Halide;\n'
        "class Bad : public Generator<Bad> {\npublic:\n"
        '    Output<Buffer<uint8_t, 2>> output{"output"};\n'
        "    void generate() { output(x, y) = no_such_function(x); }\n"
        '    Var x{"x"}, y{"y"};\n};\nHALIDE_REGISTER_GENERATOR(Bad, bad)\n')
    with pytest.raises(BenchmarkError) as e:
        catalog.resolve(str(tmp_path))
    message = str(e.value)
    assert "\n" not in message
    assert "does not compile: " in message and "no_such_function" in message
    log = Path(message.rpartition("(full log: ")[2].rstrip(")"))
    assert log.is_file() and "no_such_function" in log.read_text()


def test_the_generator_build_is_not_charged_to_a_candidates_cpu_cap(tmp_path):
    """The compile process builds a node's generator under a candidate's RLIMIT_CPU; the
    C++ compiler it starts must not inherit that cap (a 1 s --compile-timeout would
    otherwise fail every candidate with "does not compile")."""
    code = textwrap.dedent(f"""
        import resource
        from farm.pipelines import catalog
        from farm.pipelines import cpp_generators
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (2, hard))  # what the compile process sets
        exe = cpp_generators.executable(catalog.resolve({str(EXAMPLES / "median3x3")!r}))
        assert resource.getrlimit(resource.RLIMIT_CPU)[0] == 2  # restored after the build
        print(exe)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "FARM_CACHE_DIR": str(tmp_path)}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert Path(proc.stdout.strip()).is_relative_to(tmp_path)


def test_a_file_that_only_looks_executable_is_a_clear_error(tmp_path):
    fake = tmp_path / "gen"
    fake.write_bytes(b"\x7fELF but not really a program")
    fake.chmod(0o755)
    with pytest.raises(BenchmarkError, match=r"gen cannot be run \(.*\); is it a Halide "
                       r"generator executable built for this machine\?"):
        catalog.resolve(str(fake))


def test_the_generator_is_built_once_per_cache(tmp_path, monkeypatch):
    """Once per node: each node's FARM_CACHE_DIR builds it once, later loads reuse it."""
    monkeypatch.setenv("FARM_CACHE_DIR", str(tmp_path / "node-a"))
    bench = catalog.resolve(str(EXAMPLES / "median3x3"))
    built = cpp_generators.executable(bench)
    assert built.is_relative_to(tmp_path / "node-a")
    first = built.stat().st_mtime_ns
    cpp_generators.generator_names.cache_clear()
    assert cpp_generators.executable(catalog.resolve(str(EXAMPLES / "median3x3"))) == built
    assert built.stat().st_mtime_ns == first  # not built again
    monkeypatch.setenv("FARM_CACHE_DIR", str(tmp_path / "node-b"))
    other = cpp_generators.executable(bench)
    assert other.is_relative_to(tmp_path / "node-b") and other.exists()
    logs = list(tmp_path.glob("node-*/generators/*/build.log"))
    assert len(logs) == 2


def test_parameters_are_the_generators_and_checked(host, baseline):
    pair = f"{CPPGEN / 'pair'}:brighten"
    bench = catalog.resolve(f"{pair}:tile=08,twice=True")
    assert bench.params == (("tile", "8"), ("twice", "true"))  # canonical text
    assert bench.label == "brighten:tile=8,twice=true"
    assert catalog.resolve(bench.ref) == bench
    for ref, words in [(f"{pair}:size=2", ["brighten has no parameter 'size'",
                                           "tile (default 16), twice (default false)"]),
                       (f"{pair}:tile=wide", ["tile='wide' is not a valid int"]),
                       (f"{pair}:twice=maybe", ["twice='maybe' is not a valid bool"]),
                       (f"{pair}:target=host", ["the farm sets target itself"]),
                       (f"{EXAMPLES / 'conv3x3'}:accumulator_type=int33",
                        ["is not a valid Halide type", "accumulator_type (default int16)"])]:
        with pytest.raises(BenchmarkError) as e:
            catalog.resolve(ref)
        assert "\n" not in str(e.value)
        for w in words:
            assert w in str(e.value)
    # the parameter reaches the generator: twice=true makes another pipeline
    once = compiler.autoschedule(probe(catalog.resolve(pair), host, baseline))
    twice = compiler.autoschedule(probe(bench, host, baseline))
    assert featurization.pipeline_id(twice.featurization) != \
        featurization.pipeline_id(once.featurization)


def test_the_autoscheduler_parameters_reach_a_cpp_generator(host, baseline):
    """Unlike Python's command line (FACTS.md), the seed, beam and dropout are honoured."""
    bench = catalog.resolve(str(EXAMPLES / "median3x3"))
    keys = {featurization.schedule_key(compiler.autoschedule(
        probe(bench, host, baseline, seed)).featurization) for seed in range(5)}
    assert len(keys) >= 4
    same = [compiler.autoschedule(probe(bench, host, baseline, 3)).featurization for _ in (1, 2)]
    assert same[0] == same[1]


def test_a_cpp_twin_of_a_builtin_has_its_pipeline_id(host, baseline):
    cpp = compiler.autoschedule(probe(catalog.resolve(str(EXAMPLES / "median3x3")), host,
                                      baseline))
    python = compiler.autoschedule(probe(catalog.resolve("median3x3"), host, baseline))
    assert featurization.pipeline_id(cpp.featurization) == \
        featurization.pipeline_id(python.featurization)
    # two parameter sets of the C++ conv3x3 are two pipelines
    conv = [catalog.resolve(f"{EXAMPLES / 'conv3x3'}:accumulator_type={t}")
            for t in ("int16", "int32")]
    ids = {featurization.pipeline_id(compiler.autoschedule(probe(b, host, baseline))
                                     .featurization, "".join(f"{k}={v}" for k, v in b.params))
           for b in conv}
    assert len(ids) == 2


def test_a_cpp_candidate_fills_every_column_a_python_one_does(host, baseline):
    from farm.execution.scheduler import Outcome
    from farm.store.records import Manifest
    from farm.tuning.rows import outcome_row

    rows = {}
    for ref in ("median3x3", str(EXAMPLES / "median3x3")):
        spec = probe(catalog.resolve(ref), host, baseline)
        result, binary, library = compiler.build(spec)
        assert result.ok, result.error
        assert binary and library.name == "median3x3" and "int median3x3(" in library.header
        assert result.schedule.autoschedule_s > 0 and result.codegen_s > 0
        manifest = Manifest(run_id="t", benchmark=ref, generator="median3x3",
                            benchmark_sha256=spec.benchmark.sha256, target=host.compile,
                            schedule_target=host.schedule, batch_size=4, parallelism=32,
                            start_weights_sha256=baseline.sha256, created_at="now")
        timed = Measurement(OK, (1.0, 1.1), device_id="cpu@test", device_kind="host",
                            node="test", node_id="n", run_s=0.1)
        row = outcome_row(manifest, 1, Outcome(0, spec, OK, build=result, measurement=timed))
        rows[spec.benchmark.kind] = {k for k, v in row.items() if v is not None}
    assert rows["cpp"] == rows["python"]


def test_a_cpp_probe_that_draws_a_known_schedule_is_redrawn_before_codegen(host, baseline):
    from farm.build.builder import HalideBuilder
    from farm.execution.workers import build_candidate
    from farm.search.plans import RoundPlan, SeenSchedules

    class Counting(HalideBuilder):
        builds = 0

        def build(self, spec, cpu_limit_s=None):
            self.builds += 1
            return super().build(spec, cpu_limit_s)

    spec = probe(catalog.resolve(str(EXAMPLES / "median3x3")), host, baseline)
    plan, seen, builder = RoundPlan("test", 1, spec, 4), SeenSchedules(), Counting()
    first = compiler.autoschedule(plan.spec(2))
    seen.claim(featurization.schedule_key(first.featurization), 999)
    built, binary, _ = build_candidate(builder, plan, 2, 1, seen)
    assert built.status == OK and built.attempts == 2 and binary and builder.builds == 1
    assert built.result.schedule.featurization != first.featurization


def test_a_compile_over_its_cpu_budget_is_a_compile_timeout(host, baseline):
    """The generator executable gets RLIMIT_CPU: ended by the kernel, status compile_timeout."""
    spin = catalog.resolve(f"{CPPGEN / 'spin'}:spin_s=30")
    started = time.monotonic()
    result = compiler.autoschedule_result(probe(spin, host, baseline), cpu_limit_s=1.0)
    assert result.status == COMPILE_TIMEOUT and "1 s of CPU" in result.error
    assert time.monotonic() - started < 15
    result, binary, _ = compiler.build(probe(catalog.resolve(f"{CPPGEN / 'spin'}"), host,
                                             baseline), cpu_limit_s=60.0)
    assert result.ok and binary


def test_a_python_compile_over_its_budget_ends_only_its_compile_process(host, baseline,
                                                                        tmp_path):
    from farm.build.process import CompileProcess

    slow = tmp_path / "slow.py"
    slow.write_text(
        "import time\nimport halide as hl\n"
        "@hl.generator(name='slow')\nclass Slow:\n"
        "    spin = hl.GeneratorParam(0.0)\n"
        "    input = hl.InputBuffer(hl.UInt(8), 1)\n"
        "    output = hl.OutputBuffer(hl.UInt(8), 1)\n"
        "    def generate(g):\n"
        "        end = time.process_time() + g.spin\n"
        "        while time.process_time() < end:\n"
        "            pass\n"
        "        x = hl.Var('x')\n"
        "        g.output[x] = g.input[x] + 1\n"
        "        g.input.set_estimates([(0, 1024)])\n"
        "        g.output.set_estimates([(0, 1024)])\n")
    process, others = CompileProcess(), set(_compile_tmp())  # (this process's other ones)
    try:
        started = time.monotonic()
        result = process.call("autoschedule_result",
                              probe(catalog.resolve(f"{slow}:slow:spin=30"), host, baseline),
                              cpu_limit_s=1.0)
        assert result.status == COMPILE_TIMEOUT, result.error
        assert time.monotonic() - started < 15
        assert set(_compile_tmp()) == others  # what the ended process left is gone
        result, binary, _ = process.call("build", probe(catalog.resolve(f"{slow}:slow"), host,
                                                        baseline), cpu_limit_s=60.0)
        assert result.ok and binary  # a fresh compile process took over
        assert len(set(_compile_tmp()) - others) == 1
    finally:
        process.close()
    assert set(_compile_tmp()) == others


def test_a_compile_over_its_memory_limit_is_a_memory_row_and_peaks_are_measured(
        host, baseline, tmp_path, monkeypatch):
    """The compile process is ended past its memory limit (a row with cause
    compile_error:memory, never Ray's OOM retries), and every result carries its peak."""
    from farm.build import process as compile_process
    from farm.store.samples import cause

    hog = tmp_path / "hog.py"
    hog.write_text(
        "import time\nimport halide as hl\n"
        "@hl.generator(name='hog')\nclass Hog:\n"
        "    mb = hl.GeneratorParam(0)\n"
        "    input = hl.InputBuffer(hl.UInt(8), 1)\n"
        "    output = hl.OutputBuffer(hl.UInt(8), 1)\n"
        "    def generate(g):\n"
        "        held = b'x' * (int(g.mb) << 20)  # resident: every page written\n"
        "        time.sleep(2 if held else 0)\n"
        "        x = hl.Var('x')\n"
        "        g.output[x] = g.input[x] + 1\n"
        "        g.input.set_estimates([(0, 1024)])\n"
        "        g.output.set_estimates([(0, 1024)])\n")
    limit = 1 << 30
    monkeypatch.setattr(compile_process, "compile_memory_limit", lambda: limit)
    process = compile_process.CompileProcess()
    try:
        result, binary, _ = process.call("build", probe(catalog.resolve(f"{hog}:hog"), host,
                                                        baseline), cpu_limit_s=60.0)
        assert result.ok and binary and 0 < result.memory_mb < limit / 2**20
        result, binary, _ = process.call(
            "build", probe(catalog.resolve(f"{hog}:hog:mb=1536"), host, baseline),
            cpu_limit_s=60.0)
        assert cause(result.status, result.error) == "compile_error:memory", result.error
        assert not binary and result.memory_mb > limit / 2**20
        result, binary, _ = process.call("build", probe(catalog.resolve(f"{hog}:hog"), host,
                                                        baseline), cpu_limit_s=60.0)
        assert result.ok and binary  # a fresh compile process took over
    finally:
        process.close()


def _compile_tmp():
    """The temporary folders of this process's compile processes."""
    import tempfile

    return list(Path(tempfile.gettempdir()).glob(f"farm-compile-{os.getpid()}-*"))


def test_a_prebuilt_generator_executable_is_a_benchmark(tmp_path, host, baseline):
    built = cpp_generators.executable(catalog.resolve(str(EXAMPLES / "median3x3")))
    exe = tmp_path / "median3x3.generator"
    shutil.copy(built, exe)
    bench = catalog.resolve(str(exe))
    assert (bench.name, bench.kind) == ("median3x3", EXECUTABLE)
    assert catalog.resolve(f"{exe}:median3x3") == bench
    result, binary, _ = compiler.build(probe(bench, host, baseline))
    assert result.ok and binary, result.error


def test_a_cpp_generator_is_not_offloaded_to_hvx(baseline):
    bench = catalog.resolve(str(EXAMPLES / "median3x3"))
    spec = CandidateSpec(bench, targets.resolve("arm-64-android-hvx"), baseline, **RANDOM_PROBE)
    with pytest.raises(BenchmarkError, match=r"is a C\+\+ generator: the farm offloads HVX"):
        compiler.check_pipeline(spec)


def test_check_names_the_parameters_when_the_generator_refuses_a_value(host, baseline):
    bench = catalog.resolve(f"{CPPGEN / 'spin'}:mode=medium")  # an enum: Halide checks it
    with pytest.raises(BenchmarkError, match=r"does not autoschedule: Enumeration value not "
                       r"found: medium; its parameters: spin_s \(default 0\), mode \(default "):
        compiler.check_pipeline(probe(bench, host, baseline))


def test_a_bare_name_that_is_also_a_path_is_ambiguous(tmp_path, monkeypatch):
    (tmp_path / "median3x3").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(BenchmarkError, match=r"is a built-in benchmark and a path here: "
                       r"write \./median3x3"):
        catalog.resolve("median3x3")


@pytest.mark.parametrize("app", ["bilateral_grid", "interpolate"])
def test_halides_own_cpp_apps_build_unchanged(app, host, baseline):
    if HALIDE_CPP_APPS is None:
        pytest.skip(f"needs a copy of Halide's apps/{app}: set "
                    "FARM_HALIDE_CPP_APPS=path/to/Halide/apps")
    folder = HALIDE_CPP_APPS / app
    if not (folder / f"{app}_generator.cpp").is_file():
        pytest.skip(f"no copy of Halide's apps/{app} in {HALIDE_CPP_APPS} "
                    "(set FARM_HALIDE_CPP_APPS=path/to/Halide/apps)")
    bench = catalog.resolve(str(folder))
    assert bench.name == app
    compiler.check_pipeline(probe(bench, host, baseline))
    result, binary, _ = compiler.build(probe(bench, host, baseline))
    assert result.ok and binary, result.error


def test_the_generator_host_has_no_stray_processes():
    """A sanity check of the test host: no generator left running by the tests above."""
    out = subprocess.run(["pgrep", "-f", "generators/.*/generator"], capture_output=True,
                         text=True).stdout.split()
    assert not [p for p in out if int(p) != os.getpid()]


def test_a_python_generator_that_fails_to_build_says_so_not_that_it_does_not_autoschedule(
        tmp_path, host, baseline):
    gen = tmp_path / "broken.py"
    gen.write_text(
        "import halide as hl\n"
        "@hl.generator(name='broken')\nclass Broken:\n"
        "    output = hl.OutputBuffer(hl.UInt(8), 1)\n"
        "    def generate(g):\n"
        "        raise RuntimeError('the pipeline is wrong')\n")
    with pytest.raises(BenchmarkError, match=r"broken does not build: .*the pipeline is wrong"):
        compiler.check_pipeline(probe(catalog.resolve(f"{gen}:broken"), host, baseline))


def test_a_cpp_candidate_runs_its_generator_once_for_the_duplicate_check_and_the_build(
        host, baseline, monkeypatch):
    """A generator executable cannot be handed a schedule: the duplicate check's run
    generates the code too, and the build of that candidate uses it (a big pipeline's
    autoschedule is paid once, not twice)."""
    runs = []
    real = cpp_generators.run
    monkeypatch.setattr(cpp_generators, "run", lambda *a, **k: runs.append(a[4]) or real(*a, **k))
    bench = catalog.resolve(str(EXAMPLES / "median3x3"))
    first, second = probe(bench, host, baseline, seed=11), probe(bench, host, baseline, seed=12)
    chosen = compiler.autoschedule(first)
    result, binary, library = compiler.build(first)
    assert result.ok and binary and library is not None and len(runs) == 1
    assert result.schedule == chosen and result.codegen_s > 0
    result, binary, _ = compiler.build(second)  # not checked first: generated by its build
    assert result.ok and binary and len(runs) == 2
