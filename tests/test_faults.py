"""Lasting faults (farm.faults): a device's or node's prerequisite that will not fix itself
takes it out of the run, named once; with no device left the run stops before committing
the round, with the cause and its fix. Doubles on a real local Ray here; the real gate,
compiler and Halide through the command line at the end (and in the slow tests)."""

import errno
import io
import os
import pickle
import shutil
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import ray
from clitools import assert_user_error, farm
from proctools import descendants, kill_all, wait_for_file

from farm import faults
from farm.build.compiler import build
from farm.candidate import (
    COMPILE_ERROR,
    COMPILE_TIMEOUT,
    FAULT,
    OK,
    RUN_ERROR,
    STATUSES,
)
from farm.devices.gate import GateError
from farm.devices.timing import TimingConfig
from farm.errors import (
    BenchmarkError,
    DiskFull,
    LastingFault,
    MissingPrerequisite,
    RoundFailed,
    WeightsError,
)
from farm.execution.pool import DevicePool
from farm.execution.scheduler import Outcome, RoundScheduler, shared
from farm.machine import targets
from farm.pipelines import catalog
from farm.report.progress import Progress
from farm.search.plans import RoundPlan, SeenSchedules
from farm.store.samples import SampleStore, cause
from farm.testing import (
    FakeCluster,
    ScriptedTrainer,
    SyntheticBuilder,
    open_synthetic,
    synthetic_infos,
)
from farm.tuning.loop import autotune
from farm.tuning.rows import stop_if_all_failed_alike
from farm.tuning.settings import TuneSettings

# --- which failures are lasting (no Ray) ---


def test_prerequisites_full_disks_and_unreadable_weights_are_lasting_a_pipeline_is_not():
    gate = faults.fault_of(GateError("the compile gate's folder /x is foreign: fix it"))
    assert gate is not None and (gate.cause, gate.exit_code) == ("gate-folder", 2)
    compiler = faults.fault_of(MissingPrerequisite("no C++ compiler", cause="compiler"),
                               device="")
    assert compiler is not None and compiler.cause == "compiler" and compiler.device == ""
    disk = faults.fault_of(OSError(errno.ENOSPC, "No space left on device"))
    assert disk is not None and (disk.cause, disk.exit_code) == ("disk-full", 1)
    assert faults.fault_of(DiskFull("full")).exit_code == 1
    assert faults.fault_of(WeightsError("weights file gone")).cause == "weights"
    # the pipeline's own failures are data, and a bug is a bug
    assert faults.fault_of(BenchmarkError("generator x does not build")) is None
    assert faults.fault_of(ValueError("a bug")) is None
    assert faults.fault_of(OSError(errno.EACCES, "denied")) is None
    # a device that cannot be opened is out, whatever typed error says why
    opened = faults.fault_of(BenchmarkError("bad"), device="d@n", opening=True)
    assert opened is not None and opened.device == "d@n"


def test_a_cause_and_an_exit_code_survive_pickling():
    e = pickle.loads(pickle.dumps(MissingPrerequisite("no adb", cause="adb")))
    assert e.cause == "adb" and e.lasting
    stop = pickle.loads(pickle.dumps(LastingFault("no device is left", 1, "disk-full")))
    assert (stop.exit_code, stop.cause, str(stop)) == (1, "disk-full", "no device is left")


def test_the_stop_names_each_cause_once_and_exits_2_for_a_prerequisite():
    gate = faults.Fault("gate-folder", "the gate folder /g is foreign: remove it", 2, "n1",
                        device="cpu@n1")
    disk = faults.Fault("disk-full", "no space left on /tmp", 1, "n2")
    e = faults.stop([gate, gate, disk, gate])
    assert str(e).count("/g is foreign") == 1 and "2 lasting faults" in str(e)
    assert "cpu@n1: the gate folder" in str(e) and "compiles on n2: no space" in str(e)
    assert e.exit_code == 2
    assert faults.stop([disk]).exit_code == 1


def test_a_fault_is_never_a_row_status():
    assert FAULT not in STATUSES


@pytest.mark.parametrize("status, error, key", [
    ("run_error", "run on cpu@a: the pipeline failed in Halide (x) (exit status 3, "
                  "HALIDE_ERROR): Error: out of bounds", "run_error:halide_error"),
    ("run_error", "run on cpu@b: the benchmark was killed by SIGSEGV", "run_error:sigsegv"),
    ("compile_error", "compile (link) on h: WorkFailed: linking failed (exit 1)",
     "compile_error:link"),
    ("compile_timeout", "compile on h: ran out of its 600 s of CPU (--compile-timeout)",
     "compile_timeout:cpu"),
    ("crashed", "compile worker died twice (Ray retried once): x", "crashed:compile-worker"),
    ("run_timeout", "run on x: killed after the 60 s run timeout", "run_timeout"),
    ("ok", None, None),
    ("duplicate", "same schedule features as schedule 3", None),
])
def test_a_failed_rows_cause_is_a_short_stable_key(status, error, key):
    assert cause(status, error) == key


# --- the driver's side, on doubles and a real local Ray ---


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    yield
    ray.shutdown()


def _scheduler(pool):
    return RoundScheduler(pool, threads=2, timing=TimingConfig(), compile_timeout_s=60)


def _plan(spec_for, batch=8):
    return RoundPlan("test", 1, spec_for("median3x3"), batch)


def test_a_device_that_cannot_be_opened_is_out_and_the_other_times_everything(
        local_ray, spec_for):
    good = synthetic_infos(1, node="good", seconds=0.05)
    bad = synthetic_infos(1, node="bad", behavior="unopenable")
    pool = DevicePool.create(good + bad, SyntheticBuilder(0.01), compile_slots=4,
                             opener=open_synthetic)
    try:
        outcomes = _scheduler(pool).run(_plan(spec_for), seen=shared(SeenSchedules()))
        assert [o.status for o in outcomes] == [OK] * 8
        assert {o.measurement.device_id for o in outcomes} == {good[0].id}
        out = [e for e in pool.events if "out of the run" in e]
        assert len(out) == 1 and bad[0].id in out[0] and "synthetic-device" in out[0]
        assert "cannot be opened" in out[0]  # the typed error's own message
    finally:
        pool.shutdown()


def test_a_device_whose_prerequisite_goes_mid_run_hands_its_candidate_on_built(
        local_ray, spec_for):
    good = synthetic_infos(1, node="good", seconds=0.2)
    gone = synthetic_infos(1, node="gone", seconds=0.01, behavior="fault")
    pool = DevicePool.create(good + gone, SyntheticBuilder(0.01), compile_slots=4,
                             opener=open_synthetic)
    try:
        outcomes = _scheduler(pool).run(_plan(spec_for), seen=shared(SeenSchedules()))
        assert [o.status for o in outcomes] == [OK] * 8
        assert all(o.measurement.device_id == good[0].id for o in outcomes)
        assert sum("out of the run" in e for e in pool.events) == 1
        assert [f.cause for f in pool.faults] == ["synthetic-device"]
        # the same fault met again (another candidate in flight on that device) is
        # recorded once
        pool.take_out(pool.faults[0], pool.handles[-1])
        assert len(pool.faults) == 1
    finally:
        pool.shutdown()


def test_with_no_device_left_the_round_stops_naming_the_cause_once(local_ray, spec_for,
                                                                    tmp_path):
    flag = tmp_path / "compiler-gone"
    flag.touch()
    pool = DevicePool.create(synthetic_infos(2, seconds=0.01),
                             SyntheticBuilder(0.01, fault_flag=str(flag)), compile_slots=4,
                             opener=open_synthetic)
    try:
        with pytest.raises(LastingFault) as stopped:
            _scheduler(pool).run(_plan(spec_for), seen=shared(SeenSchedules()))
        message = str(stopped.value)
        assert message.startswith("no device is left (a lasting fault): compiles on ")
        assert message.count("the synthetic compiler is gone") == 1
        assert stopped.value.exit_code == 2 and stopped.value.cause == "synthetic-compiler"
    finally:
        pool.shutdown()


class _BreakAfterRound(Progress):
    """Makes the fault appear once round `after` is done (between rounds)."""

    def __init__(self, flag: Path, after: int):
        super().__init__(io.StringIO(), live=False)
        self.flag, self.after, self.rounds_seen = flag, after, 0

    def round_finished(self, text: str) -> None:
        super().round_finished(text)
        self.rounds_seen += 1
        if self.rounds_seen == self.after:
            self.flag.touch()


def _three_rounds(run: Path, baseline, builder):
    """tune(progress): 3 rounds of 8 of median3x3 in `run` on two synthetic devices that
    `builder` builds for."""
    infos = synthetic_infos(2, seconds=0.01)
    settings = TuneSettings((catalog.resolve("median3x3"),), targets.resolve(None), baseline,
                            rounds=3, batch_size=8, timing=TimingConfig(), retimes=3)

    def tune(progress):
        pool = DevicePool.create(infos, builder, compile_slots=4, opener=open_synthetic)
        try:
            return autotune(run, settings, progress=progress, cluster=FakeCluster(infos),
                            pool=pool, trainer=ScriptedTrainer())
        finally:
            pool.shutdown()

    return tune


def test_a_fault_between_rounds_stops_the_run_uncommitted_and_a_fixed_rerun_goes_on(
        local_ray, baseline, tmp_path):
    flag, run = tmp_path / "compiler-gone", tmp_path / "run"
    tune = _three_rounds(run, baseline, SyntheticBuilder(0.01, fault_flag=str(flag)))
    with pytest.raises(LastingFault) as stopped:
        tune(_BreakAfterRound(flag, after=1))
    assert "Round 2 was not committed (1 round is" in str(stopped.value)
    assert "rerun the same command to resume" in str(stopped.value)
    rows = SampleStore(run / "samples").read().to_pylist()
    assert {r["round"] for r in rows} == {1} and len(rows) == 8  # no round of failures
    assert not (run / "rounds" / "round-000002.json").exists()
    flag.unlink()  # fixed
    summary = tune(Progress(io.StringIO(), live=False))
    assert summary.rounds == 3
    rows = SampleStore(run / "samples").read().to_pylist()
    assert sorted({r["round"] for r in rows}) == [1, 2, 3] and len(rows) == 24
    assert {r["status"] for r in rows} <= {OK, "duplicate"}


def test_a_round_whose_candidates_all_fail_alike_stops_the_run_uncommitted(
        local_ray, baseline, tmp_path):
    """What fails every candidate the same way would fail every round: the run stops at
    the first such round (exit 1, the cause and an error named) instead of committing one
    round of failures after another, and a fixed rerun goes on."""
    flag, run = tmp_path / "linker-broken", tmp_path / "run"
    tune = _three_rounds(run, baseline, SyntheticBuilder(0.01, link_flag=str(flag)))
    with pytest.raises(RoundFailed) as stopped:
        tune(_BreakAfterRound(flag, after=1))
    text = str(stopped.value)
    assert stopped.value.exit_code == 1
    assert "every candidate of round 2 (8) failed the same way (compile_error:link)" in text
    assert "cannot find -lsynthetic" in text and "round 2 was not committed" in text
    rows = SampleStore(run / "samples").read().to_pylist()
    assert {r["round"] for r in rows} == {1}
    flag.unlink()
    assert tune(Progress(io.StringIO(), live=False)).rounds == 3


def test_failures_of_several_causes_or_beside_an_ok_row_do_not_stop_the_run(spec_for):
    def outcome(i, status, error=""):
        return Outcome(i, spec_for("median3x3"), status, error)

    alike = [outcome(i, COMPILE_ERROR, "compile (link): ld failed") for i in range(4)]
    with pytest.raises(RoundFailed):
        stop_if_all_failed_alike(alike, 1, 0, "run")
    stop_if_all_failed_alike(alike[:3], 1, 0, "run")  # too few to tell
    stop_if_all_failed_alike([*alike, outcome(4, OK)], 1, 0, "run")
    stop_if_all_failed_alike([*alike, outcome(4, RUN_ERROR, "exit status 3")], 1, 0, "run")
    timeouts = [outcome(i, COMPILE_TIMEOUT, "ran out of its 240 s of CPU") for i in range(2)]
    skipped = [outcome(i, COMPILE_TIMEOUT, "compile skipped: 2 of its pipeline's candidates")
               for i in range(2, 6)]
    with pytest.raises(RoundFailed, match="raise --compile-timeout"):
        stop_if_all_failed_alike(timeouts + skipped, 1, 0, "run")
    # a pre-training's one seed that never builds is that seed's: it would stop for good
    stop_if_all_failed_alike(alike, 1, 0, "run", min_pipelines=2)
    other = [Outcome(9, spec_for("sobel"), COMPILE_ERROR, "compile (link): ld failed")]
    with pytest.raises(RoundFailed):
        stop_if_all_failed_alike(alike + other, 1, 0, "run", min_pipelines=2)


# --- the real thing: Halide, the gate, a compiler, through the command line ---


def _foreign_folder(path: Path) -> Path:
    """A folder the gate refuses: another user's (as root), else a symlink (refused too)."""
    if os.getuid() == 0:
        path.mkdir(mode=0o700)
        os.chown(path, 65534, 65534)
    else:
        (path.parent / f"{path.name}-target").mkdir()
        path.symlink_to(path.parent / f"{path.name}-target")
    return path


@pytest.mark.parametrize("command", ["autotune", "run"])
def test_a_foreign_gate_folder_refuses_autotune_and_run_in_seconds_with_one_line(
        command, tmp_path):
    gate = _foreign_folder(tmp_path / "gate")
    out = tmp_path / "out"
    args = ["--rounds", "2", "--batch-size", "8"] if command == "autotune" else []
    start = time.monotonic()
    proc = farm(command, "median3x3", *args, "--out", out, env={"FARM_GATE_DIR": str(gate)},
                timeout=300)
    took = time.monotonic() - start
    assert_user_error(proc, f"compile gate's folder {gate}", "FARM_GATE_DIR")
    assert "Traceback" not in proc.stdout + proc.stderr and "ActorDiedError" not in proc.stderr
    assert took < 10, took  # refused before Ray starts (a lasting fault met later in a
    # run stops it too: the slow tests below, and the doubles above)
    assert not list(out.glob("samples/*.parquet"))  # no row committed


def test_the_ndk_removed_from_a_phones_node_is_a_lasting_fault_of_the_build(
        monkeypatch, baseline):
    """The real build of an Android candidate (Halide's codegen for ARM) on a node whose
    NDK went away: a fault naming ANDROID_NDK_ROOT, not a compile_error row."""
    monkeypatch.delenv("ANDROID_NDK_ROOT", raising=False)
    monkeypatch.delenv("ANDROID_NDK_HOME", raising=False)
    spec = catalog.resolve("median3x3")
    from farm.candidate import CandidateSpec

    result, binary, _ = build(CandidateSpec(spec, targets.resolve("arm-64-android"), baseline,
                                            beam_size=1))
    assert result.status == FAULT and not binary
    assert result.fault is not None and result.fault.cause == "ndk"
    assert "ANDROID_NDK_ROOT" in result.fault.message


def _stopped_after_round_1(argv, env, break_it, *words) -> None:
    """Run `farm ARGV` (env `env`), call `break_it` once round 1 is recorded: the run must
    stop with one line holding `words`, exit 2, with round 1's rows only."""
    out = Path(argv[argv.index("--out") + 1])

    def watch():
        try:
            wait_for_file(out / "rounds" / "round-000001.json", 600)
        except TimeoutError:
            return
        break_it()

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    proc = subprocess.Popen([sys.executable, "-m", "farm", *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=900)
    finally:
        kill_all([*descendants(proc.pid), proc.pid])
    watcher.join(5)
    assert proc.returncode == 2, err[-3000:]
    # one error line (the first run with this compiler says it builds the timing harness)
    lines = [ln for ln in err.strip().splitlines()
             if not ln.startswith("building the timing harness")]
    assert len(lines) == 1 and all(w in lines[0] for w in words), err
    assert "Round 2 was not committed" in lines[0]
    rows = SampleStore(out / "samples").read().to_pylist()
    assert {r["round"] for r in rows} == {1} and len(rows) == 8  # no round of failures


@pytest.mark.slow
def test_a_gate_folder_replaced_after_round_1_stops_the_run_and_a_fixed_rerun_goes_on(
        tmp_path):
    gate, out = tmp_path / "gate", tmp_path / "out"
    gate.mkdir(mode=0o700)
    env = dict(os.environ, FARM_GATE_DIR=str(gate), PYTHONUNBUFFERED="1")
    argv = ["autotune", "median3x3", "--rounds", "3", "--batch-size", "8", "--out", str(out)]

    def replace_gate():
        shutil.rmtree(gate)
        _foreign_folder(gate)

    _stopped_after_round_1(argv, env, replace_gate, f"compile gate's folder {gate}")
    # fixed: the same command goes on from round 2
    if gate.is_symlink():
        gate.unlink()
    else:
        shutil.rmtree(gate)
    gate.mkdir(mode=0o700)
    again = subprocess.run([sys.executable, "-m", "farm", *argv], env=env,
                           capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    rows = SampleStore(out / "samples").read().to_pylist()
    assert sorted({r["round"] for r in rows}) == [1, 2, 3]
    crashed = [(r["round"], r["index"], r["error"]) for r in rows if r["status"] == "crashed"]
    assert not crashed, (crashed, again.stderr[-3000:])


@pytest.mark.slow
def test_a_compiler_removed_after_round_1_stops_the_run_naming_cxx(tmp_path):
    """CXX names a wrapper of this machine's compiler that is removed once round 1 is
    done: the next link finds no compiler; the run stops with that line, round 2 unwritten."""
    wrapper = tmp_path / "bin" / "farm-test-c++"
    wrapper.parent.mkdir()
    wrapper.write_text(f"#!/bin/sh\nexec {shutil.which('c++') or shutil.which('g++')} \"$@\"\n")
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    env = dict(os.environ, CXX=str(wrapper), PYTHONUNBUFFERED="1")
    _stopped_after_round_1(["autotune", "median3x3", "--rounds", "3", "--batch-size", "8",
                            "--out", str(tmp_path / "out")], env, wrapper.unlink,
                           "no C++ compiler", "CXX")
