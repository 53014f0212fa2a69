import textwrap

import pytest

from farm import catalog
from farm.errors import BenchmarkError

USER_GENERATOR = textwrap.dedent('''
    import halide as hl

    @hl.generator(name="brighten")
    class Brighten:
        """Add 10 to every pixel."""
        input = hl.InputBuffer(hl.UInt(8), 2)
        output = hl.OutputBuffer(hl.UInt(8), 2)

        def generate(g):
            x, y = hl.Var("x"), hl.Var("y")
            g.output[x, y] = hl.saturating_add(g.input[x, y], hl.cast(hl.UInt(8), 10))
            g.input.set_estimates([(0, 1536), (0, 2560)])
            g.output.set_estimates([(0, 1536), (0, 2560)])
''')


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "mygen.py"
    path.write_text(USER_GENERATOR)
    return path


def test_user_generator_resolves(user_file):
    bench = catalog.resolve(f"{user_file}:brighten")
    assert bench.name == "brighten" and not bench.builtin
    assert bench.description == "Add 10 to every pixel."
    assert catalog.generator_class(bench)._halide_registered_name == "brighten"


def test_same_file_loads_twice_in_one_process(user_file):
    # Halide refuses a generator name twice; the catalog must not trip over it.
    first = catalog.resolve(f"{user_file}:brighten")
    user_file.write_text(USER_GENERATOR + "\n# edited\n")
    second = catalog.resolve(f"{user_file}:brighten")
    assert first.sha256 != second.sha256
    assert catalog.generator_class(second) is not catalog.generator_class(first)


def test_unknown_builtin_lists_the_known_ones():
    with pytest.raises(BenchmarkError, match=r"median3x3.*sobel"):
        catalog.resolve("median5x5")


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
    classes = catalog.generator_classes(bench.source + "\n", "/elsewhere/mygen.py")
    assert "brighten" in classes
