"""No import cycle anywhere in farm/, and the command line on top of the library.

Every import statement counts, wherever it is: at the top, inside a function (the
commands import the library lazily), under `if TYPE_CHECKING:`. A cycle that only
closes at call time is still a cycle: it breaks as soon as someone moves an import up.
"""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# the installed package's folders (pyproject's [tool.setuptools.package-dir]):
# benchmarks/ at the top of the repo installs as farm.benchmarks
PACKAGES = {"farm": REPO / "farm", "farm.benchmarks": REPO / "benchmarks"}
# scripts that start the command line; nothing imports them
ENTRY_POINTS = {"farm.__main__", "farm.ray_driver"}


def find_modules(packages: dict[str, Path]) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under each package's folder."""
    modules = {}
    for package, root in packages.items():
        for path in sorted(root.rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join((package, *parts))] = path
    return modules


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def imported_names(module: str, path: Path, tree: ast.AST) -> set[str]:
    """Every dotted name an import statement in `tree` may load: `import a.b` gives a.b;
    `from a import b` gives a and a.b (b may be a submodule); relative imports resolved."""
    package = module if _is_package(path) else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """Module -> the modules of `modules` it imports.

    A name resolves to the longest module it names (`farm.x.func` -> farm.x). Importing a
    module also runs its packages' __init__ (farm.devices for farm.execution.session): an edge
    too, unless the importer is inside that package (Python has started it already)."""
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for name in imported_names(module, path, tree):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            while name:
                inside = module == name or module.startswith(name + ".")
                if name in modules and not inside:
                    graph[module].add(name)
                name = name.rpartition(".")[0]
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle [a, b, ..., a] per strongly connected component that has one (self-imports
    are harmless and ignored), each the shortest through its component's first module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):  # Tarjan's algorithm, iteratively
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return [_shortest_cycle(graph, set(c), c[0]) for c in sorted(components)]


def _shortest_cycle(graph: dict[str, set[str]], component: set[str], start: str) -> list[str]:
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & component):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"{start} is in a strongly connected component but on no cycle")


def _importers(graph: dict[str, set[str]], wanted) -> dict[str, set[str]]:
    """Module -> the modules matching `wanted` it imports, for the modules that import any."""
    found = {m: {t for t in targets if wanted(t)} for m, targets in graph.items()}
    return {m: t for m, t in found.items() if t}


@pytest.fixture(scope="module")
def graph():
    return import_graph(find_modules(PACKAGES))


def test_the_graph_sees_the_farm(graph):
    assert len(graph) > 40
    assert "farm.commands.run" in graph["farm.cli"]  # a top-level import
    assert "farm.api" in graph["farm.commands.run"]  # inside main()
    assert "farm.workflows.run" in graph["farm.api"]  # inside a function
    assert "farm.devices" in graph["farm.api"]  # the package of devices.session
    assert "farm.benchmark_kit" in graph["farm.benchmarks.median3x3"]


def test_no_import_cycle_in_farm(graph):
    cycles = find_cycles(graph)
    assert not cycles, "import cycles in farm/:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_only_the_command_line_imports_the_commands(graph):
    def is_commands(m):
        return m == "farm.commands" or m.startswith("farm.commands.")

    wrong = {m: t for m, t in _importers(graph, is_commands).items()
             if m != "farm.cli" and not is_commands(m)}
    assert not wrong, f"the library imports the command line's modules: {wrong}"


def test_nothing_imports_the_command_line_but_its_entry_points(graph):
    wrong = {m: t for m, t in _importers(graph, lambda t: t == "farm.cli").items()
             if m not in ENTRY_POINTS}
    assert not wrong, f"farm.cli is imported by {wrong}"
    assert not _importers(graph, lambda t: t in ENTRY_POINTS)


def test_no_farm_module_depends_on_the_doubles(graph):
    """farm.testing is passed in by tests and benchmarks, never imported by the farm."""
    wrong = {m: t for m, t in _importers(graph, lambda t: t == "farm.testing").items()}
    assert not wrong, f"farm.testing is imported by {wrong}"


# The layers, lowest first (docs/ARCHITECTURE.md): a module imports only modules of its own
# layer or lower ones. Within a layer any import goes, as long as it makes no cycle.
LAYERS = (
    ("farm", "farm.errors", "farm.versions", "farm.deprecation", "farm.paths", "farm.atomic",
     "farm.faults", "farm.stats", "farm.benchmark_kit"),
    ("farm.machine", "farm.benchmarks"),
    ("farm.pipelines", "farm.model"),
    ("farm.store",),
    ("farm.candidate",),
    ("farm.devices",),
    ("farm.build", "farm.search"),
    ("farm.execution",),
    ("farm.report",),
    ("farm.tuning", "farm.workflows"),
    ("farm.api", "farm.testing"),
    ("farm.commands",),
    ("farm.cli",),
    ("farm.__main__", "farm.ray_driver"),
)


def layer_of(module: str) -> int:
    """The layer of the longest prefix of `module` that LAYERS names."""
    best, found = -1, None
    for n, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), n
    if found is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS")
    return found


def test_every_module_imports_only_its_layer_and_lower_ones(graph):
    upward = {m: sorted(t for t in targets if layer_of(t) > layer_of(m))
              for m, targets in graph.items()}
    upward = {m: t for m, t in upward.items() if t}
    assert not upward, "imports of a higher layer:\n" + "\n".join(
        f"{m} -> {', '.join(t)}" for m, t in sorted(upward.items()))


def test_the_top_level_keeps_at_most_a_dozen_modules():
    top = [p.stem for p in (REPO / "farm").glob("*.py") if p.stem not in ("__init__", "__main__")]
    assert len(top) <= 12, sorted(top)


def test_every_package_says_what_it_holds_and_may_import():
    for init in (REPO / "farm").glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert doc, f"{init} has no docstring"
        if init.parent.name != "commands":
            assert "May import" in doc or "Imports nothing" in doc, init


def test_the_installed_package_lists_every_subpackage():
    """pip install . (what CI runs) installs only the packages pyproject.toml names."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(("farm", *p.parent.relative_to(REPO / "farm").parts))
             for p in (REPO / "farm").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject.toml's packages: {sorted(found - listed)}"


# --- the checker itself, on toy inputs ---------------------------------------------------

def test_find_cycles_finds_a_cycle_and_names_it():
    toy = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e", "a"}}
    assert find_cycles(toy) == [["a", "b", "c", "a"]]


def test_find_cycles_gives_the_shortest_cycle_of_each_component():
    toy = {"a": {"b", "d"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "x": {"y"}, "y": {"x"}}
    assert find_cycles(toy) == [["a", "d", "a"], ["x", "y", "x"]]


def test_find_cycles_passes_a_layered_graph():
    toy = {"cli": {"cmd", "lib"}, "cmd": {"lib", "util"}, "lib": {"util"}, "util": set()}
    assert find_cycles(toy) == []


def test_import_graph_reads_every_kind_of_import(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from pkg import b\n",  # a submodule by `from package import module`
        "b.py": "def f():\n    from .sub import c\n",  # relative, inside a function
        "sub/__init__.py": "from pkg.sub.c import g\n",
        "sub/c.py": "import pkg.d\n",
        "d.py": "from ..outside import x\nimport os\nfrom pkg.a import name\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    graph = import_graph(find_modules({"pkg": pkg}))
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.sub", "pkg.sub.c"},
        "pkg.sub": {"pkg.sub.c"},
        "pkg.sub.c": {"pkg.d"},
        "pkg.d": {"pkg.a"},
    }
    assert find_cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c", "pkg.d", "pkg.a"]]


def _packages(graph) -> dict[str, set[str]]:
    """farm's packages and the other packages of farm each one imports."""
    packages = {p.name for p in (REPO / "farm").iterdir() if (p / "__init__.py").exists()}
    out: dict[str, set[str]] = {p: set() for p in packages}
    for module, targets in graph.items():
        me = module.split(".")[1] if module.count(".") else ""
        if me not in packages:
            continue
        for t in targets:
            them = t.split(".")[1] if t.count(".") else ""
            if them in packages and them != me:
                out[me].add(them)
    return out


def test_no_package_imports_another_that_imports_it_back(graph):
    """No loop between packages, however long: each can be read, tested and moved with
    only those below it."""
    import graphlib

    try:
        tuple(graphlib.TopologicalSorter(_packages(graph)).static_order())
    except graphlib.CycleError as e:
        raise AssertionError(f"packages import each other in a loop: {e.args[1]}") from None


def test_each_package_imports_only_what_its_docstring_says(graph):
    """The "May import:" sentence of a package's docstring lists the packages it may
    import (any remark in parentheses aside; the top-level modules always); nothing else
    is imported."""
    import re

    for package, imported in _packages(graph).items():
        if package == "commands":  # the command line's modules: each command's own needs
            continue
        doc = ast.get_docstring(ast.parse((REPO / "farm" / package / "__init__.py")
                                          .read_text())) or ""
        if "Imports nothing of the farm" in doc:
            allowed: set[str] = set()
        else:
            sentence = doc.split("May import:", 1)[1]
            sentence = re.sub(r"\([^)]*\)", "", sentence).split(".", 1)[0]
            assert "below" not in sentence, f"{package}: name the packages, not 'below'"
            allowed = set(re.findall(r"[a-z_]+", sentence))
        extra = imported - allowed
        assert not extra, f"farm.{package} imports {sorted(extra)}, which its docstring's " \
                          "'May import:' does not list"
