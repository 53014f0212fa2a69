"""What the farm tunes: benchmarks (a generator and its parameters) and their pipelines.

benchmark (the Benchmark value that travels to every node), catalog (BENCH names: the
built-ins, Python files, C++ folders, executables), params (a BENCH's parameters:
written, checked, their defaults, when two names are one pipeline), python_generators,
cpp_generators.
A benchmark is what the user names; its pipeline (with a stable pipeline id) is what it
builds.
May import: machine and the foundation.
"""
