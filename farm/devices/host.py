"""The host CPU as a device: runs the benchmark binary as a local process."""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from contextlib import nullcontext
from pathlib import Path

from farm.candidate import OK, RUN_ERROR, RUN_TIMEOUT, Measurement
from farm.devices import gate
from farm.devices.base import HOST, Device, DeviceInfo, Kind, safe_name
from farm.devices.timing import TimingConfig, exit_reason, parse_harness_output
from farm.machine.cache import cache_dir

ISOLATIONS = ("pause", "none")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info(node: str | None = None, node_id: str = "") -> DeviceInfo:
    """This machine's CPU; its target is the one this node reports for itself (discovery
    runs on each node), so a cluster of two architectures is seen as two classes."""
    from farm.machine.halide_env import host_target

    node = node or socket.gethostname()
    return DeviceInfo(id=f"cpu@{node}", kind=HOST, node=node, node_id=node_id,
                      model=f"{cpu_model()} ({os.cpu_count()} cores)", cores=os.cpu_count() or 1,
                      target=host_target(), class_model=cpu_model())


class HostDevice(Device):
    """Times a binary on this machine's CPU.

    isolation="pause" stops the machine's compile work while it times (see
    farm.devices.gate); "none" times alongside it (for measuring the difference).
    """

    def __init__(self, info: DeviceInfo, isolation: str = "pause"):
        super().__init__(info)
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation {isolation!r}; choose one of {ISOLATIONS}")
        self.isolation = isolation
        parent = cache_dir("devices", safe_name(info.id))
        for old in parent.iterdir():  # folders of device processes that died
            if old.name.isdigit() and not Path(f"/proc/{old.name}").exists():
                shutil.rmtree(old, ignore_errors=True)
        self.workdir = cache_dir("devices", safe_name(info.id), str(os.getpid()))  # no link
        if isolation == "pause":
            gate.recover()  # what a device of this machine that died left stopped
            gate.start_watchdog()  # and what this one will leave, if it dies

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    def run(self, binary: bytes, threads: int, timing: TimingConfig) -> Measurement:
        path = self.workdir / "bench"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(binary)
        tmp.chmod(0o755)
        os.replace(tmp, path)
        env = dict(os.environ, HL_NUM_THREADS=str(threads))
        argv = [str(path), *timing.harness_args()]
        start = time.perf_counter()
        with gate.exclusive() if self.isolation == "pause" else nullcontext():
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    env=env, text=True, start_new_session=True)
            try:
                out, err = proc.communicate(timeout=timing.timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                return self.measurement(
                    RUN_TIMEOUT, run_s=time.perf_counter() - start, log=_tail(out, err),
                    error=f"run on {self.info.id}: killed after the {timing.timeout_s:g} s "
                          "run timeout")
        run_s = time.perf_counter() - start
        if proc.returncode != 0:
            return self.measurement(RUN_ERROR, run_s=run_s, log=_tail(out, err),
                                    error=f"run on {self.info.id}: "
                                          f"{exit_reason(proc.returncode, err)}")
        try:
            samples = parse_harness_output(out)
        except ValueError as e:
            return self.measurement(RUN_ERROR, run_s=run_s, log=_tail(out, err),
                                    error=f"run on {self.info.id}: {e}")
        return self.measurement(OK, runtimes_ms=samples, run_s=run_s)


def _tail(out: str, err: str, limit: int = 4000) -> str:
    text = (out or "") + ("\n--- stderr ---\n" + err if err else "")
    return text[-limit:]


def check_here(infos: list[DeviceInfo]) -> None:
    """Before Ray starts: what this machine's host devices need that Ray cannot fix, the
    compile gate's private folder (a GateError naming it and the fix)."""
    if any(i.kind == HOST for i in infos):
        gate.gate_dir()


def _discover(node: str, node_id: str) -> tuple[list[DeviceInfo], list[str]]:
    return [host_info(node, node_id)], []


KIND = Kind(HOST, discover=_discover, open=lambda info, isolation: HostDevice(info, isolation))


def local_host_device(isolation: str = "pause") -> HostDevice:
    return HostDevice(host_info(), isolation)
