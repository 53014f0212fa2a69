"""The corpus: real pipelines of the kinds phones' DSPs and CPUs run, one family a file.

Each file holds `@hl.generator` classes with estimates and no manual schedule; the farm
loads them by path as it loads the six built-ins (farm.pipelines.catalog). Each has a
NumPy reference in tests/corpus_refs/. Camera pipes, bilateral grids, local Laplacian
filters and unsharp masks are left out on purpose: they stay unseen, to judge models on.
"""
