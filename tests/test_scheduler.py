"""The driver's loop with real Ray (local) and synthetic devices and compile tasks:
faults injected for real (failing devices, actors killed with SIGKILL, compile timeouts)."""

import os
import signal
import threading
import time

import pytest
import ray

from farm.candidate import COMPILE_TIMEOUT, OK
from farm.devices.synthetic import synthetic_infos
from farm.plan import RoundPlan, SeenSchedules
from farm.pool import DevicePool, SyntheticBuilder
from farm.scheduler import NoUsableDevice, RoundScheduler
from farm.timing import TimingConfig


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    yield
    ray.shutdown()


def _run(spec_for, pool, batch=10, compile_s=0.05, compile_timeout_s=60, seen=None):
    scheduler = RoundScheduler(SyntheticBuilder(4, compile_s), pool, threads=2,
                               timing=TimingConfig(), compile_timeout_s=compile_timeout_s)
    plan = RoundPlan("test", 1, spec_for("median3x3"), batch,
                     seen if seen is not None else SeenSchedules())
    return scheduler.run(plan)


def test_every_candidate_is_timed_once(spec_for):
    pool = DevicePool.create(synthetic_infos(2, seconds=0.05), {})
    outcomes = _run(spec_for, pool)
    assert [o.status for o in outcomes] == [OK] * 10
    assert sum(h.timed for h in pool.handles) == 10
    assert all(h.timed > 0 for h in pool.handles)  # both devices worked
    pool.shutdown()


def test_a_failing_device_is_quarantined_and_its_work_goes_elsewhere(spec_for):
    good = synthetic_infos(1, node="good", seconds=0.2)
    bad = synthetic_infos(1, node="bad", seconds=0.01, behavior="fail")
    pool = DevicePool.create(good + bad, {}, quarantine_s=60)
    outcomes = _run(spec_for, pool)  # the bad one takes work whenever the good one is busy
    assert [o.status for o in outcomes] == [OK] * 10
    assert all(o.measurement.device_id == good[0].id for o in outcomes)
    assert any("quarantined" in e and bad[0].id in e for e in pool.events)
    pool.shutdown()


def test_no_usable_device_left_stops_with_a_clear_error(spec_for):
    pool = DevicePool.create(synthetic_infos(2, seconds=0.01, behavior="fail"), {},
                             quarantine_s=0.1, lost_after=2)
    with pytest.raises(NoUsableDevice, match="no usable device is left"):
        _run(spec_for, pool)


def test_a_device_actor_killed_mid_call_costs_a_retry(spec_for):
    pool = DevicePool.create(synthetic_infos(1, seconds=0.5), {})
    pid = ray.get(pool.handles[0].actor.pid.remote())

    def kill_soon():
        time.sleep(0.8)
        os.kill(pid, signal.SIGKILL)

    threading.Thread(target=kill_soon, daemon=True).start()
    outcomes = _run(spec_for, pool, batch=4)
    assert [o.status for o in outcomes] == [OK] * 4
    assert ray.get(pool.handles[0].actor.pid.remote()) != pid  # Ray restarted it
    pool.shutdown()


def test_compile_timeout_kills_the_work(spec_for):
    pool = DevicePool.create(synthetic_infos(1, seconds=0.01), {})
    start = time.monotonic()
    outcomes = _run(spec_for, pool, batch=3, compile_s=30, compile_timeout_s=1.0)
    assert time.monotonic() - start < 15
    assert {o.status for o in outcomes[0:1]} == {COMPILE_TIMEOUT}
    assert "1 s compile timeout" in outcomes[0].error
    pool.shutdown()


def test_a_schedule_lost_to_a_transient_failure_is_measured_when_drawn_again(spec_for):
    seen = SeenSchedules()
    flaky = DevicePool.create(synthetic_infos(1, seconds=0.01, behavior="fail"), {},
                              quarantine_after=1000)
    lost = _run(spec_for, flaky, batch=4, seen=seen)
    assert [o.status for o in lost] == ["device_lost"] * 4
    assert len(seen) == 0  # released: they say nothing about the schedules
    flaky.shutdown()
    good = DevicePool.create(synthetic_infos(1, seconds=0.01), {})
    again = _run(spec_for, good, batch=4, seen=seen)  # the same seeds draw the same schedules
    assert [o.status for o in again] == [OK] * 4
    assert len(seen) == 4
    good.shutdown()
