"""The run directory: its layout, its JSON records and its Parquet samples.

rundir (RunDir: layout, manifest, the driver's lock), records (the typed JSON records),
checks (what a record's fields may hold), samples (the Parquet dataset, its schema and
the column sets its readers read).
May import: model (weights files) and the foundation.
"""
