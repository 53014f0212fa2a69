"""Faults injected for real: SIGKILLed Ray workers and drivers, Ctrl-C, hangs, crashes,
and every kind of bad input."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from clitools import assert_user_error, farm
from proctools import (
    descendants,
    kill_all,
    kill_device_actor_mid_timing,
    wait_for_file,
    wait_for_process,
)

from farm.candidate import RUN_ERROR, RUN_TIMEOUT, TRANSIENT
from farm.devices.host import local_host_device
from farm.devices.timing import TimingConfig
from farm.search.plans import seed_for
from farm.store.rundir import RunDir
from farm.store.samples import SampleStore


def _start(*args):
    return subprocess.Popen([sys.executable, "-m", "farm", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _rows(run):
    return SampleStore(run / "samples").read().to_pylist()


@pytest.mark.slow  # the driver's side is covered in-process: tests/test_scheduler.py
def test_two_ray_workers_killed_mid_run(tmp_path):
    """A compile worker and a device actor SIGKILLed: the run finishes with every row once."""
    run = tmp_path / "run"
    proc = _start("autotune", "median3x3", "--rounds", "2", "--batch-size", "8", "--out", run)
    try:
        builder = wait_for_process(proc.pid, "ray::candidate_task")
        os.kill(builder, signal.SIGKILL)
        device = wait_for_process(proc.pid, "ray::DeviceActor")
        os.kill(device, signal.SIGKILL)
        out, err = proc.communicate(timeout=600)
    finally:
        kill_all([*descendants(proc.pid), proc.pid])
    assert proc.returncode == 0, err[-3000:]
    rows = _rows(run)
    assert len(rows) == 16 and len({r["sample_id"] for r in rows}) == 16
    assert "16 samples" in out
    # Ray retried the compile and the device's candidates: none lost, none crashed
    lost = [(r["status"], r["error"]) for r in rows if r["status"] in TRANSIENT]
    assert not lost, lost
    assert sum(r["status"] == "ok" for r in rows) >= 12


def test_farm_run_retries_a_device_actor_killed_mid_timing_locally(tmp_path):
    """The same path as autotune's, on the embedded local Ray: the run still answers."""
    proc = _start("run", "median3x3", "--out", tmp_path)
    try:
        kill_device_actor_mid_timing([proc.pid])
        out, err = proc.communicate(timeout=600)
    finally:
        kill_all([*descendants(proc.pid), proc.pid])
    assert proc.returncode == 0, err[-3000:]
    assert "autoscheduled:" in out and "manual:" in out and "failed" not in out, out


@pytest.mark.slow
def test_killed_driver_resumes(tmp_path):
    """kill -9 of the driver after round 1 of 3; the same command again finishes the run."""
    run = tmp_path / "run"
    args = ("autotune", "median3x3", "--rounds", "3", "--batch-size", "6", "--out", run)
    proc = _start(*args)
    try:
        wait_for_file(run / "samples" / "round-000001.parquet")
        tree = descendants(proc.pid)
        proc.kill()
        proc.wait()
    finally:
        kill_all(descendants(proc.pid) + tree)
    assert len(_rows(run)) in (6, 12)  # round 2 may have committed before the kill landed
    again = farm(*args, check=0)
    assert "took over the lock" in again.stdout
    rows = _rows(run)
    assert len(rows) == 18 and len({r["sample_id"] for r in rows}) == 18
    assert sorted({r["round"] for r in rows}) == [1, 2, 3]
    # the redone round drew what the killed one would have: each candidate's seed is its
    # index's (and draw's), whatever order candidates finished in
    run_id = json.loads((run / "manifest.json").read_text())["run_id"]
    for r in rows:
        assert r["seed"] == seed_for(run_id, r["round"], r["index"], r["attempts"]), r
    assert all(RunDir(run).read_round(n) is not None for n in (1, 2, 3))
    # a corrupt file in the dataset is named, never silently dropped
    bad = run / "samples" / "round-000002.parquet"
    bad.write_bytes(bad.read_bytes()[:100])
    assert_user_error(farm("autotune", "median3x3", "--rounds", "4", "--batch-size", "6",
                           "--out", run), "round-000002.parquet", "corrupt")


@pytest.mark.slow
def test_a_driver_killed_while_the_trainer_runs_finishes_the_round_on_resume(tmp_path):
    """kill -9 of the driver and everything under it while Halide's trainer trains after a
    round's commit (round 1 has no earlier round to train on; a round whose earlier ones
    hold fewer than 8 distinct schedules trains nothing): the rerun finishes that round (its
    record and weights) and goes on."""
    run = tmp_path / "run"
    # 400 steps: a training lasts long enough to be caught
    args = ("autotune", "median3x3", "--rounds", "3", "--batch-size", "12", "--train-steps",
            "400", "--out", run)
    proc = _start(*args)
    try:
        wait_for_process(proc.pid, "adams2019_retrain_cost_model", timeout=300,
                         anywhere=True)
        tree = descendants(proc.pid)
        kill_all([proc.pid, *tree])
        proc.wait()
    finally:
        kill_all(descendants(proc.pid))
    r = RunDir(run)
    committed = r.samples.committed_rounds()
    last = committed[-1]
    assert committed == list(range(1, last + 1)) and last >= 2
    assert r.read_round(last) is None  # killed in its acceptance
    out = farm(*args, check=0).stdout
    assert f"round {last} was committed but not finished" in out, out
    rows = _rows(run)
    assert len(rows) == 36 and len({x["sample_id"] for x in rows}) == 36
    for n in (1, 2, 3):
        assert r.read_round(n).acceptance is not None
    assert r.read_round(last).resumed and not list((run / "rounds").glob(".round-*"))
    assert r.latest_weights.read_bytes() == r.weights_path(3).read_bytes()


@pytest.mark.slow
def test_two_drivers_on_one_run_directory(tmp_path):
    """A second `farm autotune` on a run directory in use is refused in one line, and the
    first goes on undisturbed."""
    run = tmp_path / "run"
    args = ("autotune", "median3x3", "--rounds", "1", "--batch-size", "6", "--out", run)
    first = _start(*args)
    try:
        wait_for_process(first.pid, "ray::DeviceActor", timeout=300)
        second = farm(*args)
        assert_user_error(second, str(run), "is in use by pid", str(first.pid))
        _, err = first.communicate(timeout=600)
    finally:
        kill_all([*descendants(first.pid), first.pid])
    assert first.returncode == 0, err[-3000:]
    assert len(_rows(run)) == 6


@pytest.mark.slow
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    args = ("autotune", "median3x3", "--rounds", "2", "--batch-size", "6", "--out", run)
    proc = _start(*args)
    try:
        wait_for_process(proc.pid, "ray::DeviceActor.candidate")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        kill_all(descendants(proc.pid))
    assert proc.returncode == 130, err[-2000:]
    # (interrupted in round 1: "... to start again"; in a later round: "... to resume")
    assert "rerun the same command to" in err.lower()
    assert "Traceback" not in err
    assert not list((run / "samples").glob("*.parquet"))  # nothing half-recorded
    assert (run / ".lock").read_text() == ""  # released
    farm(*args[:3], "1", *args[4:], check=0)  # the lock is free: a rerun goes on
    assert len(_rows(run)) == 6


@pytest.mark.slow
@pytest.mark.parametrize("when", ["ray starting", "ray started"])
def test_ctrl_c_at_start_up_exits_130_says_what_is_kept_and_leaves_no_process(tmp_path, when):
    """Ctrl-C while the embedded Ray started segfaulted the driver (exit 139) in 2 of 3
    tries, and spoke of committed rounds in a folder never made."""
    run = tmp_path / "run"
    proc = _start("autotune", "median3x3", "--rounds", "1", "--batch-size", "4", "--out", run)
    try:
        wait_for_process(proc.pid, "ray::" if when == "ray started" else "/", anywhere=True,
                         timeout=120)
        started = descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=180)
        end = time.time() + 30
        while (left := [p for p in started if _alive(p)]) and time.time() < end:
            time.sleep(0.2)
    finally:
        kill_all(descendants(proc.pid))
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "committed round" not in err, err[-3000:]
    assert err.strip().splitlines()[-1].startswith("farm autotune: interrupted"), err
    assert not left


CRASHES_IN_COMPILES = textwrap.dedent('''
    import os, signal, sys
    import halide as hl

    @hl.generator(name="crashy")
    class Crashy:
        """Builds in the driver; in a compile process it crashes it (SIGSEGV, as a bug in
        LLVM would) or kills the Ray worker that started it (VICTIM=worker)."""
        input = hl.InputBuffer(hl.UInt(8), 2)
        output = hl.OutputBuffer(hl.UInt(8), 2)

        def generate(g):
            x, y = hl.Var("x"), hl.Var("y")
            g.output[x, y] = g.input[x, y]
            g.input.set_estimates([(0, 64), (0, 64)])
            g.output.set_estimates([(0, 64), (0, 64)])
            if sys.argv[0].endswith("build/process.py"):  # farm.build.process
                victim = os.getppid() if "VICTIM" == "worker" else os.getpid()
                os.kill(victim, signal.SIGKILL if victim != os.getpid() else signal.SIGSEGV)
''')


@pytest.mark.parametrize("victim, status, error", [
    ("compile", "compile_error", "the compile process died (signal 11)"),
    ("worker", "crashed", "compile worker died twice"),
])
def test_a_compile_that_crashes_is_a_row_not_a_dead_driver(tmp_path, victim, status, error):
    """A crash in Halide or LLVM ends the compile process: a compile_error row. A Ray worker
    that dies (SIGKILL, OOM) is retried once by Ray, then a crashed row."""
    gen = tmp_path / "crashy.py"
    gen.write_text(CRASHES_IN_COMPILES.replace('"VICTIM"', repr(victim)))
    run = tmp_path / "run"
    farm("autotune", f"{gen}:crashy", "--batch-size", "3", "--out", run, check=0)
    rows = _rows(run)
    assert [r["status"] for r in rows] == [status] * 3
    assert all(error in r["error"] for r in rows), [r["error"] for r in rows]


def _script(tmp_path, body):
    path = tmp_path / "bench.sh"
    path.write_text("#!/bin/sh\n" + body)
    return path.read_bytes()


def test_a_segfaulting_benchmark_is_a_run_error(tmp_path):
    m = local_host_device().run(_script(tmp_path, "echo starting\nkill -SEGV $$\n"), 2,
                                TimingConfig())
    assert m.status == RUN_ERROR and "SIGSEGV" in m.error and "starting" in m.log


def test_a_hanging_benchmark_is_killed_at_the_run_timeout(tmp_path):
    m = local_host_device().run(_script(tmp_path, "sleep 300\n"), 2,
                                TimingConfig(timeout_s=1))
    assert m.status == RUN_TIMEOUT and "1 s run timeout" in m.error
    assert m.run_s < 10


NO_ESTIMATES = textwrap.dedent('''
    import halide as hl

    @hl.generator(name="noest")
    class NoEstimates:
        input = hl.InputBuffer(hl.UInt(8), 2)
        output = hl.OutputBuffer(hl.UInt(8), 2)

        def generate(g):
            x, y = hl.Var("x"), hl.Var("y")
            g.output[x, y] = g.input[x, y]
''')


@pytest.mark.parametrize("case", ["unknown", "syntax", "missing-name", "corrupt-weights",
                                  "foreign-weights", "batch0", "unwritable", "no-estimates",
                                  "dead-address", "bad-budget"])
def test_bad_input_is_one_line_exit_2_no_work(case, tmp_path, baseline):
    out = tmp_path / "run"
    args = ["autotune", "median3x3", "--out", out]
    words = []
    if case == "unknown":
        args[1], words = "median9x9", ["median9x9", "did you mean", "farm benchmarks"]
    elif case == "syntax":
        gen = tmp_path / "g.py"
        gen.write_text("def broken(:\n")
        args[1], words = f"{gen}:x", ["g.py", "syntax error", "line 1"]
    elif case == "missing-name":
        gen = tmp_path / "g.py"
        gen.write_text("import halide as hl\n")
        args[1], words = f"{gen}:blur", ["'blur'"]
    elif case == "corrupt-weights":
        w = tmp_path / "w.weights"
        w.write_bytes(baseline.data[:5000])
        args += ["--weights", w]
        words = [str(w), "truncated"]
    elif case == "foreign-weights":
        w = tmp_path / "w.weights"
        w.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 100)
        args += ["--weights", w]
        words = [str(w), "signature"]
    elif case == "batch0":
        args += ["--batch-size", "0"]
        words = ["--batch-size", "at least 1"]
    elif case == "unwritable":
        blocker = tmp_path / "file"
        blocker.write_text("")
        args[3], words = blocker / "run", ["--out", "file/run"]
    elif case == "no-estimates":
        gen = tmp_path / "g.py"
        gen.write_text(NO_ESTIMATES)
        args[1], words = f"{gen}:noest", ["noest", "does not autoschedule", "estimate"]
    elif case == "dead-address":
        args += ["--address", "127.0.0.1:9"]
        words = ["127.0.0.1:9", "nothing answers"]
    elif case == "bad-budget":
        args += ["--budget", "soon"]
        words = ["--budget", "soon"]
    assert_user_error(farm(*args, timeout=120), *words)
    assert not (out / "samples").exists() or not list((out / "samples").iterdir())


def test_unknown_device_is_refused_before_any_work(tmp_path):
    out = tmp_path / "run"
    assert_user_error(farm("autotune", "median3x3", "--device", "phone7@nowhere", "--out", out),
                      "phone7@nowhere", "known devices")
    assert not out.exists()  # devices are chosen before the run directory is made
