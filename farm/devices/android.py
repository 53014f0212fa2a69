"""Android phones over adb: discovery (`adb devices -l`, `getprop`) and timing.

A binary is pushed to the job's own folder, /data/local/tmp/halide-farm/NODE-PID-START/
(the device process's node, pid and start time), and run through
`adb -s SERIAL shell` with LD_LIBRARY_PATH and ADSP_LIBRARY_PATH set, so the
Halide Hexagon runtime (libhalide_hexagon_host.so and
libhalide_hexagon_remote_skel.so, from the folder FARM_HEXAGON_RUNTIME names)
is found on the ARM side and on the DSP. The runtime is pushed once per
device and process. Everything sent to the device shell is quoted. Each job removes its
folder when it is done with the phone (`close`), and the folders of jobs of this node
whose process is gone (killed) when it first prepares the phone.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import psutil

from farm.candidate import DEVICE_LOST, OK, RUN_ERROR, RUN_TIMEOUT, Measurement
from farm.devices.base import ANDROID, UNUSABLE, Device, DeviceInfo, Kind, safe_name
from farm.devices.classes import hexagon_target
from farm.devices.timing import TimingConfig, exit_reason, parse_harness_output
from farm.errors import MissingPrerequisite

REMOTE_DIR = "/data/local/tmp/halide-farm"
HEXAGON_LIBS = ("libhalide_hexagon_host.so", "libhalide_hexagon_remote_skel.so")
ADSP_DIRS = "/vendor/lib/rfsa/adsp;/system/lib/rfsa/adsp;/dsp"
ADB_TIMEOUT_S = 30.0
LOST_CLEAN_UP_S = 5.0  # the clean-up's wait when the phone already failed to answer
HEXAGON_FEATURE = "hexagon-runtime"

STATE_PROBLEMS = {
    "unauthorized": "unauthorized: accept the USB debugging prompt on the phone",
    "offline": "offline: reconnect the phone, or restart adb (adb kill-server)",
    "no permissions": "no permissions: add a udev rule for the phone (see Android's "
                      "'Run apps on a hardware device' guide) and replug it",
    "recovery": "in recovery mode: reboot it into Android",
    "bootloader": "in the bootloader: reboot it into Android",
    "sideload": "in sideload mode: reboot it into Android",
}
# adb's own messages for a phone that went away mid-call, matched as whole lines in adb's
# format ("adb: ...", "error: ..."), so a benchmark's output cannot pass for them
ADB_GONE = re.compile(
    r"^(?:adb: (?:error: )?|error: )(?:failed to get feature set: )?"
    r"(?:device '[^']*' not found|device offline|device unauthorized\.?|device still "
    r"authorizing|no devices/emulators found|closed|protocol fault \(.*\).*|"
    r"connection reset by peer)\s*$", re.M | re.I)


def adb_path() -> str | None:
    configured = os.environ.get("FARM_ADB")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return shutil.which("adb")


def hexagon_runtime_dir() -> Path | None:
    folder = os.environ.get("FARM_HEXAGON_RUNTIME")
    if folder and all((Path(folder) / lib).is_file() for lib in HEXAGON_LIBS):
        return Path(folder)
    return None


def _no_adb(path: str | None = None) -> MissingPrerequisite:
    where = f"adb ({path}) cannot be run" if path else "adb not found"
    return MissingPrerequisite(f"{where}: install Android's platform-tools or set FARM_ADB "
                               "to an adb", cause="adb")


def ndk_problem() -> str:
    from farm.machine.toolchain import ndk_clang

    try:
        ndk_clang()
    except MissingPrerequisite as e:
        return str(e)
    return ""


def discover(node: str, node_id: str = "") -> tuple[list[DeviceInfo], list[str]]:
    """Phones attached to this machine, and notes on what kept others from being found."""
    adb = adb_path()
    if adb is None:
        return [], [f"{node}: adb not found, phones are not discovered (install Android "
                    "platform-tools or set FARM_ADB)"]
    try:
        listing = subprocess.run([adb, "devices", "-l"], capture_output=True, text=True,
                                 timeout=ADB_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [], [f"{node}: `adb devices -l` failed: {e}"]
    if listing.returncode != 0:
        return [], [f"{node}: `adb devices -l` failed: {listing.stderr.strip()[:200]}"]
    ndk = ndk_problem()
    runtime = hexagon_runtime_dir()
    phones = []
    for serial, state in parse_device_list(listing.stdout):
        info = DeviceInfo(id=f"{serial}@{node}", kind=ANDROID, node=node, node_id=node_id,
                          serial=serial)
        problem = STATE_PROBLEMS.get(state, "" if state == "device" else f"state {state!r}")
        model = soc = ""
        if not problem:
            props = getprop(adb, serial)
            model, soc = describe(props), soc_of(props)
            abi = props.get("ro.product.cpu.abi", "")
            if abi and abi != "arm64-v8a":
                problem = f"not an arm64 phone (ABI {abi}); the farm builds for arm-64-android"
        problem = problem or ndk
        features = (HEXAGON_FEATURE,) if runtime else ()
        phones.append(DeviceInfo(info.id, ANDROID, node, node_id, model,
                                 UNUSABLE if problem else "ready", problem, serial,
                                 features=features, target=hexagon_target(soc) if soc else "",
                                 class_model=soc))
    return phones, []


def parse_device_list(text: str) -> list[tuple[str, str]]:
    """(serial, state) pairs from `adb devices -l`."""
    found = []
    for line in text.splitlines():
        parts = line.strip().split(None, 1)
        if not parts or line.startswith(("List of devices", "*")):
            continue
        rest = parts[1] if len(parts) > 1 else "unknown"
        state = "no permissions" if rest.startswith("no permissions") else rest.split()[0]
        found.append((parts[0], state))
    return found


def getprop(adb: str, serial: str) -> dict[str, str]:
    try:
        out = subprocess.run([adb, "-s", serial, "shell", "getprop"], capture_output=True,
                             text=True, timeout=ADB_TIMEOUT_S).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    return dict(re.findall(r"^\[([^\]]+)\]: \[([^\]]*)\]", out, re.M))


def soc_of(props: dict[str, str]) -> str:
    """The phone's SoC, which names its class (and its HVX version)."""
    return props.get("ro.soc.model") or props.get("ro.board.platform") or \
        props.get("ro.hardware", "")


def describe(props: dict[str, str]) -> str:
    model = props.get("ro.product.model", "Android phone")
    soc = soc_of(props)
    return f"{model} ({soc})" if soc else model


class AndroidDevice(Device):
    def __init__(self, info: DeviceInfo, isolation: str = "pause"):
        super().__init__(info)  # isolation: nothing compiles on a phone
        adb = adb_path()
        if adb is None:
            raise _no_adb()
        self.adb = adb
        self.prepared = False
        pid = os.getpid()
        self.remote = f"{REMOTE_DIR}/{_job_folder(info.node, pid, _started(pid))}"

    def _adb(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([self.adb, "-s", self.info.serial, *args],
                                  capture_output=True, text=True,
                                  timeout=ADB_TIMEOUT_S if timeout is None else timeout)
        except (FileNotFoundError, PermissionError):  # adb itself is gone: not the phone
            raise _no_adb(self.adb) from None

    def _shell(self, command: list[str], env: dict[str, str] | None = None,
               cd: str | None = None, timeout: float | None = None):
        """Run argv on the phone; every word is quoted for the device's shell."""
        line = " ".join(shlex.quote(w) for w in command)
        if env:
            line = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items()) + " " + line
        if cd:
            line = f"cd {shlex.quote(cd)} && {line}"
        return self._adb("shell", line, timeout=timeout)

    def _prepare(self) -> str | None:
        """Create the remote folder and push the Hexagon runtime once; an error or None."""
        if self.prepared:
            return None
        proc = self._shell(["mkdir", "-p", self.remote])
        if proc.returncode != 0:
            return f"mkdir {self.remote} failed: {(proc.stderr or proc.stdout).strip()}"
        self._remove_stale()
        runtime = hexagon_runtime_dir()
        if runtime is None and HEXAGON_FEATURE in self.info.features:  # gone since discovery
            raise MissingPrerequisite(
                f"the Hexagon runtime is gone from {self.info.node} (FARM_HEXAGON_RUNTIME="
                f"{os.environ.get('FARM_HEXAGON_RUNTIME', '')!r} lacks "
                f"{' or '.join(HEXAGON_LIBS)}): restore it there", cause="hexagon-runtime")
        if runtime is not None:
            for lib in HEXAGON_LIBS:
                proc = self._adb("push", str(runtime / lib), f"{self.remote}/{lib}",
                                 timeout=120)
                if proc.returncode != 0:
                    return f"pushing {lib} failed: {(proc.stderr or proc.stdout).strip()}"
        self.prepared = True
        return None

    def run(self, binary: bytes, threads: int, timing: TimingConfig) -> Measurement:
        """Push, run, clean up. What failed decides the status: the phone or adb before or
        around the run (device_lost), the benchmark itself (run_error, run_timeout); the
        clean-up afterwards never changes it."""
        start = time.perf_counter()
        name = f"bench-{hashlib.sha256(binary).hexdigest()[:12]}"
        m: Measurement | None = None
        try:
            m = self._push_and_run(binary, name, threads, timing, start)
        finally:
            note = self._clean_up(name, lost=m is None or m.status == DEVICE_LOST)
        return replace(m, log=(m.log + "\n" + note).strip()) if note else m

    def _push_and_run(self, binary: bytes, name: str, threads: int, timing: TimingConfig,
                      start: float) -> Measurement:
        try:
            error = self._prepare()
            if error:
                return self._failed(error, start)
            with tempfile.TemporaryDirectory(prefix="farm-adb-") as tmp:
                local = Path(tmp) / name
                local.write_bytes(binary)
                proc = self._adb("push", str(local), f"{self.remote}/{name}", timeout=120)
            if proc.returncode != 0:
                return self._failed(f"push failed: {(proc.stderr or proc.stdout).strip()}", start)
            proc = self._shell(["chmod", "755", f"{self.remote}/{name}"])
            if proc.returncode != 0:
                return self._failed(f"chmod failed: {(proc.stderr or proc.stdout).strip()}",
                                    start)
        except subprocess.TimeoutExpired as e:
            return self._failed(f"adb did not answer within {e.timeout:g} s", start)
        except OSError as e:
            return self._failed(f"cannot run adb: {e}", start)
        env = {"LD_LIBRARY_PATH": self.remote, "ADSP_LIBRARY_PATH": f"{self.remote};{ADSP_DIRS}",
               "HL_NUM_THREADS": str(threads)}
        try:
            proc = self._shell([f"./{name}", *timing.harness_args()], env=env, cd=self.remote,
                               timeout=timing.timeout_s)
        except subprocess.TimeoutExpired:
            self._kill(name)
            return self.measurement(RUN_TIMEOUT, run_s=time.perf_counter() - start,
                                    error=f"run on {self.info.id}: killed after the "
                                          f"{timing.timeout_s:g} s run timeout")
        except OSError as e:
            return self._failed(f"cannot run adb: {e}", start)
        run_s = time.perf_counter() - start
        log = (proc.stdout + "\n--- stderr ---\n" + proc.stderr)[-4000:]
        if proc.returncode != 0:
            gone = ADB_GONE.search(proc.stderr)
            if gone:  # adb lost the phone: not the benchmark's doing
                return self._failed(gone.group(0).strip(), start)
            return self.measurement(RUN_ERROR, run_s=run_s, log=log,
                                    error=f"run on {self.info.id}: " + exit_reason(
                                        proc.returncode, proc.stderr, via_shell=True))
        try:
            samples = parse_harness_output(proc.stdout)
        except ValueError as e:
            return self.measurement(RUN_ERROR, run_s=run_s, log=log,
                                    error=f"run on {self.info.id}: {e}")
        return self.measurement(OK, runtimes_ms=samples, run_s=run_s)

    def _clean_up(self, name: str, lost: bool) -> str:
        """Remove the pushed binary; a note for the log when that failed (never a status:
        the candidate was timed, or failed, before). A phone that was just lost gets a
        short try, not adb's full wait, before the candidate is handed back."""
        try:
            proc = self._shell(["rm", "-f", f"{self.remote}/{name}"],
                               timeout=LOST_CLEAN_UP_S if lost else None)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"clean-up on {self.info.id}: rm of {name} failed: {e}"
        if proc.returncode != 0:
            return (f"clean-up on {self.info.id}: rm of {name} failed: "
                    f"{(proc.stderr or proc.stdout).strip()}")
        return ""

    def _kill(self, name: str) -> None:
        try:
            self._shell(["pkill", "-f", f"{self.remote}/{name}"], timeout=10)
            self._shell(["pkill", "-f", name], timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass

    def close(self) -> None:
        """Remove the job's folder from the phone (a phone that does not answer keeps it
        until another job of this node prepares it)."""
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self._shell(["rm", "-rf", self.remote], timeout=LOST_CLEAN_UP_S * 4)

    def _remove_stale(self) -> None:
        """Remove the folders that jobs of this node left on the phone when they were
        killed (their process is gone); other nodes' jobs' folders are theirs to judge."""
        try:
            proc = self._shell(["ls", REMOTE_DIR])
        except (OSError, subprocess.TimeoutExpired):
            return
        stale = []
        for name in proc.stdout.split():
            found = re.fullmatch(r"(.+)-(\d+)-(\d+)", name)
            if found is None or found.group(1) != safe_name(self.info.node):
                continue
            pid, start = int(found.group(2)), int(found.group(3))
            if f"{REMOTE_DIR}/{name}" != self.remote and _started(pid) != start:
                stale.append(f"{REMOTE_DIR}/{name}")
        if stale:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self._shell(["rm", "-rf", *stale], timeout=LOST_CLEAN_UP_S * 4)

    def _failed(self, error: str, start: float) -> Measurement:
        self.prepared = False  # a phone that comes back gets the runtime pushed again
        return self.measurement(DEVICE_LOST, run_s=time.perf_counter() - start,
                                error=f"{self.info.id}: {error}")


def _job_folder(node: str, pid: int, started: int) -> str:
    """The phone folder of the job whose device process is `pid` on `node`."""
    return f"{safe_name(node)}-{pid}-{started}"


def _started(pid: int) -> int:
    """The process's start time in whole seconds (0: gone), to tell a reused pid."""
    try:
        return int(psutil.Process(pid).create_time())
    except psutil.Error:
        return 0


def _default_target(info: DeviceInfo) -> str:
    """A phone's class target (its SoC's HVX version, farm.devices.classes)."""
    return info.target or "arm-64-android-hvx"


KIND = Kind(ANDROID, discover=discover, open=lambda info, isolation: AndroidDevice(info, isolation),
            default_target=_default_target)
