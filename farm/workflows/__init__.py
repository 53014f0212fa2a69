"""The commands' work besides tuning: run, bench, evaluate (its checks before any work:
evaluation), and compare, the one comparison workflow they (and the tuning's beam check
and final re-timing) share: build variants, re-time them interleaved, verdicts against a
reference, table, plot, Parquet.
May import: report, execution, search, model, store and below (compare: not the others).
"""
