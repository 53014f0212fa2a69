"""The driver's loop with real Ray (local) and synthetic devices and compile tasks:
faults injected for real (failing devices, actors killed with SIGKILL, compile timeouts)."""

import os
import signal
import threading
import time

import pytest
import ray

from farm.candidate import COMPILE_TIMEOUT, DUPLICATE, OK
from farm.devices.timing import TimingConfig
from farm.execution.pool import DevicePool, NoUsableDevice
from farm.execution.scheduler import RoundScheduler, shared
from farm.execution.workers import build_candidate
from farm.model import featurization
from farm.search.plans import RoundPlan, SeenSchedules
from farm.store.samples import cause
from farm.testing import SyntheticBuilder, fake_featurization, open_synthetic, synthetic_infos


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    yield
    ray.shutdown()


def _pool(infos, compile_s=0.05, **policy):
    return DevicePool.create(infos, SyntheticBuilder(compile_s), compile_slots=4,
                             opener=open_synthetic, **policy)


def _run(spec_for, pool, batch=10, compile_timeout_s=60, seen=None):
    scheduler = RoundScheduler(pool, threads=2, timing=TimingConfig(),
                               compile_timeout_s=compile_timeout_s)
    plan = RoundPlan("test", 1, spec_for("median3x3"), batch)
    return scheduler.run(plan, seen=seen if seen is not None else shared(SeenSchedules()))


def test_every_candidate_is_timed_once(spec_for):
    pool = _pool(synthetic_infos(2, seconds=0.05))
    outcomes = _run(spec_for, pool)
    assert [o.status for o in outcomes] == [OK] * 10
    assert sum(h.timed for h in pool.handles) == 10
    assert all(h.timed > 0 for h in pool.handles)  # both devices worked
    pool.shutdown()


def test_a_failing_device_is_quarantined_and_its_work_goes_elsewhere(spec_for):
    good = synthetic_infos(1, node="good", seconds=0.2)
    bad = synthetic_infos(1, node="bad", seconds=0.01, behavior="fail")
    pool = _pool(good + bad, quarantine_s=60)
    outcomes = _run(spec_for, pool)  # the bad one takes work whenever the good one is busy
    assert [o.status for o in outcomes] == [OK] * 10
    assert all(o.measurement.device_id == good[0].id for o in outcomes)
    assert any("quarantined" in e and bad[0].id in e for e in pool.events)
    pool.shutdown()


def test_no_usable_device_left_stops_with_a_clear_error(spec_for):
    pool = _pool(synthetic_infos(2, seconds=0.01, behavior="fail"), quarantine_s=0.1,
                 lost_after=2)
    with pytest.raises(NoUsableDevice, match="no usable device is left"):
        _run(spec_for, pool)


def test_a_device_actor_killed_mid_call_costs_a_retry(spec_for):
    pool = _pool(synthetic_infos(1, seconds=0.5))
    pid = ray.get(pool.handles[0].actor.pid.remote())

    def kill_soon():
        time.sleep(0.8)
        os.kill(pid, signal.SIGKILL)

    threading.Thread(target=kill_soon, daemon=True).start()
    outcomes = _run(spec_for, pool, batch=4)
    assert [o.status for o in outcomes] == [OK] * 4
    assert ray.get(pool.handles[0].actor.pid.remote()) != pid  # Ray restarted it
    pool.shutdown()


def test_a_compile_that_hangs_without_using_cpu_is_cancelled_at_the_wall_backstop(spec_for):
    """A synthetic compile sleeps: no CPU, so only the wall-clock backstop (4 x the compile
    timeout, which counts CPU time; tests/test_gengen.py has the CPU cap) ends it."""
    pool = _pool(synthetic_infos(1, seconds=0.01), compile_s=30)
    start = time.monotonic()
    outcomes = _run(spec_for, pool, batch=3, compile_timeout_s=0.5)
    assert time.monotonic() - start < 15
    assert {o.status for o in outcomes[0:1]} == {COMPILE_TIMEOUT}
    assert "cancelled after 2 s of wall-clock time" in outcomes[0].error
    assert "0.5 s compile timeout, which counts CPU time" in outcomes[0].error
    pool.shutdown()


def test_a_pipeline_whose_compiles_keep_timing_out_has_its_waiting_candidates_skipped(
        spec_for):
    pool = _pool(synthetic_infos(1, seconds=0.01), compile_s=30)
    assert pool.depth < 12  # candidates wait for the device to have room
    outcomes = _run(spec_for, pool, batch=12, compile_timeout_s=0.5)
    assert {o.status for o in outcomes} == {COMPILE_TIMEOUT}
    skipped = [o for o in outcomes if o.error.startswith("compile skipped")]
    # those already given to the device ran into the timeout; the rest were skipped
    assert 12 - 2 * pool.depth <= len(skipped) <= 12 - pool.depth
    assert "2 of its pipeline's candidates had hit the 0.5 s compile timeout" in \
        skipped[0].error and "--compile-timeout" in skipped[0].error
    assert cause(COMPILE_TIMEOUT, skipped[0].error) == "compile_timeout:skipped"
    assert cause(COMPILE_TIMEOUT, outcomes[0].error) == "compile_timeout:wall-clock"
    pool.shutdown()


def test_a_slow_round_says_what_is_compiling_and_for_how_long(spec_for):
    pool = _pool(synthetic_infos(1, seconds=0.01), compile_s=3)
    seen = []
    scheduler = RoundScheduler(pool, threads=2, timing=TimingConfig(), compile_timeout_s=60,
                               on_update=lambda c: seen.append(c.waiting_on), slow_s=1.0)
    plan = RoundPlan("test", 1, spec_for("median3x3"), 2)
    scheduler.run(plan, seen=shared(SeenSchedules()))
    # a notice raised as a 3 s compile hands over to its 0.01 s timing names the timing:
    # read the last one taken during a compile
    notices = [w for w in seen if w is not None and w[0].startswith("compiling")]
    assert notices, seen
    what, since = notices[-1]
    assert what.startswith("compiling median3x3 (beam ") and what.endswith(
        f"on {pool.handles[0].info.id}")
    assert 1.0 <= time.time() - since < 10
    pool.shutdown()


def test_a_schedule_lost_to_a_transient_failure_is_measured_when_drawn_again(spec_for):
    seen = shared(SeenSchedules())
    flaky = _pool(synthetic_infos(1, seconds=0.01, behavior="fail"), quarantine_after=1000)
    lost = _run(spec_for, flaky, batch=4, seen=seen)
    assert [o.status for o in lost] == ["device_lost"] * 4
    assert ray.get(seen.size.remote()) == 0  # released: they say nothing about the schedules
    flaky.shutdown()
    good = _pool(synthetic_infos(1, seconds=0.01))
    again = _run(spec_for, good, batch=4, seen=seen)  # the same seeds draw the same schedules
    assert [o.status for o in again] == [OK] * 4
    assert ray.get(seen.size.remote()) == 4
    good.shutdown()


def test_a_probe_that_draws_a_known_schedule_is_redrawn_before_codegen(spec_for):
    """In-process: autoschedule, claim, redraw and build are one compile task."""
    class Counting(SyntheticBuilder):
        autoschedules = builds = 0

        def autoschedule(self, spec, cpu_limit_s=None):
            self.autoschedules += 1
            return super().autoschedule(spec)

        def build(self, spec, cpu_limit_s=None):
            self.builds += 1
            return super().build(spec)

    builder, seen = Counting(), SeenSchedules()
    plan = RoundPlan("test", 1, spec_for("median3x3"), 4)
    seen.claim(featurization.schedule_key(fake_featurization(plan.spec(2).seed)), 999)
    built, binary, _ = build_candidate(builder, plan, 2, 1, seen)
    assert built.status == OK and built.attempts == 2 and binary
    assert (builder.autoschedules, builder.builds) == (2, 1)  # the twin never reached codegen
    assert built.key == featurization.schedule_key(fake_featurization(plan.spec(2, 2).seed))
    beam, _, _ = build_candidate(builder, plan, 0, 1, seen)  # beam search: never redrawn
    again, _, _ = build_candidate(builder, plan, 0, 1, seen)  # (a worker retried: its own)
    assert beam.status == again.status == OK
    twin, _, _ = build_candidate(builder, RoundPlan("test", 2, spec_for("median3x3"), 4), 0,
                                 1, seen)
    assert twin.status == DUPLICATE and twin.duplicate_of == plan.owner(0)


def test_no_schedule_gets_two_ok_rows_across_compile_workers(spec_for):
    """Three schedules in the whole space, 12 probes compiled at once on several workers:
    three are timed, the rest are duplicates caught before codegen."""
    pool = DevicePool.create(synthetic_infos(2, seconds=0.01), SyntheticBuilder(0.05,
                             distinct=3), compile_slots=8, opener=open_synthetic)
    outcomes = _run(spec_for, pool, batch=12)
    ok = [o for o in outcomes if o.status == OK]
    keys = [featurization.schedule_key(o.build.schedule.featurization) for o in ok]
    assert len(keys) == len(set(keys)) == 4  # three a probe can draw, and beam search's
    assert {o.status for o in outcomes} == {OK, DUPLICATE}
    assert all(o.build.codegen_s is None for o in outcomes if o.status == DUPLICATE
               and o.index != 0)
    pool.shutdown()


def test_a_device_that_hangs_past_its_run_timeout_is_restarted_and_its_work_lost(spec_for):
    """The actor's watchdog ends it (Ray restarts it); the candidate is retried, then
    recorded as device_lost, and the round goes on."""
    pool = _pool(synthetic_infos(1, behavior="hang"), run_grace_s=0.5)
    scheduler = RoundScheduler(pool, threads=2, timing=TimingConfig(timeout_s=0.5),
                               compile_timeout_s=60)
    start = time.monotonic()
    outcomes = scheduler.run(RoundPlan("test", 1, spec_for("median3x3"), 1),
                             seen=shared(SeenSchedules()))
    assert [o.status for o in outcomes] == ["device_lost"]
    assert "tried 2 times" in outcomes[0].error and time.monotonic() - start < 60
    pool.shutdown()


def test_a_worker_killed_for_memory_is_said_to_be_so():
    """Ray's memory monitor killing the device actor read as a lost device
    ("ActorUnavailableError ... The actor is restarting"), memory never named."""
    import ray.exceptions

    from farm.execution.workers import MEMORY_KILLED, describe_death
    from farm.store.samples import cause

    died = ray.exceptions.RayError("The actor died. Worker exit type: NODE_OUT_OF_MEMORY. "
                                   "Memory on the node (IP: 10.0.0.1) ... " + "x" * 5000)
    assert describe_death(died) == MEMORY_KILLED
    assert "memory" not in describe_death(ValueError("The actor is restarting"))
    assert cause("device_lost", f"device cpu@vm: {MEMORY_KILLED} (tried 3 times)") == \
        "device_lost:memory"
    assert cause("compile_error", f"compile (memory): {MEMORY_KILLED}") == \
        "compile_error:memory"


@ray.remote(num_cpus=0)
class _Flaky:
    """Answers its `failures` first calls with an error, as a restarting actor's first
    calls may."""

    def __init__(self, failures: int):
        self.left = failures

    def call(self) -> str:
        self.left -= 1
        if self.left >= 0:
            raise RuntimeError("the actor is restarting")
        return "up"


def _wait_settled(pool, handle, timeout=30):
    end = time.monotonic() + timeout
    while handle.rejoin is not None and time.monotonic() < end:
        pool.settle()
        time.sleep(0.05)


def test_a_restarted_device_takes_work_only_once_its_first_call_answered(monkeypatch):
    from farm.execution import pool as pool_module

    monkeypatch.setattr(pool_module, "REJOIN_PAUSE_S", 0.0)
    pool = _pool(synthetic_infos(1, seconds=0.01))
    handle = pool.handles[0]
    flaky = _Flaky.remote(2)
    pool.rejoin(handle, flaky.call.remote)
    assert pool.acquire() is None  # no work while it rejoins
    _wait_settled(pool, handle)
    assert handle.rejoin is None and handle.failures == 0  # two failed first calls are free
    assert pool.acquire() is handle
    pool.shutdown()


def test_a_device_whose_restarted_actor_never_answers_counts_a_failure(monkeypatch):
    from farm.execution import pool as pool_module

    monkeypatch.setattr(pool_module, "REJOIN_PAUSE_S", 0.0)
    pool = _pool(synthetic_infos(1, seconds=0.01))
    handle = pool.handles[0]
    flaky = _Flaky.remote(pool_module.REJOIN_TRIES)
    pool.rejoin(handle, flaky.call.remote)
    _wait_settled(pool, handle)
    assert handle.rejoin is None and handle.failures == 1
    assert "the actor is restarting" in handle.last_error
    pool.shutdown()


def test_a_compile_declares_its_pipelines_measured_peak_within_the_smallest_node(spec_for):
    from farm.candidate import BuildResult
    from farm.execution.memory import DEFAULT_MB, MARGIN, CompileMemory, smallest_node_mb

    memory = CompileMemory(cap_mb=4096)
    probe, beam = spec_for("median3x3", beam_size=1), spec_for("median3x3")
    assert memory.declare_mb(spec_for("sobel")) == DEFAULT_MB
    assert memory.declare_mb(probe) == memory.declare_mb(beam) == DEFAULT_MB  # unmeasured
    memory.measured(beam, BuildResult(OK, memory_mb=2000.0))
    memory.measured(beam, BuildResult(OK, memory_mb=1500.0))  # the peak is kept
    assert memory.declare_mb(beam) == 2000.0 * MARGIN
    assert memory.declare_mb(probe) == DEFAULT_MB  # a probe is measured on its own
    memory.measured(beam, BuildResult(OK, memory_mb=9000.0))
    assert memory.declare_mb(beam) == 4096  # never more than a node has
    assert memory.options(beam) == {"memory": 4096 << 20}
    killed = spec_for("sobel")
    memory.killed(killed)  # killed for memory before it was measured: it runs alone next
    assert memory.declare_mb(killed) == 4096
    assert 0 < smallest_node_mb() < 2**40 / 2**20  # this test's Ray: one node


def test_compile_tasks_declare_memory_and_rows_record_the_peak(spec_for, tmp_path,
                                                               monkeypatch):
    from farm.execution.memory import PEAKS_FILE, CompileMemory

    monkeypatch.setenv("FARM_CACHE_DIR", str(tmp_path))
    pool = _pool(synthetic_infos(1, seconds=0.01))
    outcomes = _run(spec_for, pool, batch=3)
    assert [o.status for o in outcomes] == [OK] * 3
    assert pool.memory.cap_mb is not None and pool.memory.cap_mb > 0
    expected: dict = {}  # the peak of each kind of compile (beam search, probe)
    for o in outcomes:
        key = CompileMemory._key(o.spec)
        expected[key] = max(expected.get(key, 0.0), o.build.memory_mb)
    assert pool.memory.peaks == expected and all(v >= 64 for v in expected.values())
    pool.shutdown()
    # kept for the next command on this machine: its first compiles declare them
    again = _pool(synthetic_infos(1, seconds=0.01))
    assert again.memory.peaks == expected
    assert again.memory.declare_mb(outcomes[0].spec) > 0
    again.shutdown()
    (tmp_path / "memory" / PEAKS_FILE).write_text('[["x", true, "NaN"], 7, {}]')
    assert CompileMemory.kept(tmp_path / "memory" / PEAKS_FILE).peaks == {}  # damaged: none
