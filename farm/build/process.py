"""Where a compile runs: a child of the compile worker whose CPU time the kernel caps.

Halide holds Python's GIL while it autoschedules or generates code, so nothing in the
process that calls it can watch the clock, and the one way to end a compile that runs
past its budget is to end its process, while Ray's worker lives on. So each compile
worker keeps one child process (started on its first compile and reused, so a generator
file loads once per child) that runs farm.build.compiler's functions with RLIMIT_CPU set to what
is left of the candidate's budget; a generator executable it starts (a C++ generator)
gets the same cap. Over the cap the kernel ends the child (SIGXCPU): the candidate is a
compile_timeout, and the next compile starts a fresh child.

The budget is CPU time, so a compile that farm.devices.gate pauses while a device times is not
charged for the pause, and a big pipeline's minutes of autoscheduling are not cut short
by a busy machine. The child dies with its worker (PR_SET_PDEATHSIG: a compile cancelled
by killing its worker leaves nothing running) and is paused with it (farm.devices.gate stops a
registered process's children too). A crash inside Halide or LLVM ends only the child:
the candidate is a compile_error with the child's exit status (crashed when it was
SIGKILLed, as the kernel's OOM killer does), and the worker carries on.

Memory is watched the same way: while a call runs, a thread samples the resident memory
of the child and the processes it started. The peak goes with the result (what the
driver declares to Ray for the pipeline's next compiles, farm.execution.memory), and a
child past its limit (farm.machine.limits.compile_memory_limit) is ended: the candidate is
a compile_error whose cause is compile_error:memory, before the node runs short and Ray's
memory monitor kills workers at random.
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path

import psutil

from farm.candidate import COMPILE_ERROR, COMPILE_TIMEOUT, CRASHED, BuildResult, CandidateSpec
from farm.machine.limits import compile_memory_limit

# the farm.build.compiler functions a child runs
_CALLS = ("autoschedule_result", "screen_result", "build")
SAMPLE_S = 0.1  # how often a compile's memory is sampled


class _MemoryWatch:
    """The peak resident memory of a process and its descendants while a call runs; the
    process killed once they pass `limit` bytes."""

    def __init__(self, proc: subprocess.Popen, limit: int):
        self.limit, self.peak, self.over = limit, 0, False
        self._proc = psutil.Process(proc.pid)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set():
            rss = _resident(self._proc)
            self.peak = max(self.peak, rss)
            if rss > self.limit:
                self.over = True
                self._proc.kill()
                return
            self._done.wait(SAMPLE_S)

    def stop(self) -> float:
        """The peak in MB."""
        self._done.set()
        self._thread.join()
        return self.peak / 2**20


def _resident(proc: psutil.Process) -> int:
    """Bytes resident in `proc` and its descendants (0 once it is gone)."""
    total = 0
    try:
        family = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in family:
        try:
            total += p.memory_info().rss
        except psutil.Error:  # ended meanwhile
            continue
    return total


class CompileProcess:
    """One child process and the calls it answers, one at a time."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._conn: tuple[Connection, Connection] | None = None
        self._tmp: str | None = None  # the child's TMPDIR: removed with the child
        self._lock = threading.Lock()

    def call(self, name: str, spec: CandidateSpec, cpu_limit_s: float | None):
        """farm.build.compiler.`name`(spec, cpu_limit_s=...) in the child: its value, or a failed
        BuildResult (with an empty binary and no library for "build") when the child ran
        out of CPU or died."""
        assert name in _CALLS
        with self._lock:
            send, receive = self._connection()
            assert self._proc is not None
            watch = _MemoryWatch(self._proc, compile_memory_limit())
            try:
                send.send((name, spec, cpu_limit_s))
                answer = receive.recv()
            except (EOFError, OSError):
                answer = None
            peak_mb = watch.stop()
            if answer is None:
                answer = self._died(name, cpu_limit_s, watch)
            if name == "build":
                result, binary, library = answer
                return replace(result, memory_mb=peak_mb), binary, library
            return replace(answer, memory_mb=peak_mb)

    def _connection(self) -> tuple[Connection, Connection]:
        """(send, receive) to the child, started first if there is none alive."""
        if self._proc is not None and self._proc.poll() is None and self._conn is not None:
            return self._conn
        to_child, from_child = os.pipe(), os.pipe()  # (read end, write end) each
        # Its temporary files (and its generators' and compilers') go in a folder of its
        # own, removed when it dies: a compile ended by the kernel cleans up nothing
        self._remove_tmp()  # of a child that died between calls
        _sweep_tmp()
        self._tmp = tempfile.mkdtemp(prefix=f"farm-compile-{os.getpid()}-")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p),
                   TMPDIR=self._tmp)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "farm.build.process", str(to_child[0]),
             str(from_child[1]), str(os.getpid())],
            pass_fds=(to_child[0], from_child[1]), env=env)
        os.close(to_child[0])
        os.close(from_child[1])
        self._conn = (Connection(to_child[1], readable=False),
                      Connection(from_child[0], writable=False))
        return self._conn

    def _died(self, name: str, cpu_limit_s: float | None, watch: _MemoryWatch):
        assert self._proc is not None
        code = self._proc.wait()
        self._proc = self._conn = None
        self._remove_tmp()
        host = socket.gethostname()
        if watch.over:  # (the prefix gives the row its cause, compile_error:memory)
            result = BuildResult(COMPILE_ERROR, host=host, error=(
                f"compile (memory): ended on {host} after it used more than "
                f"{watch.limit / 2**30:.1f} GB, half of the machine's memory; it needs a "
                "machine with more memory, or a smaller beam (farm run --beam-size)"))
        elif code == -signal.SIGXCPU and cpu_limit_s is not None:
            result = BuildResult(COMPILE_TIMEOUT, host=host, error=(
                f"compile on {host}: ran out of its {cpu_limit_s:.0f} s of CPU "
                "(--compile-timeout)"))
        elif code == -signal.SIGKILL:  # not the schedule's fault: measured again if drawn
            result = BuildResult(CRASHED, host=host, error=(
                f"compile on {host}: the compile process was killed (SIGKILL; out of "
                "memory?)"))
        else:
            why = f"signal {-code}" if code < 0 else f"exit {code}"
            result = BuildResult(COMPILE_ERROR, host=host, error=(
                f"compile on {host}: the compile process died ({why}), in Halide or LLVM"))
        return (result, b"", None) if name == "build" else result

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = self._conn = None
        self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _sweep_tmp() -> None:
    """Remove the temporary folders of compile processes whose worker is gone (a worker
    Ray killed takes its child along, which leaves its folder)."""
    for folder in Path(tempfile.gettempdir()).glob("farm-compile-*-*"):
        worker = folder.name.split("-")[2]
        if worker.isdigit() and not psutil.pid_exists(int(worker)):
            shutil.rmtree(folder, ignore_errors=True)


_process: CompileProcess | None = None


def shared() -> CompileProcess:
    """This worker's compile process."""
    global _process
    if _process is None:
        _process = CompileProcess()
    return _process


def _serve(receive: Connection, send: Connection) -> None:
    from farm.build import compiler

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a SIGXCPU leaves no core file
    while True:
        try:
            name, spec, cpu_limit_s = receive.recv()
        except EOFError:  # the worker is gone
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_CPU)
        if cpu_limit_s is not None:
            used = resource.getrusage(resource.RUSAGE_SELF)
            limit = int(used.ru_utime + used.ru_stime + cpu_limit_s + 1)
            resource.setrlimit(resource.RLIMIT_CPU, (
                limit if hard == resource.RLIM_INFINITY else min(limit, hard), hard))
        try:
            send.send(getattr(compiler, name)(spec, cpu_limit_s=cpu_limit_s))
        finally:
            resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def main(argv: list[str]) -> None:
    receive_fd, send_fd, parent = (int(a) for a in argv)
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the worker died before the line above took effect
        return
    _serve(Connection(receive_fd, writable=False), Connection(send_fd, readable=False))


if __name__ == "__main__":
    main(sys.argv[1:])
