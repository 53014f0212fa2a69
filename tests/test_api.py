"""The Python API (farm.api) on a small real run: real Halide, real Ray (embedded)."""

import pyarrow as pa
import pytest

import farm.api as fa
from farm.errors import BadInput, MissingPrerequisite
from farm.store.samples import SampleStore


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "run"
    summary = fa.tune(out, "dilate3x3", rounds=1, batch_size=4)
    return out, summary


def test_tune_returns_the_runs_summary(tuned):
    out, summary = tuned
    assert summary.run_dir == out and summary.rounds == 1 and summary.rows == 4
    again = fa.tune(out, "dilate3x3", rounds=1, batch_size=4)  # already done: no new work
    assert again.rows == 4


def test_a_run_gives_its_samples_rounds_and_best_schedule(tuned):
    out, summary = tuned
    run = fa.open_run(out)
    table = run.samples()
    assert isinstance(table, pa.Table) and table.num_rows == 4
    assert table.to_pylist() == SampleStore(out / "samples").read().to_pylist()
    ok = run.samples(["runtime_ms"], ok_only=True)
    assert ok.num_rows == summary.ok and ok.column_names == ["runtime_ms"]
    frame = run.to_pandas(["round", "status", "runtime_ms"])
    assert list(frame.columns) == ["round", "status", "runtime_ms"] and len(frame) == 4
    [record] = run.rounds()
    assert record.round == 1 and record.acceptance is not None
    acc = record.acceptance  # as on disk, and said plainly beside it
    assert acc.switched == (acc.accepted != "current") and acc.decision
    best = run.best()
    assert best.runtime_ms == summary.best_ms
    assert best.schedule_path == summary.best_schedule_path == out / "best" / \
        "dilate3x3.schedule.h"
    assert best.schedule_text == best.schedule_path.read_text() and "Func" in best.schedule_text
    assert best.weights_path.is_file() and best.library_path.name.endswith(".a")
    assert any(f.label == "manual schedule" for f in best.finalists)
    # a verdict always, the start weights' own beam search included (it held None)
    assert best.vs_start is not None and best.vs_start.verdict
    winner = next(f for f in best.finalists if f.label == best.label)
    if "beam search with start weights" in (winner.label, *winner.also):
        assert best.vs_start.ratio == 1.0
    # the old names keep working, with a warning that names the new one
    for old, new in (("schedule", "schedule_path"), ("schedule_source", "schedule_text"),
                     ("weights", "weights_path"), ("library", "library_path")):
        with pytest.warns(DeprecationWarning, match=new):
            assert getattr(best, old) == getattr(best, new)
    with pytest.warns(DeprecationWarning, match="best_schedule_path"):
        assert summary.best_schedule == summary.best_schedule_path
    assert run.pipelines == ["dilate3x3"]
    page = run.write_report()
    assert page.name == "index.html" and "data:image/png;base64," in page.read_text()
    blocked = out / "a-file"
    blocked.write_text("")
    with pytest.raises(BadInput, match=r"out .*a-file names a file, not a folder"):
        run.write_report(blocked)


def test_to_pandas_without_pandas_says_how_to_get_it(tuned, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pandas(name, *args, **kwargs):
        if name == "pandas":
            raise ImportError("no pandas here")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(MissingPrerequisite, match="pip install pandas"):
        fa.open_run(tuned[0]).to_pandas()


def test_compare_gives_a_verdict_with_its_interval():
    faster = fa.compare([1.0, 1.02, 0.98, 1.01, 0.99, 1.0, 1.03, 0.97],
                        [2.0, 2.1, 1.9, 2.05, 1.95, 2.0, 2.02, 1.98])
    assert faster.word == "faster" and faster.high < 1 and 0.45 < faster.ratio < 0.55
    same = fa.compare([1.0, 1.1, 0.9, 1.05, 0.95, 1.0, 1.02, 0.98],
                      [1.05, 0.95, 1.0, 1.1, 0.9, 1.0, 0.98, 1.02])
    assert same.word == "indistinguishable" and same.low < 1 < same.high
    assert fa.compare([1.0], [2.0]).word == "unmeasured"


def test_what_is_not_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(BadInput, match="not a run directory"):
        fa.open_run(tmp_path)
    with pytest.raises(BadInput, match="name at least one benchmark"):
        fa.tune(tmp_path / "x")


def test_bench_takes_retimes_and_its_old_name_repeats_with_a_warning(monkeypatch):
    from farm.workflows import bench

    seen = []
    monkeypatch.setattr(bench, "run_bench",
                        lambda *args, retimes, progress: seen.append(retimes) or [])
    with pytest.raises(MissingPrerequisite):  # no rows: no usable device
        fa.bench(["median3x3"], retimes=7)
    with pytest.warns(DeprecationWarning, match="retimes"), \
            pytest.raises(MissingPrerequisite):
        fa.bench(["median3x3"], repeats=3)
    with pytest.raises(MissingPrerequisite):
        fa.bench(["median3x3"])
    assert seen == [7, 3, bench.DEFAULT_RETIMES]
