"""The commands' work besides the round loop: run, bench, evaluate (its checks before any
work: evaluation), pretrain (the round loop with pipelines drawn round by round), models
(promotion), class_model (`farm models train`), import_loop, reports, run_view. Each
compares schedules as farm.execution.compare does and writes the result as
farm.report.comparison does.
May import: tuning (pre-training runs the round loop), report, execution, build, search,
devices, store, model, pipelines, machine, stats and the foundation.
"""
