"""What this machine and the halide wheel give the farm.

halide_env (where the wheel keeps its files; the host target), targets (what a candidate is
compiled for and what the autoscheduler sees), toolchain (C++ toolchains, the harness and
runtime built once), cache (the per-machine cache folder), limits (the upper bound of every
number a user gives, from what the machine holds).
May import: the foundation only (errors, atomic, paths).
"""
