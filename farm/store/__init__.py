"""What the farm keeps on disk: the run directory, its records and samples; the model registry.

rundir (RunDir: layout, manifest, the driver's lock), records (the typed JSON records),
checks (what a record's fields may hold), samples (the Parquet dataset, its schema and
the column sets its readers read), best (best/ and the hand-over), loop_samples (Halide's
loop's .sample folders, read and written), registry (each device class's models).
May import: model (weights files, features, the trainer's sample files) and the
foundation.
"""
