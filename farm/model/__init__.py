"""The Adams2019 cost model: weights, features, training, acceptance, prediction.

weights (files: validate, baseline, hash), featurization (the autoscheduler's features and
.sample files), retrain (Halide's own trainer), trainer (the Trainer interface), acceptance
(candidate updates judged on held-out data), predict (per-schedule predictions).
Nothing here reads a run directory (farm.store, above, does; the registry of models is
there too).
May import: machine and the foundation.
"""
