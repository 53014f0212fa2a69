"""A run directory's files stay what their names say, whatever was moved aside."""

from farm.store import DAMAGED, SampleStore


def _rows(round_no, n=2):
    return [{"sample_id": f"r{round_no}-c{i}", "round": round_no, "index": i, "status": "ok",
             "runtime_ms": 1.0 + i, "featurization": b"\0" * 8} for i in range(n)]


def test_compaction_never_spans_a_round_moved_to_damaged(tmp_path):
    store = SampleStore(tmp_path)
    for r in range(1, 7):
        store.commit_round(r, _rows(r))
    (tmp_path / DAMAGED).mkdir()
    moved = tmp_path / DAMAGED / "round-000002.parquet"
    (tmp_path / "round-000002.parquet").rename(moved)
    merged = store.compact(min_files=3)
    assert merged is not None and merged.name == "rounds-000003-000006.parquet"
    assert store.lost_rounds() == [2]  # still known to be lost
    assert store.compact(min_files=1) is not None  # round 1 alone, never 1..6
    assert not [p for p in tmp_path.glob("rounds-*") if p.name.startswith("rounds-000001-0000")
                and not p.name.endswith("000001.parquet")]
    moved.rename(tmp_path / "round-000002.parquet")  # restored: read again, as its own file
    assert store.lost_rounds() == []
    assert store.committed_rounds() == [1, 2, 3, 4, 5, 6]
    assert sorted({r["round"] for r in store.read(["round"]).to_pylist()}) == [1, 2, 3, 4, 5, 6]
