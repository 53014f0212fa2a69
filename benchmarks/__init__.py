"""The farm's built-in benchmarks: the algorithms of Halide's apps/hexagon_benchmarks.

Each file holds `@hl.generator` classes; the farm loads them by path, exactly
as it loads a user's own `path.py:name`. Installed, this folder becomes
`farm/benchmarks/`.
"""
