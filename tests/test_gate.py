"""The compile gate (farm.devices.gate): pausing compiles while a host device times, safely."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from farm.devices import gate
from farm.devices.gate import GateError

COMPILE = textwrap.dedent("""
    import sys, time
    from farm.devices import gate
    with gate.compiling():
        print("registered", flush=True)
        time.sleep(float(sys.argv[1]))
""")


@pytest.fixture
def gate_dir(tmp_path, monkeypatch):
    folder = tmp_path / "gate"
    monkeypatch.setenv("FARM_GATE_DIR", str(folder))
    return folder


def _compile(seconds=60, env=None, user=None):
    """A process registered as compile work, once it says so."""
    argv = [sys.executable, "-c", COMPILE, str(seconds)]
    if user is not None:
        argv = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    assert proc.stdout.readline().strip() == "registered"
    return proc


def _status(pid):
    return psutil.Process(pid).status()


def _still_stopped_after(pids, seconds):
    """Whether some of `pids` are still stopped `seconds` from now (False as soon as none)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if not any(_status(p) == psutil.STATUS_STOPPED for p in pids if psutil.pid_exists(p)):
            return False
        time.sleep(0.1)
    return True


def test_a_timing_stops_registered_compiles_and_continues_them(gate_dir):
    proc = _compile()
    try:
        with gate.exclusive() as stopped:
            assert stopped == 1 and _status(proc.pid) == psutil.STATUS_STOPPED
        assert _status(proc.pid) != psutil.STATUS_STOPPED
        assert not (gate_dir / "stopped").exists()
    finally:
        proc.kill()


def test_the_folder_is_private(gate_dir):
    gate.gate_dir()
    assert oct(os.stat(gate_dir).st_mode & 0o777) == "0o700"
    os.chmod(gate_dir, 0o777)  # as an older farm left it: ours, so made private again
    gate.gate_dir()
    assert oct(os.stat(gate_dir).st_mode & 0o777) == "0o700"


def test_a_folder_planted_as_a_symlink_is_refused(tmp_path, monkeypatch):
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    (tmp_path / "gate").symlink_to(victim)
    monkeypatch.setenv("FARM_GATE_DIR", str(tmp_path / "gate"))
    with pytest.raises(GateError, match=r"is not a directory \(a symlink or a file\): remove"):
        gate.gate_dir()
    assert not list(victim.iterdir())


def test_a_file_gone_between_listing_and_checking_is_not_an_error(gate_dir, monkeypatch):
    """A timing renames its marker (.stopped-PID) into place and compiles unregister while
    another process checks the folder: CI saw a compile task fail on that race."""
    gate.gate_dir()
    marker = gate_dir / f".stopped-{os.getpid()}"
    marker.write_text("{}")
    listed = list(os.scandir(gate_dir))
    marker.unlink()
    monkeypatch.setattr(gate.os, "scandir", lambda folder: iter(listed))
    assert gate.gate_dir() == gate_dir


@pytest.mark.skipif(os.getuid() != 0, reason="chown to another user needs root")
def test_a_folder_of_another_user_is_refused(gate_dir):
    gate_dir.mkdir(mode=0o700)
    os.chown(gate_dir, 65534, 65534)
    with pytest.raises(GateError, match=r"belongs to uid 65534, not to you"):
        gate.gate_dir()


def test_a_planted_stopped_symlink_is_replaced_not_followed(gate_dir, tmp_path):
    gate.gate_dir()
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    (gate_dir / "stopped").symlink_to(victim)
    proc = _compile()
    try:
        with gate.exclusive():
            assert not (gate_dir / "stopped").is_symlink()
        assert victim.read_text() == "keep me"
    finally:
        proc.kill()


@pytest.mark.skipif(os.getuid() != 0, reason="a process of another user needs root")
def test_a_foreign_process_registered_in_the_folder_is_not_stopped(gate_dir):
    """Another user's pid planted as an entry (with its real start time) is left alone."""
    gate.gate_dir()
    other = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                              "sleep", "30"])
    try:
        time.sleep(0.3)
        start = psutil.Process(other.pid).create_time()
        (gate_dir / "compilers" / f"{other.pid}-{start!r}").touch()
        with gate.exclusive() as stopped:
            assert stopped == 0 and _status(other.pid) != psutil.STATUS_STOPPED
    finally:
        other.kill()


PAUSER = textwrap.dedent("""
    import os, time
    from farm.devices import gate
    gate.start_watchdog()
    with gate.exclusive() as n:
        print(n, flush=True)
        time.sleep(60)
""")


def test_compiles_a_killed_device_left_stopped_are_continued_within_5_s(gate_dir):
    compiles = [_compile(), _compile()]
    pauser = subprocess.Popen([sys.executable, "-c", PAUSER], stdout=subprocess.PIPE, text=True)
    try:
        assert pauser.stdout.readline().strip() == "2"
        assert all(_status(c.pid) == psutil.STATUS_STOPPED for c in compiles)
        pauser.send_signal(signal.SIGKILL)
        pauser.wait()
        assert not _still_stopped_after([c.pid for c in compiles], 5.0)
        assert not (gate_dir / "stopped").exists()
    finally:
        for c in compiles:
            c.kill()
        pauser.kill()


def test_a_timing_first_continues_what_a_dead_device_left_stopped(gate_dir):
    """A marker of a dead owner (its watchdog gone too) is recovered before it is replaced."""
    left = subprocess.Popen(["sleep", "60"])  # stopped by the dead device, not registered
    dead = subprocess.Popen(["true"])
    dead.wait()
    try:
        time.sleep(0.2)
        os.kill(left.pid, signal.SIGSTOP)
        gate.gate_dir()
        (gate_dir / "stopped").write_text(json.dumps({
            "owner": [dead.pid, 1.0], "stopped": [[left.pid, psutil.Process(left.pid)
                                                   .create_time()]]}))
        gate._wait_stopped(left.pid)
        assert _status(left.pid) == psutil.STATUS_STOPPED  # as the dead device left it
        with gate.exclusive() as stopped:
            assert stopped == 0
            assert not _still_stopped_after([left.pid], 1.0)
    finally:
        left.kill()


def test_killing_a_device_actor_more_often_than_ray_restarts_it_leaves_nothing_stopped(
        gate_dir):
    """A real host device actor on Ray, SIGKILLed mid-timing 4 times (Ray restarts it 3
    times): after each kill, the compiles it paused run again within 5 s."""
    import ray

    from farm.devices.host import host_info
    from farm.devices.timing import TimingConfig
    from farm.execution.pool import DevicePool
    from farm.testing import SyntheticBuilder

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             runtime_env={"env_vars": {"FARM_GATE_DIR": str(gate_dir)}})
    compiles = [_compile(300), _compile(300)]
    pids = [c.pid for c in compiles]
    try:
        pool = DevicePool.create([host_info()], SyntheticBuilder())
        actor = pool.handles[0].actor
        script = b"#!/bin/sh\nsleep 60\n"  # a "benchmark" that times for a minute

        def restarted_pid():
            end = time.monotonic() + 60
            while True:
                try:
                    return ray.get(actor.pid.remote(), timeout=60)
                except ray.exceptions.ActorUnavailableError:  # still restarting
                    assert time.monotonic() < end
                    time.sleep(0.5)

        for kill in range(4):
            pid = restarted_pid()
            actor.run.remote(script, 1, TimingConfig(timeout_s=120))
            end = time.monotonic() + 30
            while not all(_status(p) == psutil.STATUS_STOPPED for p in pids):
                assert time.monotonic() < end, f"kill {kill}: the timing never paused them"
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
            assert not _still_stopped_after(pids, 5.0), f"still stopped after kill {kill}"
        with pytest.raises(ray.exceptions.ActorDiedError):  # its restarts are spent
            restarted_pid()
        assert not _still_stopped_after(pids, 1.0)
    finally:
        for c in compiles:
            c.kill()
        ray.shutdown()


@pytest.mark.parametrize("isolation, paused", [("pause", True), ("none", False)])
def test_isolation_decides_whether_a_host_timing_pauses_compiles(gate_dir, isolation, paused):
    """--isolation pause (the default) stops registered compiles while the host times;
    --isolation none leaves them running."""
    import threading

    from farm.devices.host import HostDevice, host_info
    from farm.devices.timing import TimingConfig

    compile_ = _compile()
    try:
        device = HostDevice(host_info(), isolation=isolation)
        script = b"#!/bin/sh\nsleep 2\n"
        timing = threading.Thread(target=device.run, args=(script, 1, TimingConfig(
            timeout_s=30)))
        timing.start()
        time.sleep(1.0)
        assert (_status(compile_.pid) == psutil.STATUS_STOPPED) == paused
        timing.join()
        assert _status(compile_.pid) != psutil.STATUS_STOPPED
    finally:
        compile_.kill()
