import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from farm.errors import DatasetError
from farm.report.text import build_report
from farm.store.samples import (
    MAX_TEXT_CHARS,
    SCHEMA,
    SCHEMA_VERSION,
    SampleStore,
    file_version,
)


def _rows(round_no, n=3):
    return [{"sample_id": f"r{round_no}-c{i}", "round": round_no, "index": i, "status": "ok",
             "runtime_ms": 1.0 + i, "featurization": b"\0" * 8} for i in range(n)]


def test_commit_is_one_file_per_round_and_never_twice(tmp_path):
    store = SampleStore(tmp_path)
    store.commit_round(1, _rows(1))
    store.commit_round(2, _rows(2))
    assert store.committed_rounds() == [1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round-000001.parquet",
                                                          "round-000002.parquet"]
    with pytest.raises(DatasetError, match="already committed"):
        store.commit_round(2, _rows(2))
    table = store.read()
    assert table.num_rows == 6 and table.schema.names == SCHEMA.names


def test_a_half_written_round_is_invisible(tmp_path):
    store = SampleStore(tmp_path)
    store.commit_round(1, _rows(1))
    (tmp_path / ".round-000002.parquet.tmp123").write_bytes(b"partial")
    assert store.committed_rounds() == [1]
    assert store.read().num_rows == 3


def test_compaction_merges_and_survives_an_interrupted_cleanup(tmp_path):
    store = SampleStore(tmp_path)
    for r in range(1, 6):
        store.commit_round(r, _rows(r))
    assert store.compact(min_files=10) is None
    merged = store.compact(min_files=5)
    assert merged.name == "rounds-000001-000005.parquet"
    assert [p.name for p in tmp_path.iterdir()] == [merged.name]
    # a crash after the merge but before the clean-up leaves covered round files behind
    store2 = SampleStore(tmp_path / "again")
    for r in range(1, 4):
        store2.commit_round(r, _rows(r))
    leftover = (tmp_path / "again" / "round-000002.parquet").read_bytes()
    store2.compact(min_files=3)
    (tmp_path / "again" / "round-000002.parquet").write_bytes(leftover)
    assert store2.committed_rounds() == [1, 2, 3]
    assert store2.read().num_rows == 9  # nothing counted twice
    store2.commit_round(4, _rows(4))
    assert store2.committed_rounds() == [1, 2, 3, 4]


def test_readers_racing_compactions_see_every_row_once(tmp_path):
    """`farm report` on a live run: reads while the tuner compacts never fail, never call a
    round file that was just merged away "corrupt", and count every row once."""
    import threading

    store = SampleStore(tmp_path)
    done, counts, errors = threading.Event(), [], []

    def reader():
        while not done.is_set():
            try:
                counts.append(SampleStore(tmp_path).read(["sample_id"]).num_rows)
            except Exception as e:  # any failure is what this test looks for
                errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        committed = 0
        for r in range(1, 121):
            store.commit_round(r, _rows(r))
            committed = r
            if r % 8 == 0:
                store.compact(min_files=8)
    finally:
        done.set()
        for t in threads:
            t.join()
    assert not errors, errors[:3]
    assert len(counts) > 20 and all(c % 3 == 0 and c <= 3 * committed for c in counts)
    assert store.read().num_rows == 360 and len(store.files()) == 15


def test_a_corrupt_file_is_named_not_dropped(tmp_path):
    store = SampleStore(tmp_path)
    store.commit_round(1, _rows(1))
    store.commit_round(2, _rows(2))
    bad = tmp_path / "round-000002.parquet"
    bad.write_bytes(bad.read_bytes()[:50])
    with pytest.raises(DatasetError, match=r"round-000002\.parquet is corrupt .*move it into "
                       r"the folder's _damaged/ subfolder: the run then goes on without"):
        store.read()
    (tmp_path / "_damaged").mkdir()
    bad.rename(tmp_path / "_damaged" / bad.name)
    assert store.read().num_rows == 3 and store.lost_rounds() == [2]


def test_a_foreign_file_is_named(tmp_path):
    store = SampleStore(tmp_path)
    store.commit_round(1, _rows(1))
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DatasetError, match=r"notes\.txt does not belong"):
        store.read()


V1_RUN = Path(__file__).parent / "data" / "v1-run"  # written by the previous release


def test_files_carry_their_schema_version(tmp_path):
    store = SampleStore(tmp_path)
    path = store.commit_round(1, _rows(1))
    assert file_version(pq.read_schema(path)) == SCHEMA_VERSION == 6


def test_a_run_of_the_previous_release_reads_with_new_columns_as_nulls(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(V1_RUN, run)
    store = SampleStore(run / "samples")
    old = pq.read_schema(run / "samples" / "round-000001.parquet")
    assert file_version(old) == 1 and "planner" not in old.names
    table = store.read()
    assert table.schema.names == SCHEMA.names and table.num_rows == 8
    assert table["planner"].null_count == 8 and table["cause"].null_count == 8
    assert table["timing_started_at"].null_count == 8 == table["timing_ended_at"].null_count
    assert {r["status"] for r in table.to_pylist()} <= {"ok", "duplicate"}
    store.commit_round(2, [{**_rows(2)[0], "planner": "b1-d1@accepted"}])
    merged = store.compact(min_files=2)  # one file of each version
    assert file_version(pq.read_schema(merged)) == 6
    both = store.read(["round", "planner"]).to_pylist()
    assert sorted((r["round"], r["planner"]) for r in both)[-1] == (2, "b1-d1@accepted")
    assert build_report(run).rounds[0]["candidates"] == 8  # the report reads it too


def test_a_file_of_a_newer_schema_is_refused_with_the_fix(tmp_path):
    store = SampleStore(tmp_path)
    path = store.commit_round(1, _rows(1))
    table = pq.read_table(path)
    pq.write_table(table.replace_schema_metadata({b"farm.schema_version": b"99"}), path)
    with pytest.raises(DatasetError, match=r"newer farm.*upgrade"):
        store.read()


@pytest.mark.parametrize("change, words", [
    ("nan", "a finite positive runtime_ms"),
    ("inf", "a finite positive runtime_ms"),
    ("round", "holds rows of rounds 7-7, not of the round(s) 1-1"),
    ("version", "not a version number"),
    ("huge", "more than rows of the farm's hold"),
    ("repeated", ""),
])
def test_rows_the_farm_never_writes_are_refused_naming_why(tmp_path, change, words):
    """NaN or infinite runtimes of ok rows read as "best ms nan"; a row's round was not
    checked against its file; a non-integer schema version was a traceback; four rows of
    100 MB errors took a report 3.8 GB."""
    import pyarrow as pa

    store = SampleStore(tmp_path)
    path = store.commit_round(1, _rows(1))
    table = pq.read_table(path)
    meta = table.schema.metadata
    if change in ("nan", "inf"):
        runtimes = table["runtime_ms"].to_pylist()
        runtimes[1] = float(change)
        table = table.set_column(table.schema.get_field_index("runtime_ms"), "runtime_ms",
                                 pa.array(runtimes, pa.float64()))
    elif change == "round":
        table = table.set_column(table.schema.get_field_index("round"), "round",
                                 pa.array([7] * table.num_rows, table.schema.field("round").type))
    elif change == "version":
        meta = {**meta, b"farm.schema_version": b"five"}
    elif change in ("huge", "repeated"):  # distinct texts, or one that compresses to nothing
        errors = [(str(i) if change == "huge" else "x") * (5 << 20)
                  for i in range(table.num_rows)]
        table = table.set_column(table.schema.get_field_index("error"), "error",
                                 pa.array(errors, pa.string()))
    pq.write_table(table.replace_schema_metadata(meta), path, compression="zstd",
                   use_dictionary=change != "huge")
    if not words:  # read, its text cut to what a row of the farm's holds
        assert max(len(e) for e in store.read(["error"])["error"].to_pylist()) == \
            MAX_TEXT_CHARS["error"]
        return
    with pytest.raises(DatasetError, match=re.escape(words)):
        store.read()
