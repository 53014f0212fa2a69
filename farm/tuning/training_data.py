"""The rows a run's cost model trains on: its own, and those of the runs it was given with
--also-train-on (an import of Halide's loop, another run of its class)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from farm.store.rundir import RunDir
from farm.store.samples import TRAIN_COLUMNS

OTHER_RUNS_ROUND = 0  # the round other runs' rows take: never a held-out round (1 and up)


def training_table(run: RunDir, also_train_on: Sequence[str], columns=TRAIN_COLUMNS
                   ) -> pa.Table:
    """`columns` of the run's rows and of the `also_train_on` runs', theirs as round 0: they
    train
    every candidate model and are never held out as a round (a campaign holds out a
    pipeline by name, theirs with it)."""
    tables = [run.samples.read(columns)]
    for other in also_train_on:
        t = RunDir(other).samples.read(columns)
        if "round" in t.column_names:
            t = t.set_column(t.schema.get_field_index("round"), "round",
                             pa.array([OTHER_RUNS_ROUND] * t.num_rows, pa.int32()))
        tables.append(t)
    return pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def campaign_names(table: pa.Table) -> list[str]:
    """The pipelines a training table holds rows of, by name."""
    return sorted(set(table["benchmark"].to_pylist()) - {None})


def held_out_pipeline(names: Sequence[str], round_no: int) -> str | None:
    """The pipeline a campaign's round `round_no` holds out of its candidates' training
    (in turn, by name), or None with fewer than two."""
    return names[(round_no - 1) % len(names)] if len(names) > 1 else None
