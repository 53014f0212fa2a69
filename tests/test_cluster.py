"""Two Ray nodes on one machine: discovery on each node, and candidates timed on both."""

import os
import socket
import subprocess
import sys

import pytest
from clitools import assert_user_error, farm
from proctools import kill_device_actor_mid_timing
from raycluster import LocalCluster, auth_env

from farm.store.samples import SampleStore

NODE = socket.gethostname().split(".")[0]


@pytest.fixture(scope="module")
def cluster():
    c = LocalCluster(workers=1, cpus=1)
    yield c
    c.stop()


def test_devices_lists_both_nodes_cpus(cluster):
    out = farm("devices", "--address", cluster.address, env=auth_env(), check=0).stdout
    ids = [line.split()[0] for line in out.splitlines()[1:] if line.startswith("cpu@")]
    assert sorted(ids) == sorted([f"cpu@{NODE}", f"cpu@{NODE}-2"]), out


def test_devices_shows_who_holds_a_device_read_on_its_node(cluster):
    """The lease of the worker node's device, held here (the nodes share this machine and
    the tests' FARM_LEASE_DIR): `farm devices --address` reads it on that node."""
    from farm.execution.leases import Holder, Lease

    lease = Lease(f"cpu@{NODE}-2", Holder.here("/runs/someone-elses"))
    with lease.use():
        out = farm("devices", "--address", cluster.address, env=auth_env(), check=0).stdout
    lease.release()
    held = [line for line in out.splitlines() if "/runs/someone-elses" in line]
    assert len(held) == 1 and held[0].startswith(f"cpu@{NODE}-2 "), out
    after = farm("devices", "--address", cluster.address, env=auth_env(), check=0).stdout
    assert "no job holds or waits for a device now" in after


def test_autotune_times_on_both_nodes(cluster, tmp_path):
    run = tmp_path / "run"
    farm("autotune", "median3x3", "--rounds", "1", "--batch-size", "8", "--address",
         cluster.address, "--out", run, env=auth_env(), check=0)
    rows = SampleStore(run / "samples").read().to_pylist()
    assert len(rows) == 8
    ok = [r for r in rows if r["status"] == "ok"]
    assert len({r["device_id"] for r in ok}) >= 2, [r["device_id"] for r in ok]
    assert len({r["node_id"] for r in ok}) == 2


def test_dead_address_is_a_quick_clear_error():
    proc = farm("devices", "--address", "127.0.0.1:9", timeout=60)
    assert_user_error(proc, "127.0.0.1:9", "nothing answers")


def _silent_address() -> str:
    """host:port where nothing listens (a head that went away)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def quick_watch(monkeypatch):
    from farm.execution import cluster

    monkeypatch.setattr(cluster, "HEAD_WATCH_S", 0.05)
    monkeypatch.setattr(cluster, "HEAD_LOST_GRACE_S", 0.3)
    monkeypatch.setattr(cluster, "_lost_head", [])
    monkeypatch.setattr(cluster, "_exit_when_stuck", [])
    interrupts = []
    monkeypatch.setattr(cluster._thread, "interrupt_main", lambda: interrupts.append(1))
    return cluster, interrupts


def test_a_library_caller_gets_the_interrupt_of_a_lost_head_but_is_never_ended(quick_watch):
    """In a notebook's kernel the watcher interrupts the call and stops; only the command
    line (exit_when_stuck) lets it end a process that Ray keeps stuck."""
    import threading

    cluster, interrupts = quick_watch
    watcher = threading.Thread(target=cluster._watch_head,
                               args=(_silent_address(), threading.Event()))
    watcher.start()
    watcher.join(timeout=10)  # had it called os._exit, this test process would be gone
    assert not watcher.is_alive() and interrupts == [1]
    assert "lost the Ray cluster" in cluster.lost_head()


def test_a_shut_down_cluster_is_no_longer_watched(quick_watch):
    import threading

    cluster, interrupts = quick_watch
    unwatch = threading.Event()
    watcher = threading.Thread(target=cluster._watch_head, args=(_silent_address(), unwatch))
    watcher.start()
    unwatch.set()  # what Cluster.shutdown does
    watcher.join(timeout=5)
    assert not watcher.is_alive() and interrupts == [] and cluster.lost_head() is None


def _killed_mid_timing(cluster, *args):
    """`farm ARGS --address` with a device actor SIGKILLed while it times: (exit code,
    stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "farm", *map(str, args), "--address",
                             cluster.address], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ, **auth_env()))
    try:
        kill_device_actor_mid_timing([p.pid for p in cluster.procs])
        out, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    return proc.returncode, out, err


def test_farm_run_retries_a_device_actor_killed_mid_timing(cluster, tmp_path):
    code, out, err = _killed_mid_timing(cluster, "run", "median3x3", "--out", tmp_path)
    assert code == 0, err[-3000:]
    assert "autoscheduled:" in out and "manual:" in out and "failed" not in out, out


def test_farm_bench_retries_a_device_actor_killed_mid_timing(cluster, tmp_path):
    code, out, err = _killed_mid_timing(cluster, "bench", "median3x3", "--repeats", "3",
                                        "--device", f"cpu@{NODE}", "--out", tmp_path)
    assert code == 0, err[-3000:]
    row = next(line for line in out.splitlines() if line.startswith("median3x3"))
    assert " - " not in f" {row} ", out  # every variant has its re-timings


@pytest.mark.slow
def test_a_worker_node_lost_mid_round_leaves_and_its_work_is_redone(tmp_path):
    """Every Ray process of the worker node SIGKILLed mid-round (a host that reboots): its
    device leaves, its candidates are built and timed on the head, and every row is there
    once."""
    import psutil
    from proctools import wait_for_process

    c = LocalCluster(workers=1, cpus=1)
    run = tmp_path / "run"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "farm", "autotune", "median3x3", "--rounds", "2",
             "--batch-size", "8", "--address", c.address, "--out", str(run)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=dict(os.environ, **auth_env(), PYTHONUNBUFFERED="1"))
        worker = psutil.Process(c.procs[1].pid)
        wait_for_process(worker.pid, "ray::DeviceActor", timeout=300)  # it has work
        wait_for_process(worker.pid, "ray::candidate_task", timeout=300)
        for p in [*worker.children(recursive=True), worker]:
            p.kill()
        out, err = proc.communicate(timeout=900)
    finally:
        c.stop()
    assert proc.returncode == 0, err[-3000:]
    rows = SampleStore(run / "samples").read().to_pylist()
    assert len(rows) == 16 and len({r["sample_id"] for r in rows}) == 16
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) >= 12, [(r["status"], r["error"]) for r in rows if r["status"] != "ok"]
    # round 2 is timed on the head's device alone (which of the two names it has depends
    # on the nodes' ports)
    used = {n: {r["device_id"] for r in ok if r["round"] == n} for n in (1, 2)}
    assert len(used[2]) == 1 and used[2] <= {f"cpu@{NODE}", f"cpu@{NODE}-2"}, used
    said = out + err
    assert "cpu@" in said and ("lost" in said or "disappeared" in said), said[-3000:]


@pytest.mark.slow
def test_a_lost_head_is_a_clear_error_and_the_run_resumes(tmp_path):
    """The head's Ray processes SIGKILLed mid-round: within a minute the driver says so in
    one line (exit 1), keeps what it committed, and the same command on a new cluster
    finishes the run."""
    import psutil
    from proctools import wait_for_file

    run = tmp_path / "run"
    args = ["autotune", "median3x3", "--rounds", "3", "--batch-size", "6", "--out", str(run)]
    c = LocalCluster(workers=0, cpus=2)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "farm", *args, "--address", c.address],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=dict(os.environ, **auth_env(), PYTHONUNBUFFERED="1"))
        wait_for_file(run / "samples" / "round-000001.parquet")
        head = psutil.Process(c.procs[0].pid)
        for p in [*head.children(recursive=True), head]:
            p.kill()
        out, err = proc.communicate(timeout=180)
    finally:
        c.stop()
    assert proc.returncode == 1, (out[-2000:], err[-3000:])
    last = err.strip().splitlines()[-1]
    assert "lost the Ray cluster" in last and "rerun the same command" in last, err[-3000:]
    assert "Traceback" not in err
    committed = SampleStore(run / "samples").committed_rounds()
    assert committed and committed[0] == 1
    c2 = LocalCluster(workers=0, cpus=2)
    try:
        farm(*args, "--address", c2.address, env=auth_env(), check=0)
    finally:
        c2.stop()
    rows = SampleStore(run / "samples").read().to_pylist()
    assert len(rows) == 18 and len({r["sample_id"] for r in rows}) == 18
