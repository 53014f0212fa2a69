import hashlib
import os
import pickle
import re
import shutil
import sys
import textwrap
import types
from pathlib import Path

import pytest

from farm.errors import BenchmarkError
from farm.pipelines import catalog, python_generators
from farm.pipelines.benchmark import format_params
from farm.pipelines.params import split_params

PYGEN = Path(__file__).parent / "data" / "pygen"
USER_GENERATOR = (PYGEN / "brighten_generator.py").read_text()  # adds 10 to every pixel


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "mygen.py"
    path.write_text(USER_GENERATOR)
    return path


def test_user_generator_resolves(user_file):
    bench = catalog.resolve(f"{user_file}:brighten")
    assert bench.name == "brighten" and not bench.builtin
    assert bench.description == "Add 10 to every pixel."
    assert python_generators.generator_class(bench)._halide_registered_name == "brighten"


def test_same_file_loads_twice_in_one_process(user_file):
    # Halide refuses a generator name twice; the catalog must not trip over it.
    first = catalog.resolve(f"{user_file}:brighten")
    user_file.write_text(USER_GENERATOR + "\n# edited\n")
    second = catalog.resolve(f"{user_file}:brighten")
    assert first.sha256 != second.sha256
    assert python_generators.generator_class(second) is not python_generators.generator_class(first)


def test_an_unknown_builtin_gets_a_did_you_mean_and_where_the_known_ones_are():
    with pytest.raises(BenchmarkError, match=r"did you mean median3x3\? `farm benchmarks`"):
        catalog.resolve("median3x4")
    with pytest.raises(BenchmarkError, match=r"unknown benchmark 'zzz'; `farm benchmarks`"):
        catalog.resolve("zzz")


def test_missing_generator_name_lists_what_the_file_has(user_file):
    with pytest.raises(BenchmarkError, match=r"no @hl\.generator named 'blur'.*brighten"):
        catalog.resolve(f"{user_file}:blur")


def test_syntax_error_names_file_and_line(tmp_path):
    path = tmp_path / "broken.py"
    path.write_text("import halide as hl\n\ndef oops(:\n")
    with pytest.raises(BenchmarkError, match=r"broken.py has a syntax error at line 3"):
        catalog.resolve(f"{path}:x")


def test_missing_file(tmp_path):
    with pytest.raises(BenchmarkError, match="does not exist"):
        catalog.resolve(f"{tmp_path}/nope.py:x")


def test_a_generator_travels_as_source(user_file):
    """Nodes load a user's generator from the text the driver sent, not from its path."""
    bench = catalog.resolve(f"{user_file}:brighten")
    user_file.unlink()
    classes = python_generators.generator_classes(bench.source + "\n", "/elsewhere/mygen.py")
    assert "brighten" in classes


# --- generator files as Halide loads them when they run as a script (issue 14) ---------------

# Halide's own python_bindings/apps generators: a folder of byte-identical copies (see
# tests/data/halide_apps/README.txt), or FARM_HALIDE_APPS=path/to/Halide/python_bindings/apps
HALIDE_APPS = Path(os.environ.get("FARM_HALIDE_APPS") or Path(__file__).parent / "data" /
                   "halide_apps")


def _reload(bench):
    """generator_class(bench) as a fresh process would load it."""
    python_generators.generator_classes.cache_clear()
    return python_generators.generator_class(bench)


def test_unnamed_generator_has_its_class_name(tmp_path):
    path = tmp_path / "sharpen.py"
    path.write_text(USER_GENERATOR.replace('@hl.generator(name="brighten")\nclass Brighten',
                                           "@hl.generator()\nclass Sharpen"))
    bench = catalog.resolve(f"{path}:Sharpen")
    assert bench.name == "Sharpen"
    assert python_generators.generator_class(bench)._halide_registered_name == "Sharpen"
    with pytest.raises(BenchmarkError, match=r"named 'sharpen' \(it defines: Sharpen\)"):
        catalog.resolve(f"{path}:sharpen")


def test_the_main_block_does_not_run():
    # box_generator.py raises SystemExit under `if __name__ == "__main__":`
    assert catalog.resolve(f"{PYGEN}/box_generator.py:box").name == "box"


def test_alias_is_chosen_by_name_and_loads_twice():
    ref = f"{PYGEN}/box_generator.py:box_Adams2019"
    first = catalog.resolve(ref)
    assert first.name == "box_Adams2019" and first.description.startswith("A box filter")
    python_generators.generator_classes.cache_clear()
    second = catalog.resolve(ref)  # Halide would say the name "is already in use"
    assert second == first
    cls = _reload(second)
    assert cls._halide_registered_name == "box_Adams2019"
    assert cls.__mro__[1]._halide_registered_name == "box"


def test_alias_builds_with_its_generator_params(spec_for_bench):
    from farm.build import compiler

    alias = catalog.resolve(f"{PYGEN}/box_generator.py:box_Adams2019")
    plain = catalog.resolve(f"{PYGEN}/box_generator.py:box")
    searched = spec_for_bench(alias)
    assert compiler.Instance(searched).generator.radius == 2  # the alias's radius
    assert compiler.Instance(spec_for_bench(plain)).generator.radius == 1
    manual = compiler.Instance(compiler.manual_spec(searched)).generator
    assert manual.radius == 2 and not manual.using_autoscheduler()  # its own schedule
    assert compiler.autoschedule(searched).source


def test_alias_for_another_autoscheduler_is_refused():
    with pytest.raises(BenchmarkError, match=r"box_Mullapudi2016 is an alias for the "
                       r"Mullapudi2016 autoscheduler.*use .*box_generator.py:box "):
        catalog.resolve(f"{PYGEN}/box_generator.py:box_Mullapudi2016")


def test_same_file_loads_again_and_again_then_edited(user_file):
    first = catalog.resolve(f"{user_file}:brighten")
    classes = {python_generators.generator_class(first)}
    for _ in range(3):
        classes.add(_reload(first))
        assert catalog.resolve(f"{user_file}:brighten") == first
    assert len(classes) == 4  # each load executed the file anew
    user_file.write_text(USER_GENERATOR.replace("10)", "20)"))
    edited = catalog.resolve(f"{user_file}:brighten")
    assert edited.sha256 != first.sha256
    assert python_generators.generator_class(edited) is not python_generators.generator_class(first)


def test_single_file_sha256_is_its_source_hash(user_file):
    bench = catalog.resolve(f"{user_file}:brighten")
    assert bench.files == ()
    assert bench.sha256 == hashlib.sha256(USER_GENERATOR.encode()).hexdigest()


def test_sibling_import_travels_with_the_benchmark(tmp_path):
    folder = tmp_path / "gen"
    shutil.copytree(PYGEN / "siblings", folder)
    path_before = list(sys.path)
    bench = catalog.resolve(f"{folder}/pyramid_generator.py:pyramid")
    assert sys.path == path_before and "pyramid_helpers" not in sys.modules
    assert dict(bench.files) == {"pyramid_helpers.py": (folder / "pyramid_helpers.py")
                                 .read_bytes(), "taps.txt": b"1 4 6 4 1\n"}
    # another node: no such folder, and a Benchmark that came over the wire
    shutil.rmtree(folder)
    for copy in python_generators._materialized.values():
        shutil.rmtree(copy)
    travelled = pickle.loads(pickle.dumps(bench))
    cls = _reload(travelled)
    assert cls._halide_registered_name == "pyramid"
    module = sys.modules[cls.__mro__[1].__module__]
    assert Path(module.__file__).parent != folder and Path(module.__file__).exists()
    assert module.TAPS == [1, 4, 6, 4, 1]  # read from the carried taps.txt


def test_a_changed_sibling_is_a_changed_pipeline(tmp_path):
    folder = tmp_path / "gen"
    shutil.copytree(PYGEN / "siblings", folder)
    first = catalog.resolve(f"{folder}/pyramid_generator.py:pyramid")
    (folder / "taps.txt").write_text("1 2 1\n")
    second = catalog.resolve(f"{folder}/pyramid_generator.py:pyramid")
    assert second.source == first.source and second.sha256 != first.sha256
    module = python_generators.generator_class(second).__mro__[1].__module__
    assert sys.modules[module].TAPS == [1, 2, 1]


SIBLING_USER = textwrap.dedent('''
    import halide as hl
    import helpers

    @hl.generator()
    class offset:
        value = helpers.VALUE
        input = hl.InputBuffer(hl.UInt(8), 2)
        output = hl.OutputBuffer(hl.UInt(8), 2)

        def generate(g):
            x, y = hl.Var("x"), hl.Var("y")
            g.output[x, y] = g.input[x, y] + g.value
''')


def test_same_named_siblings_of_two_benchmarks_do_not_clash(tmp_path, monkeypatch):
    unrelated = types.ModuleType("helpers")  # someone else's `helpers`, imported before
    monkeypatch.setitem(sys.modules, "helpers", unrelated)
    benches = []
    for value in (1, 2):
        folder = tmp_path / f"v{value}"
        folder.mkdir()
        (folder / "gen.py").write_text(SIBLING_USER)
        (folder / "helpers.py").write_text(f"VALUE = {value}\n")
        benches.append(catalog.resolve(f"{folder}/gen.py:offset"))
    assert [python_generators.generator_class(b).value for b in benches] == [1, 2]
    assert [_reload(b).value for b in reversed(benches)] == [2, 1]
    assert sys.modules["helpers"] is unrelated


def test_what_travels_from_a_folder(tmp_path):
    (tmp_path / "gen.py").write_text(USER_GENERATOR)
    for name in ("helper.py", "lut.txt", "pkg/__init__.py", "pkg/sub/deep.py",
                 "data/image.png", "run/generator.py", ".git/config", "__pycache__/x.pyc",
                 "brighten.schedule.h", "baseline.weights", "notes.pyc"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    bench = catalog.resolve(f"{tmp_path}/gen.py:brighten")
    assert [rel for rel, _ in bench.files] == ["helper.py", "lut.txt", "pkg/__init__.py",
                                              "pkg/sub/deep.py"]


def test_a_folder_over_50_mb_is_refused(tmp_path):
    (tmp_path / "gen.py").write_text(USER_GENERATOR)
    with open(tmp_path / "video.raw", "wb") as f:
        f.truncate(51 * 2**20)  # sparse: no 51 MB written
    with pytest.raises(BenchmarkError, match=rf"^{tmp_path} holds 51 MB that would travel "
                       r"with gen.py .* up to 50 MB\): move gen.py and the files it needs "
                       r"into a folder of their own$"):
        catalog.resolve(f"{tmp_path}/gen.py:brighten")


def test_a_syntax_error_in_a_sibling_names_the_sibling(tmp_path):
    (tmp_path / "gen.py").write_text(SIBLING_USER)
    (tmp_path / "helpers.py").write_text("VALUE = (\n")
    with pytest.raises(BenchmarkError, match=r"gen.py failed to load: helpers.py has a "
                       r"syntax error at line 1"):
        catalog.resolve(f"{tmp_path}/gen.py:offset")


def test_unconditioned_schedule_gets_halides_message_as_one_line(spec_for_bench):
    from farm.build import compiler

    bench = catalog.resolve(f"{PYGEN}/scheduled_generator.py:always_scheduled")
    with pytest.raises(BenchmarkError) as e:
        compiler.check_pipeline(spec_for_bench(bench))
    assert "\n" not in str(e.value)
    assert re.match(r"generator .*scheduled_generator.py:always_scheduled does not "
                    r"autoschedule: Error: The Func \"output_buf(\$\d+)?\" has scheduling "
                    r"directive\(s\) applied to it; you must remove these", str(e.value))


HALIDE_APP_NAMES = {
    "bilateral_grid_generator.py": ["bilateral_grid", "bilateral_grid_Adams2019",
                                    "bilateral_grid_Li2018", "bilateral_grid_Mullapudi2016"],
    "interpolate_generator.py": ["interpolate", "interpolate_Mullapudi2016"],
    "blur_generator.py": ["blur"],
}


def _halide_app(file):
    path = HALIDE_APPS / file
    if not path.is_file():
        pytest.skip(f"no copy of Halide's python_bindings/apps/{file} in {HALIDE_APPS} "
                    "(set FARM_HALIDE_APPS)")
    return path


@pytest.mark.parametrize("file", sorted(HALIDE_APP_NAMES))
def test_halide_apps_resolve_by_halides_names(file):
    path = _halide_app(file)
    names = HALIDE_APP_NAMES[file]
    with pytest.raises(BenchmarkError, match=rf"it defines: {', '.join(names)}\)"):
        catalog.resolve(f"{path}:nope")
    for _ in range(2):  # and again: Halide would refuse the names the second time
        python_generators.generator_classes.cache_clear()
        assert catalog.resolve(f"{path}:{names[0]}").name == names[0]


@pytest.mark.parametrize("ref", ["bilateral_grid_generator.py:bilateral_grid",
                                 "bilateral_grid_generator.py:bilateral_grid_Adams2019",
                                 "interpolate_generator.py:interpolate"])
def test_halide_apps_autoschedule(ref, spec_for_bench):
    from farm.build import compiler

    file, _, name = ref.partition(":")
    bench = catalog.resolve(f"{_halide_app(file)}:{name}")
    assert compiler.autoschedule(spec_for_bench(bench)).source
    compiler.check_pipeline(compiler.manual_spec(spec_for_bench(bench)))


def test_halide_blur_gets_halides_message(spec_for_bench):
    from farm.build import compiler

    bench = catalog.resolve(f"{_halide_app('blur_generator.py')}:blur")
    with pytest.raises(BenchmarkError, match=r"^generator .*blur_generator.py:blur does not "
                       r"autoschedule: Error: The Func \"blur_y(\$\d+)?\" has scheduling "
                       r"directive\(s\) applied to it"):
        compiler.check_pipeline(spec_for_bench(bench))


@pytest.fixture
def spec_for_bench(baseline, host):
    """A beam-1 random probe of a Benchmark on the host (as tests/samples.py draws them)."""
    from farm.candidate import RANDOM_PROBE, CandidateSpec

    return lambda bench: CandidateSpec(bench, host, baseline, seed=1, **RANDOM_PROBE)


def test_generator_parameters_are_written_after_the_benchmark():
    box = f"{PYGEN}/box_generator.py:box"
    two = catalog.resolve(f"{box}:radius=02")
    assert two.params == (("radius", "2"),)  # canonical: radius=02 and radius=2 are one
    assert two.label == "box:radius=2"
    assert two.ref == f"{PYGEN.resolve()}/box_generator.py:box:radius=2"
    assert catalog.resolve(two.ref) == two  # the ref names it again
    assert two.sha256 == catalog.resolve(box).sha256  # the same source; the label differs
    assert split_params("median3x3") == ("median3x3", ())
    assert split_params("a.py:g:x=1,y=b") == ("a.py:g", (("x", "1"), ("y", "b")))


@pytest.mark.parametrize("ref, words", [
    ("box:size=2", ["box has no parameter 'size'", "radius (default 1)"]),
    ("box:radius=wide", ["radius='wide' is not a valid int", "radius (default 1)"]),
    ("box:radius=1,radius=2", ["sets a parameter twice"]),
    ("box:radius", None),  # no `=`: not parameters, so a generator name that is not there
])
def test_a_bad_generator_parameter_is_one_line_naming_the_parameters(ref, words):
    with pytest.raises(BenchmarkError) as e:
        catalog.resolve(f"{PYGEN}/box_generator.py:{ref}")
    assert "\n" not in str(e.value)
    for w in words or []:
        assert w in str(e.value)
    # a built-in's `manual` parameter is the farm's, not one to set
    with pytest.raises(BenchmarkError, match="median3x3 has no parameter 'manual'"):
        catalog.resolve("median3x3:manual=1")


def test_two_parameter_sets_build_two_pipelines():
    """The parameter reaches the generator (its schedules differ), and the two sets have two
    pipeline ids although radius changes only a loop's extent, not the pipeline features."""
    from farm.build import compiler
    from farm.candidate import RANDOM_PROBE, CandidateSpec
    from farm.machine import targets
    from farm.model import featurization, weights

    feats, ids = {}, {}
    for radius in (1, 3):
        bench = catalog.resolve(f"{PYGEN}/box_generator.py:box:radius={radius}")
        spec = CandidateSpec(bench, targets.resolve(None), weights.baseline(), seed=1,
                             **RANDOM_PROBE)
        feats[radius] = compiler.autoschedule(spec).featurization
        ids[radius] = featurization.pipeline_id(feats[radius],
                                                format_params(bench.params))
    assert feats[1] != feats[3]
    assert featurization.pipeline_id(feats[1]) == featurization.pipeline_id(feats[3])
    assert ids[1] != ids[3]
