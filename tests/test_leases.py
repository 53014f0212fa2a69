"""Device leases (farm.execution.leases): one job times a device at a time, jobs sharing a
device alternate, a dead holder's lease is free at once, and every lease is logged."""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import ray

from farm.devices.timing import TimingConfig
from farm.execution import leases
from farm.execution.leases import Holder, Lease
from farm.execution.pool import DevicePool
from farm.machine import targets
from farm.testing import SyntheticBuilder, open_synthetic, synthetic_infos


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("FARM_LEASE_DIR", str(tmp_path / "leases"))
    return leases.lease_dir()


def _lease(folder, run, **options):
    return Lease("phone@node", Holder.here(run), folder, **options)


def _time(lease, seconds, spans, who):
    with lease.use():
        start = time.monotonic()
        time.sleep(seconds)
        spans.append((who, start, time.monotonic()))


def test_a_held_device_waits_and_the_wait_is_shown(folder):
    a, b = _lease(folder, "run-a"), _lease(folder, "run-b")
    spans: list = []
    with a.use():
        t = threading.Thread(target=_time, args=(b, 0.01, spans, "b"))
        t.start()
        time.sleep(0.5)
        assert not spans  # b waits while a holds it
        seen = leases.state("phone@node", folder)
        assert seen.holder is not None and seen.holder.run == "run-a"
        assert [w.run for w in seen.waiting] == ["run-b"]
        assert a.wanted()
    t.join(5)
    assert spans and b.waited_s >= 0.4
    a.release(), b.release()
    assert leases.state("phone@node", folder).holder is None


def test_two_jobs_sharing_a_device_alternate(folder):
    jobs = {"a": _lease(folder, "run-a"), "b": _lease(folder, "run-b")}
    spans: list = []
    end = time.monotonic() + 3.0

    def job(who):
        while time.monotonic() < end:  # always more to time: it never idles
            _time(jobs[who], 0.02, spans, who)

    threads = [threading.Thread(target=job, args=(w,)) for w in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    spans.sort(key=lambda s: s[1])
    for (_, _, end_1), (_, start_2, _) in itertools.pairwise(spans):
        assert start_2 >= end_1  # never two at once
    busy = {w: sum(e - s for who, s, e in spans if who == w) for w in jobs}
    share = busy["a"] / (busy["a"] + busy["b"])
    assert 0.4 <= share <= 0.6, busy
    switches = sum(x[0] != y[0] for x, y in itertools.pairwise(spans))
    assert switches >= 0.8 * (len(spans) - 1)  # they take turns, timing by timing
    for lease in jobs.values():
        lease.release()


def test_an_idle_holder_gives_its_lease_up_after_lingering_and_logs_it(folder):
    a = _lease(folder, "run-a", linger_s=0.3)
    with a.use():
        pass
    assert leases.state("phone@node", folder).holder is not None  # it lingers
    time.sleep(1.0)
    assert leases.state("phone@node", folder).holder is None
    [line] = leases.history("phone@node", folder)
    assert line["run"] == "run-a" and line["ended"] == "released"
    assert line["device"] == "phone@node" and line["from"] <= line["to"]


def test_a_killed_holders_lease_is_free_at_once_and_logged_by_the_next(folder, tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from farm.execution.leases import Holder, Lease
        lease = Lease("phone@node", Holder.here("killed-run"), {str(folder)!r})
        with lease.use():
            print("held", flush=True)
            time.sleep(3600)
    """)
    holder = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert leases.state("phone@node", folder).holder.run == "killed-run"
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        assert leases.state("phone@node", folder).holder is None  # its process is gone
        b = _lease(folder, "run-b")
        start = time.monotonic()
        with b.use():
            assert time.monotonic() - start < 10
        b.release()
    finally:
        holder.kill()
    died, released = leases.history("phone@node", folder)
    assert died["run"] == "killed-run" and died["ended"] == "holder died"
    assert released["run"] == "run-b" and released["ended"] == "released"


def test_a_planted_symlink_is_never_written_through(folder, tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (folder / "phone_node.holder").symlink_to(victim)
    a = _lease(folder, "run-a")
    with a.use():
        pass
    a.release()
    assert victim.read_text() == "keep"


@pytest.fixture(scope="module")
def ray_leases(tmp_path_factory):
    """A local Ray whose workers use a lease folder of this module's (set before Ray
    starts: its workers take the environment then)."""
    folder = tmp_path_factory.mktemp("ray-leases")
    old = os.environ.get("FARM_LEASE_DIR")
    os.environ["FARM_LEASE_DIR"] = str(folder)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    yield folder
    ray.shutdown()
    if old is None:
        os.environ.pop("FARM_LEASE_DIR")
    else:
        os.environ["FARM_LEASE_DIR"] = old


def test_two_jobs_pools_on_one_device_never_time_at_once_on_ray(ray_leases):
    """Two pools (as two jobs' would be) over one synthetic device: their device actors
    take turns under the lease, and every timing's interval is recorded."""
    [info] = synthetic_infos(1, node="lease-test", seconds=0.05)
    pools = [DevicePool.create([info], SyntheticBuilder(), opener=open_synthetic,
                               holder=f"run-{w}") for w in "ab"]
    calls = [(w, pool.handles[0].actor.run.remote(bytes([i]), 1, TimingConfig()))
             for i in range(12) for w, pool in zip("ab", pools, strict=True)]
    timed = [(w, ray.get(ref)) for w, ref in calls]
    spans = sorted((m.timing_started_at, m.timing_ended_at, w) for w, m in timed)
    assert all(s is not None and e is not None and s <= e for s, e, _ in spans)
    for (_, end_1, _), (start_2, _, _) in itertools.pairwise(spans):
        assert start_2 >= end_1  # the device timed one binary at a time
    switches = sum(x[2] != y[2] for x, y in itertools.pairwise(spans))
    assert switches >= 12  # they alternated, not one pool's twelve then the other's
    holders = {line["run"] for line in leases.history(info.id, ray_leases)}
    assert holders == {"run-a", "run-b"}
    for pool in pools:
        pool.shutdown()
    assert leases.state(info.id, ray_leases).holder is None


@pytest.mark.slow
def test_a_killed_drivers_lease_is_free_within_10_s(tmp_path):
    """Real Ray: a driver whose device actor holds a device's lease (timing a hanging
    synthetic device) is killed with -9; Ray ends its actors, and the kernel their lock."""
    folder = tmp_path / "leases"
    script = textwrap.dedent(f"""
        import os, time
        os.environ["FARM_LEASE_DIR"] = {str(folder)!r}
        import ray
        from farm.devices.timing import TimingConfig
        from farm.execution import leases
        from farm.execution.pool import DevicePool
        from farm.testing import SyntheticBuilder, open_synthetic, synthetic_infos
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
        [info] = synthetic_infos(1, node="killed", behavior="hang")
        pool = DevicePool.create([info], SyntheticBuilder(), opener=open_synthetic,
                                 holder="killed-driver")
        pool.handles[0].actor.run.remote(b"x", 1, TimingConfig())
        while leases.state(info.id).holder is None:
            time.sleep(0.1)
        print("held", flush=True)
        time.sleep(3600)
    """)
    driver = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        assert driver.stdout.readline().strip() == "held"
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        killed = time.monotonic()
        lease = Lease("syn0@killed", Holder.here("next-job"), folder)
        with lease.use():
            waited = time.monotonic() - killed
        lease.release()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)
    assert waited <= 10, waited
    logged = leases.history("syn0@killed", folder)
    assert any(x["run"] == "killed-driver" and x["ended"] == "holder died"
               for x in logged), (logged, waited)


def test_an_unusable_lease_folder_is_refused_before_ray_starts(tmp_path):
    from clitools import assert_user_error, farm

    (tmp_path / "file").write_text("not a folder")
    proc = farm("autotune", "median3x3", "--out", tmp_path / "run",
                env={"FARM_LEASE_DIR": str(tmp_path / "file")}, timeout=60)
    assert_user_error(proc, "device lease folder", "FARM_LEASE_DIR")


def test_a_lock_that_is_no_file_is_a_lease_error_naming_it(folder):
    """`.lock` as a folder: four device_lost rows and exit 0 before (IsADirectoryError)."""
    (folder / "phone_node.lock").mkdir()
    with pytest.raises(leases.LeaseError, match=r"phone_node\.lock cannot be used"), \
            _lease(folder, "run-a").use():
        pass


def test_special_files_and_links_in_the_lease_folder_neither_hang_nor_are_followed(
        folder, tmp_path):
    os.mkfifo(folder / "phone_node.holder")  # read by `farm devices`: hung it for good
    done = []
    t = threading.Thread(target=lambda: done.append(leases.state("phone@node", folder,
                                                                 recent=5)))
    t.start()
    t.join(10)
    assert done and done[0].holder is None
    (folder / "phone_node.holder").unlink()
    target = tmp_path / "elsewhere"
    target.mkdir()
    (folder / "phone_node.waiting").symlink_to(target)  # files were made and deleted there
    with pytest.raises(leases.LeaseError, match="waiting list"), \
            _lease(folder, "run-a").use():
        pass
    assert not list(target.iterdir())


def test_a_lease_log_or_waiting_list_that_is_no_file_neither_hangs_nor_holds_the_device(
        folder, tmp_path, capfd):
    """Found by tests/perf/fuzz_stores.py: a FIFO as the log hung the lease's end for good,
    a folder or link there gave a traceback, and a file as the waiting list a traceback in
    `farm devices`. The lease's end drops the lock whatever happens to its log line."""
    for plant in (os.mkfifo, os.mkdir, lambda p: os.symlink(tmp_path / "elsewhere", p)):
        log = folder / "phone_node.log"
        plant(log)
        lease = _lease(folder, "run-a")
        ended = threading.Event()

        def take_and_end(lease=lease, ended=ended):
            with lease.use():
                pass
            lease.release()  # (the lease is logged as it ends)
            ended.set()

        threading.Thread(target=take_and_end, daemon=True).start()
        assert ended.wait(20) and not lease.held  # no hang, the lock dropped
        assert "phone_node.log" in capfd.readouterr().err  # the lost line said
        with _lease(folder, "run-b").use():  # the device is free
            pass
        (log.rmdir if log.is_dir() and not log.is_symlink() else log.unlink)()
    assert not (tmp_path / "elsewhere").exists()
    import shutil

    shutil.rmtree(folder / "phone_node.waiting")
    (folder / "phone_node.waiting").write_text("not a folder")
    assert leases.state("phone@node", folder).waiting == ()


def test_the_lease_folder_is_held_as_the_gates(tmp_path, monkeypatch):
    """Its owner and mode are checked: a planted holder file showed a false holder."""
    path = tmp_path / "leases"
    path.mkdir(mode=0o777)
    os.chmod(path, 0o777)
    monkeypatch.setenv("FARM_LEASE_DIR", str(path))
    assert leases.lease_dir() == path and (path.stat().st_mode & 0o777) == 0o700
    if os.getuid() == 0:  # only root can give a folder away
        os.chown(path, 65534, 65534)
        with pytest.raises(leases.LeaseError, match="belongs to uid 65534"):
            leases.lease_dir()


def test_an_embedded_clusters_job_is_not_shown_as_a_ray_job(ray_leases):
    """`farm devices` showed RAY JOB 01000000 for every local job: the one job of every
    embedded cluster. On a shared cluster the job is shown."""
    from farm.testing import FakeCluster

    shown = {}
    for local in (True, False):
        [info] = synthetic_infos(1, node=f"job-test-{local}", seconds=0.01)
        pool = DevicePool.on_cluster([info], targets.resolve(None), SyntheticBuilder(),
                                     FakeCluster([info], local=local), opener=open_synthetic,
                                     holder="run")
        ray.get(pool.handles[0].actor.run.remote(b"x", 1, TimingConfig()))
        pool.shutdown()
        [line] = leases.history(info.id, ray_leases)
        shown[local] = line["job"]
    assert shown[True] == "" and shown[False] == ray.get_runtime_context().get_job_id()
