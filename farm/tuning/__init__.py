"""`farm autotune`: the round loop and everything that ends a run.

loop (autotune, Tuning), settings, validation (refusals before anything is written), state
(the run as the loop follows it), steps (the resumable steps after a commit), beam_check,
artifacts (kept binaries), rows (an outcome as a sample row), finalize (the final
re-timing, best/; what it works from: final_inputs; the final models: final_models), summary
(TuneSummary).
May import: report, execution, build, search, devices, store, model, pipelines, machine,
stats and the foundation.
"""
