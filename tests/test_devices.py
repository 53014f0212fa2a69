"""Devices: discovery and the adb conversation, against a stand-in adb (no phone here)."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from clitools import assert_user_error, farm

from farm.candidate import DEVICE_LOST, OK, RUN_ERROR, RUN_TIMEOUT
from farm.devices import android, timing
from farm.devices.base import DeviceInfo
from farm.devices.timing import HARNESS_EXIT_MEANINGS, HarnessExit, TimingConfig, exit_reason

FAKE_ADB_DIR = Path(__file__).parent / "fake_adb"
NODE = socket.gethostname().split(".")[0]
PIXEL = {"ro.product.model": "Pixel 7", "ro.soc.model": "GS201",
         "ro.product.cpu.abi": "arm64-v8a"}
SNAPDRAGON = {"ro.product.model": "SM-S901B", "ro.soc.model": "SM8450",
              "ro.board.platform": "taro", "ro.product.cpu.abi": "arm64-v8a"}


@pytest.fixture
def fake_adb(tmp_path, monkeypatch):
    """Put the stand-in adb first on PATH; returns a function that sets its phones."""
    config = tmp_path / "adb.json"
    log = tmp_path / "adb.log"

    def phones(*devices):
        config.write_text(json.dumps({"root": str(tmp_path / "phones"),
                                      "devices": list(devices)}))
        return log

    phones()
    env = {"PATH": f"{FAKE_ADB_DIR}{os.pathsep}{os.environ['PATH']}",
           "FAKE_ADB_CONFIG": str(config), "FAKE_ADB_LOG": str(log)}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("ANDROID_NDK_ROOT", raising=False)
    monkeypatch.delenv("ANDROID_NDK_HOME", raising=False)
    monkeypatch.delenv("FARM_ADB", raising=False)
    phones.env = env
    return phones


def test_parse_device_list_handles_every_state():
    text = ("List of devices attached\n"
            "R58M1234ABC            device usb:1-1 product:x model:SM_G9730 transport_id:1\n"
            "emulator-5554\tunauthorized usb:2-1 transport_id:2\n"
            "192.168.1.5:5555       offline transport_id:3\n"
            "ZY22\tno permissions (user in plugdev group; are your udev rules wrong?); "
            "see [http://developer.android.com/tools/device.html]\n\n")
    assert android.parse_device_list(text) == [
        ("R58M1234ABC", "device"), ("emulator-5554", "unauthorized"),
        ("192.168.1.5:5555", "offline"), ("ZY22", "no permissions")]


def test_farm_devices_lists_phones_with_their_problems(fake_adb):
    fake_adb({"serial": "R58M1", "state": "device", "props": SNAPDRAGON},
             {"serial": "emulator-5554", "state": "unauthorized"})
    out = farm("devices", env=fake_adb.env, check=0).stdout
    lines = {ln.split()[0]: ln for ln in out.splitlines()[1:] if ln.strip()}
    assert f"cpu@{NODE}" in lines and "ready" in lines[f"cpu@{NODE}"]
    phone = lines[f"R58M1@{NODE}"]
    assert "android" in phone and "SM-S901B (SM8450)" in phone
    assert "no Android NDK: set ANDROID_NDK_ROOT" in phone
    assert "unauthorized: accept the USB debugging prompt" in lines[f"emulator-5554@{NODE}"]


def test_farm_run_on_a_phone_without_ndk_fails_fast_naming_it(fake_adb):
    fake_adb({"serial": "R58M1", "state": "device", "props": PIXEL})
    proc = farm("run", "median3x3", "--device", f"R58M1@{NODE}", env=fake_adb.env, timeout=60)
    assert_user_error(proc, f"R58M1@{NODE}", "ANDROID_NDK_ROOT")


def test_unknown_device_id_lists_the_known_ones(fake_adb):
    fake_adb({"serial": "R58M1", "state": "device", "props": PIXEL})
    assert_user_error(farm("run", "median3x3", "--device", "nope@x", env=fake_adb.env),
                      "nope@x", f"R58M1@{NODE}")


@pytest.fixture(scope="module")
def host_binary():
    """A real benchmark binary built for this host: the stand-in phone runs it."""
    from farm.build import compiler
    from farm.candidate import RANDOM_PROBE, CandidateSpec
    from farm.machine import targets
    from farm.model import weights
    from farm.pipelines import catalog

    spec = CandidateSpec(catalog.resolve("dilate3x3"), targets.resolve(None),
                         weights.baseline(), seed=3, **RANDOM_PROBE)
    result, binary, _ = compiler.build(spec)
    assert result.ok, result.error
    return binary


def _phone(serial="R58M1"):
    return DeviceInfo(id=f"{serial}@{NODE}", kind="android", node=NODE, serial=serial)


def _log(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_timing_on_a_phone_pushes_runs_and_quotes(fake_adb, host_binary, tmp_path,
                                                  monkeypatch):
    log = fake_adb({"serial": "R58M1", "state": "device", "props": SNAPDRAGON})
    runtime = tmp_path / "hexagon"
    runtime.mkdir()
    for lib in android.HEXAGON_LIBS:
        (runtime / lib).write_bytes(b"\x7fELF fake")
    monkeypatch.setenv("FARM_HEXAGON_RUNTIME", str(runtime))
    device = android.AndroidDevice(_phone())
    timing = TimingConfig(repeats=3, min_sample_ms=1, warmup_ms=1)
    for _ in range(2):
        m = device.run(host_binary, 3, timing)
        assert m.status == OK, (m.error, m.log)
        assert len(m.runtimes_ms) == 3 and m.device_id == f"R58M1@{NODE}"
    calls = _log(log)
    pushes = [c for c in calls if "push" in c]
    assert sum(any(lib in " ".join(c) for lib in android.HEXAGON_LIBS) for c in pushes) == 2
    runs = [c for c in calls if c[2] == "shell" and "./bench-" in c[3]]
    assert len(runs) == 2 and all(c[:2] == ["-s", "R58M1"] for c in runs)
    line = runs[0][3]
    folder = device.remote  # the job's own folder on the phone
    assert folder.startswith(f"/data/local/tmp/halide-farm/{NODE}-{os.getpid()}-")
    assert line.startswith(f"cd {folder} && ")
    assert f"LD_LIBRARY_PATH={folder} " in line
    assert f"ADSP_LIBRARY_PATH='{folder};/vendor/lib/rfsa/adsp;" in line
    assert "HL_NUM_THREADS=3 " in line
    # the binary is removed after each run, and the job's folder at the end
    phone = tmp_path / "phones" / "R58M1"
    assert (phone / folder[1:]).is_dir() and not list((phone / folder[1:]).glob("bench-*"))
    device.close()
    assert not (phone / folder[1:]).exists()


def test_each_job_has_its_own_folder_on_a_phone_and_a_killed_jobs_is_removed(
        fake_adb, host_binary, tmp_path):
    fake_adb({"serial": "R58M1", "state": "device", "props": PIXEL})
    tmp = tmp_path / "phones" / "R58M1" / "data/local/tmp/halide-farm"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a job of this node that was killed: its pid is gone
    # a killed job's folder, another node's, and one whose pid lives on in a new process
    for name in (f"{NODE}-{dead.pid}-123", "other-node-1-2", f"{NODE}-{os.getpid()}-1"):
        (tmp / name).mkdir(parents=True)
    timing = TimingConfig(repeats=1, min_sample_ms=1, warmup_ms=1)
    a, b = android.AndroidDevice(_phone()), android.AndroidDevice(_phone())
    b.remote = b.remote + "-b"  # two jobs' device processes at once
    assert a.run(host_binary, 1, timing).status == OK
    assert b.run(host_binary, 1, timing).status == OK
    left = sorted(p.name for p in tmp.iterdir())
    # this node's dead jobs' folders are gone; another node's and the live jobs' stay
    assert f"{NODE}-{dead.pid}-123" not in left and f"{NODE}-{os.getpid()}-1" not in left
    assert "other-node-1-2" in left
    assert {a.remote.rsplit("/", 1)[1], b.remote.rsplit("/", 1)[1]} <= set(left)
    a.close()
    assert (tmp / b.remote.rsplit("/", 1)[1]).is_dir()  # a's clean-up leaves b's folder


def test_a_phone_that_drops_off_is_device_lost(fake_adb, host_binary):
    fake_adb({"serial": "R58M1", "state": "device", "props": PIXEL,
              "behavior": "offline-on-run"})
    m = android.AndroidDevice(_phone()).run(host_binary, 2, TimingConfig(repeats=2))
    assert m.status == DEVICE_LOST and "offline" in m.error


def test_a_lost_phone_is_handed_back_without_adbs_full_wait_for_the_clean_up(
        fake_adb, host_binary, monkeypatch):
    import time

    monkeypatch.setattr(android, "ADB_TIMEOUT_S", 20.0)
    monkeypatch.setattr(android, "LOST_CLEAN_UP_S", 0.5)
    fake_adb({"serial": "R58M1", "state": "device", "props": PIXEL,
              "behavior": "offline-on-run", "cleanup": "hang"})
    started = time.monotonic()
    m = android.AndroidDevice(_phone()).run(host_binary, 2, TimingConfig(repeats=2))
    assert m.status == DEVICE_LOST and "rm of bench-" in m.log
    assert time.monotonic() - started < 10.0  # not the 20 s adb may take on a live phone


@pytest.mark.parametrize("cleanup", ["fail", "hang"])
def test_a_failed_clean_up_never_decides_the_status(fake_adb, host_binary, monkeypatch,
                                                    cleanup):
    """The rm after a run fails or hangs: the candidate is still ok, with a note in its log;
    a run that timed out stays a run_timeout."""
    monkeypatch.setattr(android, "ADB_TIMEOUT_S", 2.0)
    fake_adb({"serial": "R58M1", "state": "device", "props": PIXEL, "cleanup": cleanup})
    m = android.AndroidDevice(_phone()).run(host_binary, 2, TimingConfig(repeats=2,
                                                                         min_sample_ms=1))
    assert m.status == OK, (m.error, m.log)
    assert "clean-up on R58M1" in m.log and "rm of bench-" in m.log
    fake_adb({"serial": "R58M1", "state": "device", "props": PIXEL, "behavior": "hang",
              "cleanup": cleanup})
    m = android.AndroidDevice(_phone()).run(host_binary, 2, TimingConfig(timeout_s=2))
    assert m.status == RUN_TIMEOUT


def test_a_benchmark_that_prints_adbs_words_is_a_run_error_not_a_lost_phone(fake_adb):
    """Only adb's own messages, as whole lines in its format, mean the phone is gone."""
    fake_adb({"serial": "R58M1", "state": "device", "props": PIXEL})
    script = b"#!/bin/sh\necho 'socket closed; device offline? connection reset' >&2\nexit 3\n"
    m = android.AndroidDevice(_phone()).run(script, 2, TimingConfig(repeats=2))
    assert m.status == RUN_ERROR and "(exit status 3, HALIDE_ERROR)" in m.error, m.error
    assert m.error.endswith(": socket closed; device offline? connection reset"), m.error
    for line in ("adb: device offline", "error: closed", "adb: device 'R58M1' not found",
                 "error: protocol fault (couldn't read status): Connection reset by peer",
                 "adb: error: failed to get feature set: device offline"):
        assert android.ADB_GONE.search(f"some output\n{line}\n"), line
    for line in ("closed", "the file was closed", "warning: device offline soon"):
        assert not android.ADB_GONE.search(f"{line}\n"), line


def test_every_exit_status_of_the_harness_has_a_name_and_a_meaning():
    """farm/devices/harness/timing_main.cpp exits with these (std::exit(N), return N): each is in
    the one table, and a failed run says which it was, with the harness's own line."""
    source = (Path(timing.__file__).parent / "harness" / "timing_main.cpp").read_text()
    used = {int(n) for n in re.findall(r"(?:std::exit\(|return )([1-9]\d*)\)?;", source)}
    assert used == {int(c) for c in HarnessExit} == {2, 3, 4, 5}
    assert set(HARNESS_EXIT_MEANINGS) == set(HarnessExit)
    said = exit_reason(3, "Warning: slow\nhalide_error: Input buffer b0 is accessed at -1\n")
    assert said.startswith("the pipeline failed in Halide") and "HALIDE_ERROR" in said
    assert said.endswith("(exit status 3, HALIDE_ERROR): halide_error: Input buffer b0 is "
                         "accessed at -1"), said
    assert exit_reason(4, "pipeline returned error -3\n") == (
        "the pipeline returned an error (exit status 4, PIPELINE_ERROR): pipeline returned "
        "error -3")
    assert exit_reason(-9) == "the benchmark was killed by SIGKILL"
    assert exit_reason(139, via_shell=True) == "the benchmark was killed by SIGSEGV"
    assert "not found" in exit_reason(127, via_shell=True)
    assert exit_reason(7) == "the benchmark exited with status 7, not one of the harness's own"


def test_a_host_run_that_fails_says_what_the_harness_said(tmp_path):
    from farm.devices.base import HOST
    from farm.devices.host import HostDevice

    info = DeviceInfo(id="cpu@exit-test", kind=HOST, node=NODE)
    script = (b"#!/bin/sh\necho 'FARM_ITERATIONS 1'\n"
              b"echo 'pipeline returned error -27' >&2\nexit 4\n")
    m = HostDevice(info, isolation="none").run(script, 1, TimingConfig(repeats=2))
    assert m.status == RUN_ERROR
    assert m.error == ("run on cpu@exit-test: the pipeline returned an error (exit status 4, "
                       "PIPELINE_ERROR): pipeline returned error -27"), m.error


def test_a_hanging_run_is_killed_at_the_timeout(fake_adb, host_binary):
    fake_adb({"serial": "R58M1", "state": "device", "props": PIXEL, "behavior": "hang"})
    m = android.AndroidDevice(_phone()).run(host_binary, 2, TimingConfig(timeout_s=2))
    assert m.status == RUN_TIMEOUT and "2 s run timeout" in m.error


def test_hvx_target_needs_the_hexagon_runtime(fake_adb):
    from farm.machine import targets

    fake_adb({"serial": "R58M1", "state": "device", "props": PIXEL})
    phone = DeviceInfo(id="R58M1@x", kind="android", node="x", serial="R58M1")
    assert "FARM_HEXAGON_RUNTIME" in phone.problem_for(targets.resolve("arm-64-android-hvx"))
    assert phone.problem_for(targets.resolve("arm-64-android")) == ""
    assert "cannot run" in phone.problem_for(targets.resolve(None))


@pytest.mark.skipif(not os.environ.get("ANDROID_NDK_ROOT"),
                    reason="needs an Android NDK (set ANDROID_NDK_ROOT); none can be "
                           "downloaded on the build machines")
def test_hvx_candidate_links_for_android_with_the_ndk(tmp_path):
    from farm.build import compiler
    from farm.candidate import RANDOM_PROBE, CandidateSpec
    from farm.machine import targets
    from farm.model import weights
    from farm.pipelines import catalog

    spec = CandidateSpec(catalog.resolve("median3x3"), targets.resolve("arm-64-android-hvx"),
                         weights.baseline(), seed=1, **RANDOM_PROBE)
    result, binary, _ = compiler.build(spec)
    assert result.ok, result.error
    assert binary[:4] == b"\x7fELF" and binary[18] == 183  # EM_AARCH64


def test_a_phone_class_is_its_soc_and_the_highest_hvx_halide_knows():
    from farm.devices.classes import hexagon_target, soc_hvx

    assert hexagon_target("SM8250") == "arm-64-android-hvx-hvx_v66"
    assert hexagon_target("SM8450") == "arm-64-android-hvx-hvx_v68"  # v69: Halide has v68
    assert hexagon_target("sdm845") == "arm-64-android-hvx-hvx_v65"
    assert hexagon_target("msm8996") == "arm-64-android-hvx"  # v60: no version feature
    assert hexagon_target("GS201") == "arm-64-android-hvx"  # unknown: no version claimed
    override = {"FARM_SOC_HVX": "gs201=v66, sm8450=v65"}
    assert soc_hvx("GS201", override) == 66
    assert hexagon_target("SM8450", override) == "arm-64-android-hvx-hvx_v65"


def test_a_device_runs_code_for_its_own_architecture_and_features_only():
    from farm.devices.classes import runs

    host = "x86-64-linux-tune_znver4-avx-avx2-f16c-fma-sse41"
    assert runs(host, host)
    assert runs(host, "x86-64-linux-tune_skylake-avx-sse41")  # fewer features, other tuning
    assert runs(host, "x86-64-linux-avx2-no_asserts-debug")  # not instruction-set features
    assert not runs(host, "x86-64-linux-avx-avx2-avx512-sse41")  # a feature it lacks
    assert not runs(host, "arm-64-linux")  # another architecture: SIGILL rows otherwise
    phone = "arm-64-android-hvx-hvx_v68"
    assert runs(phone, "arm-64-android-hvx") and runs(phone, "arm-64-android-hvx-hvx_v66")
    assert not runs("arm-64-android-hvx-hvx_v65", "arm-64-android-hvx-hvx_v68")


def test_two_phones_of_different_socs_are_two_classes_with_their_targets(fake_adb):
    pixel = {**PIXEL, "ro.soc.model": "SM8250"}
    fake_adb({"serial": "A1", "state": "device", "props": pixel},
             {"serial": "B2", "state": "device", "props": SNAPDRAGON})
    phones, _ = android.discover(NODE)
    by_serial = {p.serial: p for p in phones}
    a, b = by_serial["A1"].device_class, by_serial["B2"].device_class
    assert a != b and (a.model, b.model) == ("SM8250", "SM8450")
    assert (a.target, b.target) == ("arm-64-android-hvx-hvx_v66", "arm-64-android-hvx-hvx_v68")
    from farm.execution.session import default_target
    from farm.machine.targets import resolve

    target = resolve(default_target(by_serial["B2"]))  # a phone's own target by default
    assert target.compile.endswith("hvx_v68") and target.schedule.endswith("hvx_v68")
    out = farm("devices", env=fake_adb.env, check=0).stdout
    assert "android-sm8250" in out and "android-sm8450" in out and "hvx_v68" in out, out


def test_a_node_of_another_architecture_is_refused_not_timed():
    """Each node reports its own target: a node that cannot run the run's code is left out,
    and naming it is a one-line error (exit 2), not a round of SIGILL rows."""
    from farm.errors import MissingPrerequisite
    from farm.execution.session import choose
    from farm.machine.targets import TargetInfo

    x86 = DeviceInfo("cpu@a", "host", "a", target="x86-64-linux-avx-avx2")
    arm = DeviceInfo("cpu@b", "host", "b", target="arm-64-linux-arm_dot_prod")
    target = TargetInfo("x86-64-linux-avx-avx2", "x86-64-linux-avx-avx2", "host")
    assert choose([x86, arm], (), target) == [x86]
    with pytest.raises(MissingPrerequisite, match="runs arm-64-linux-arm_dot_prod code") as e:
        choose([x86, arm], ["cpu@b"], target)
    assert e.value.exit_code == 2
    with pytest.raises(MissingPrerequisite, match="no usable host device"):
        choose([arm], (), target)
