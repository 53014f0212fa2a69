"""The one comparison workflow (farm.execution.compare): build, re-time interleaved, verdicts."""

from dataclasses import replace
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq

from farm.candidate import OK, BuildResult, Schedule
from farm.execution import compare
from farm.model import weights
from farm.report import comparison
from farm.stats import verdict
from farm.testing import fake_featurization


def _built(schedule_seed, error=""):
    if error:
        return SimpleNamespace(result=BuildResult("compile_error", error=error))
    return SimpleNamespace(result=BuildResult(
        OK, schedule=Schedule(f"src {schedule_seed}", fake_featurization(schedule_seed), 0.1)))


class Pool:
    """Builds a spec into the schedule its seed names (`fails`: seeds whose build fails,
    `hangs`: seeds whose build never answers); times binary "bN" at `ms[N]` ms (1.0 unless
    given), each re-timing alike; `lost`: every device is gone."""

    def __init__(self, ms=None, fails=(), hangs=(), lost=False):
        self.ms, self.fails, self.hangs, self.lost = ms or {}, fails, hangs, lost
        self.builds, self.retimes = [], []

    def build(self, specs, timeout_s):
        self.builds.append([s.seed for s in specs])
        return [(None, None, None) if s.seed in self.hangs else
                (_built(s.seed, "boom\nat line 2" if s.seed in self.fails else ""),
                 f"b{s.seed}", f"lib{s.seed}") for s in specs]

    def retime(self, binaries, threads, timing, rounds, device=None, errors=None, **options):
        self.retimes.append((dict(binaries), device, options))
        if self.lost:
            return {}
        return {key: [self.ms.get(b, 1.0) * (1 + 0.001 * (r % 3)) for r in range(rounds)]
                for key, b in binaries.items()}


def test_variants_are_built_at_once_timed_at_once_and_judged_against_their_reference(
        spec_for):
    pool = Pool(ms={"b2": 0.5, "b3": 2.0, "kept": 1.0})
    variants = [compare.Variant("base", spec_for("median3x3", seed=1)),
                compare.Variant("fast", spec_for("median3x3", seed=2), against="base"),
                compare.Variant("slow", spec_for("median3x3", seed=3), against="base"),
                compare.Variant("kept", spec_for("median3x3", seed=4),
                                artifact=("kept", "kept-lib"), against="base"),
                compare.Variant("broken", spec_for("median3x3", seed=5), against="base"),
                compare.Variant("hung", spec_for("median3x3", seed=6), against="base"),
                compare.Variant("untrained", None, against="base", error="not trained")]
    pool.fails, pool.hangs = {5}, {6}
    built = compare.build(pool, variants, 60.0)
    assert pool.builds == [[1, 2, 3, 5, 6]]  # the kept artifact is not built again
    assert built["kept"].binary == "kept" and built["kept"].library == "kept-lib"
    assert built["fast"].schedule_source == "src 2" and built["fast"].schedule_key
    assert built["broken"].error == "boom" and not built["broken"].ready
    assert built["hung"].error == "its build did not finish (worker died, or over 60 s)"
    out = compare.retime(pool, built, 4, None, 6, device="cpu@a")
    [(timed, device, options)] = pool.retimes
    assert sorted(timed) == ["base", "fast", "kept", "slow"] and device == "cpu@a"
    assert options == {}  # pool.retime's own defaults unless given
    assert out["fast"].verdict.word == verdict.FASTER and out["fast"].median_ms < 0.6
    assert out["slow"].verdict.word == verdict.SLOWER and out["slow"].min_ms == 2.0
    assert out["kept"].verdict.word == verdict.SAME
    assert out["base"].verdict is None and len(out["base"].retimes_ms) == 6
    for key in ("broken", "hung", "untrained"):  # no timings, no verdict, the reason
        assert out[key].verdict is None and out[key].retimes_ms == () and out[key].error
    assert out["untrained"].error == "not trained"
    ratios = [out[k].verdict.ratio for k in ("fast", "slow")]
    assert abs(compare.geometric_mean(ratios) - 1.0) < 0.01
    assert compare.geometric_mean([]) is None


def test_distinct_times_each_schedule_once(spec_for, baseline):
    other = weights.perturbed(baseline, 1, 0.01)
    pool = Pool()
    variants = [compare.Variant("base", spec_for("median3x3", seed=1)),
                compare.Variant("same weights", spec_for("median3x3", seed=1), against="base"),
                compare.Variant("other weights", spec_for("median3x3", seed=1, weights=other),
                                against="base"),
                compare.Variant("other beam", spec_for("median3x3", seed=7), against="base")]
    assert [v.key for v in compare.to_build(variants, distinct=True)] == [
        "base", "other weights", "other beam"]
    built = compare.build(pool, variants, 60.0, distinct=True)
    assert built["same weights"].same_as == "base"
    assert built["same weights"].same_why == compare.WEIGHTS
    assert built["other weights"].same_as == "base"  # built again: the same schedule
    assert built["other weights"].same_why == compare.SCHEDULE
    assert built["other beam"].same_as is None
    out = compare.retime(pool, built, 4, None, 5)
    assert sorted(pool.retimes[0][0]) == ["base", "other beam"]
    assert out["same weights"].retimes_ms == out["base"].retimes_ms
    assert out["same weights"].source == "base"
    assert out["other weights"].verdict.ratio == 1.0


def test_a_lost_device_and_early_stops(spec_for):
    pool = Pool(lost=True)
    built = compare.build(pool, [compare.Variant("a", spec_for("median3x3", seed=1)),
                                 compare.Variant("b", spec_for("median3x3", seed=2),
                                                 against="a")], 60.0)
    decided = compare.settled([("b", "a")])
    out = compare.retime(pool, built, 4, None, 5, device="cpu@a", decided=decided,
                         timeout_s=9.0)
    assert pool.retimes[0][2] == {"decided": decided, "timeout_s": 9.0}
    assert out["b"].error == "not timed: device cpu@a is lost" and out["b"].verdict is None
    assert decided({"a": [1.0] * 5, "b": [2.0] * 5})
    assert not decided({"a": [1.0] * 5, "b": [1.0] * 5})
    assert compare.retime(Pool(), {"a": replace(built["a"], error="x")}, 4, None, 5) == {
        "a": compare.Compared("a", replace(built["a"], error="x"), "a", error="x")}


def test_pairs_are_timed_only_whole(spec_for):
    """The beam check's shape: per pipeline a variant against its start, some binaries
    kept; a pipeline whose pair is not whole is not timed."""
    pool = Pool(fails={3})
    variants = [compare.Variant(("p", "new"), spec_for("median3x3", seed=1),
                                artifact=("kept", None), against=("p", "start")),
                compare.Variant(("p", "start"), spec_for("median3x3", seed=2)),
                compare.Variant(("q", "new"), spec_for("median3x3", seed=3),
                                against=("q", "start")),
                compare.Variant(("q", "start"), spec_for("median3x3", seed=4))]
    built = compare.build(pool, variants, 60.0)
    assert list(compare.paired(built)) == [("p", "new"), ("p", "start")]


def test_rows_cells_table_and_files(tmp_path):
    v = verdict.compare([1.0] * 5, [2.0] * 5)
    c = compare.Compared("a", None, "a", (1.0, None, 1.0, 1.0, 1.0, 1.0), v)
    row = comparison.row(c, v, "sha")
    assert row["retimes_ms"] == [1.0] * 5 and row["min_ms"] == 1.0 and row["error"] is None
    assert (row["vs_baseline"], row["verdict"]) == (0.5, verdict.FASTER)
    assert comparison.versus(row) == "2.00x faster [2.00, 2.00]"
    assert comparison.versus(None) == "-"
    assert comparison.versus({**row, "verdict": "mine"}, own=("mine",)) == "mine"
    assert comparison.versus({**row, "vs_baseline": None, "error": "boom"}) == "boom"
    rows = [{**row, "variant": "a", "benchmark": "x"},
            {**row, "variant": "b", "benchmark": "x", "median_ms": None}]
    groups = comparison.grouped(rows, lambda r: (r["benchmark"],))
    text = comparison.format_table(["bench"], [(key, mine) for key, mine in groups.items()],
                                comparison.present(rows, ["b", "a", "c"]), [("a / b", "a")])
    assert text.splitlines() == ["bench  b ms  a ms   a / b",
                                 "x      -     1.000  2.00x faster [2.00, 2.00]"]
    schema = pa.schema([("variant", pa.string()), ("median_ms", pa.float64())])
    table, png = comparison.write_results(rows, schema, tmp_path / "out" / "r.parquet",
                                       tmp_path / "r.png", lambda rows, path: path)
    assert pq.read_table(table).to_pylist() == [{"variant": "a", "median_ms": 1.0},
                                                {"variant": "b", "median_ms": None}]
    assert png == tmp_path / "r.png"


def test_a_slower_verdict_stands_only_if_a_second_re_timing_says_so_too(spec_for):
    """One re-timing of a noisy host can err: each "slower" is re-timed once more, with its
    reference only, and a second verdict that is not "slower" replaces it."""
    pool = Pool(ms={"b2": 2.0, "b3": 2.0})
    variants = [compare.Variant("base", spec_for("median3x3", seed=1)),
                compare.Variant("flaky", spec_for("median3x3", seed=2), against="base"),
                compare.Variant("slow", spec_for("median3x3", seed=3), against="base"),
                compare.Variant("same", spec_for("median3x3", seed=4), against="base")]
    built = compare.build(pool, variants, 60.0)
    first = compare.retime(pool, built, 2, None, 5)
    assert [first[k].verdict.word for k in ("flaky", "slow")] == [verdict.SLOWER] * 2
    pool.ms["b2"] = 1.0  # the first re-timing of "flaky" erred
    said = []
    out = compare.confirm_slower(pool, built, first, 2, None, 5, say=said.append)
    assert set(pool.retimes[-1][0]) == {"flaky", "slow", "base"}  # only they, once more
    assert out["flaky"].confirmed and out["flaky"].verdict.word != verdict.SLOWER
    assert out["slow"].confirmed and out["slow"].verdict.word == verdict.SLOWER
    assert not out["same"].confirmed and out["same"] is first["same"]
    assert len(said) == 2 and said[0].startswith("flaky: slower on a first re-timing")
    assert compare.confirm_slower(pool, built, {"same": first["same"]}, 2, None, 5) == \
        {"same": first["same"]}  # nothing slower: nothing re-timed
