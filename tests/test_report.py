"""farm report, farm bench and farm export on a small real run."""

import io
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from clitools import assert_user_error, farm

from farm.execution.scheduler import Counts
from farm.machine.halide_env import halide_env
from farm.report.plots import NAMES
from farm.report.progress import Progress
from farm.report.text import build_report, finalist_rows
from farm.stats import verdict
from farm.store.records import (
    MANUAL_LABEL,
    START_LABEL,
    FinalistRecord,
    RetimingRecord,
    VerdictRecord,
)
from farm.store.rundir import RunDir
from farm.store.samples import SampleStore

V1_RUN = Path(__file__).parent / "data" / "v1-run"  # a run of the first release (1 round)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run = tmp_path_factory.mktemp("report") / "run"
    farm("autotune", "dilate3x3", "--rounds", "2", "--batch-size", "6", "--out", run, check=0)
    return run


def test_report_tables_and_plots(run, tmp_path):
    out = farm("report", run, "--out", tmp_path, "--html", check=0).stdout
    lines = out.splitlines()
    header = next(i for i, ln in enumerate(lines) if ln.strip().startswith("round"))
    assert [ln.split()[0] for ln in lines[header + 1:header + 3]] == ["1", "2"]
    assert "held-out rank" in lines[header] and "trainer rate" in lines[header]
    assert "on its TRAINING data" in out  # the labels say what each figure measures
    assert "manual schedule" in out and "<- best/" in out
    assert "vs the manual schedule" in out and "vs beam-32 with the start weights" in out
    # each device's busy share, from the rows' timing intervals (schema 4)
    busy = next(ln for ln in lines if ln.strip().startswith("cpu@"))
    assert re.search(r"\d+ s +\d+%$", busy), busy
    for row in SampleStore(run / "samples").read().to_pylist():
        if row["status"] == "ok":
            assert row["timing_started_at"] <= row["timing_ended_at"] <= row["created_at"]
        elif row["status"] == "duplicate":  # never timed
            assert row["timing_started_at"] is None and row["timing_ended_at"] is None
    for name in NAMES:
        png = tmp_path / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert (tmp_path / "index.html").read_text().count("data:image/png;base64,") == len(NAMES)


def test_report_of_something_else_is_a_user_error(tmp_path):
    assert_user_error(farm("report", tmp_path), str(tmp_path), "manifest.json")


def test_export_writes_samples_halides_trainer_reads(run, tmp_path):
    farm("export", run, "--out", tmp_path / "x", check=0)
    rows = [r for r in SampleStore(run / "samples").read().to_pylist() if r["status"] == "ok"]
    samples = sorted((tmp_path / "x").glob("*.sample"))
    assert len(samples) == len(rows)
    # named as Halide's loop names its samples: PIPELINE_batch_ROUND_sample_INDEX
    by_name = {f"{r['benchmark']}_batch_{r['round']:04d}_sample_{r['index']:04d}": r
               for r in rows}
    for s in samples:
        row = by_name[s.stem]
        assert s.stat().st_size == len(row["featurization"]) + 12
        assert s.with_suffix("").with_suffix(".schedule.h").read_text() == \
            row["schedule_source"]
    trainer = halide_env().tool("adams2019_retrain_cost_model")
    proc = subprocess.run(
        [str(trainer), "--epochs=1", "--rates=0.0001", "--num_cores=1", "--randomize_weights=1",
         f"--weights_out={tmp_path / 'w.weights'}", f"--best_benchmark={tmp_path / 'b.txt'}",
         f"--best_schedule={tmp_path / 'b.schedule.h'}"],
        input="\n".join(map(str, samples)), capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Loss:" in proc.stdout and (tmp_path / "b.schedule.h").exists()


def test_bench_matrix_from_a_run(run, tmp_path):
    proc = farm("bench", "--run", run, "--repeats", "2", "--out", tmp_path, check=0)
    assert "tuned / baseline" in proc.stdout and "95% bootstrap interval" in proc.stdout
    table = pq.read_table(next(tmp_path.glob("bench-*.parquet"))).to_pylist()
    assert sorted(r["variant"] for r in table) == sorted(
        ["manual", "beam32 baseline", "beam32 tuned", "run best"])
    assert all(r["benchmark"] == "dilate3x3" and r["median_ms"] > 0 for r in table)
    assert all(len(r["retimes_ms"]) == 2 for r in table)
    # two re-timings are too few for a verdict: the farm says so instead of guessing
    assert {r["verdict"] for r in table if r["variant"] != "beam32 baseline"} == {"unmeasured"}
    assert next(tmp_path.glob("bench-*.png")).stat().st_size > 10_000


def test_the_report_compares_with_the_manual_schedule_with_an_interval_and_labels_both_timings(
        tmp_path):
    """best/runtime.json as the end of a run writes it: the winner and the manual schedule
    re-timed in turn. The line against the manual schedule is the verdict on those paired
    re-timings (what fa.compare says), with its direction; a finalist's figure in its round
    is shown beside its re-timing, labelled, with why they differ."""
    shutil.copytree(V1_RUN, tmp_path / "run")
    run = RunDir(tmp_path / "run")
    best = [0.20, 0.21, 0.19, 0.20, 0.22, 0.20]
    manual = [0.42, 0.40, 0.43, 0.41, 0.44, 0.42]
    start = [0.30, 0.31, 0.29, 0.30, 0.32, 0.30]
    vs_start = verdict.compare(best, start)
    run.best.publish(run.best.staging(), RetimingRecord(
        benchmark="dilate3x3", runtime_ms=0.20, finalist="sample r1-c3", retimes_ms=best,
        finalists=[
            FinalistRecord("sample r1-c3", 0.20, best, vs_start=VerdictRecord.from_json(
                vs_start.as_json()), round_ms=0.232, round_no=1),
            FinalistRecord(START_LABEL, 0.30, start, beam_search=True, round_ms=0.416,
                           round_no=1),
            FinalistRecord(MANUAL_LABEL, 0.42, manual, reference=True)]))
    text = build_report(run.path).text
    against = verdict.compare(best, manual)
    assert against.word == verdict.FASTER
    assert (f"best schedule 0.200 ms vs the manual schedule 0.420 ms: {against.describe()}"
            in text), text
    assert re.search(r"vs the manual schedule 0\.420 ms: \d\.\d\dx faster \[\d\.\d\d, "
                     r"\d\.\d\d\]$", text, re.M), text
    assert f"vs beam-32 with the start weights 0.300 ms: {vs_start.describe()}" in text
    assert "0.200 ms  (0.232 ms timed during round 1)" in text
    assert "0.300 ms  (0.416 ms timed during round 1)" in text
    assert verdict.TWO_TIMINGS in text and "as timed during the round" in text
    rows = finalist_rows(build_report(run.path).best)
    assert rows[0] == ("sample r1-c3 (best/)", "0.200", "0.232 (round 1)",
                       vs_start.describe(), "faster")
    assert rows[2][2:] == ("-", "-", "-")  # the manual schedule: not a sample, no verdict


def test_what_was_found_says_a_verdict_without_a_ratio_and_its_re_timings():
    from farm.report.text import comparisons
    from farm.store.records import START_LABEL, FinalistRecord, RetimingRecord, VerdictRecord

    few = VerdictRecord(pairs=2, verdict="unmeasured")
    best = RetimingRecord("dilate3x3", 0.25, "sample-1", finalists=[
        FinalistRecord("sample-1", 0.25, [0.25, 0.26], vs_start=few),
        FinalistRecord(START_LABEL, 1.05, [1.05, 1.04])])
    assert comparisons(best) == [
        "best schedule 0.250 ms vs beam-32 with the start weights 1.050 ms: "
        "unmeasured (2 paired re-timings)"]
    timed = VerdictRecord(ratio=0.5, low=0.4, high=0.6, pairs=10, verdict="faster")
    best.finalists[0] = FinalistRecord("sample-1", 0.25, [0.25] * 10, vs_start=timed)
    assert comparisons(best)[0].endswith(": 2.00x faster [1.67, 2.50]")


def test_a_round_slower_than_the_mean_still_shows_time_left_while_candidates_remain():
    progress = Progress(io.StringIO(), live=False)
    progress.round_s = 100.0  # the mean round so far
    progress.round_started(2, 3, 128)
    progress.started -= 300  # this round has run 3x the mean, a quarter of it done
    status = progress._status(Counts(total=128, done=32))
    # the last round at the mean pace, this one at its own: 100 + 300 x 96 / 32 s
    assert "~16m40s left" in status or "~16m39s left" in status, status
    progress.started += 300 - 10  # 10 s into a round: what is left of the mean round
    assert "~3m10s left" in progress._status(Counts(total=128, done=1)) or \
        "~3m09s left" in progress._status(Counts(total=128, done=1))
