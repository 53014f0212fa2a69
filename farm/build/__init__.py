"""Turning a candidate into a schedule and a binary.

builder (the Builder interface and Halide's), process (the compile process whose CPU time
the kernel caps), compiler (autoschedule, generate, link: the Halide build).
May import: devices (the gate keeps compiles off timing cores), pipelines, model (weights),
machine, and the foundation (errors, atomic, paths, faults, candidate).
"""
