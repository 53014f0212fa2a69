"""Where a compile runs: a child of the compile worker whose CPU time the kernel caps.

Halide holds Python's GIL while it autoschedules or generates code, so nothing in the
process that calls it can watch the clock, and the one way to end a compile that runs
past its budget is to end its process, while Ray's worker lives on. So each compile
worker keeps one child process (started on its first compile and reused, so a generator
file loads once per child) that runs farm.build.compile's functions with RLIMIT_CPU set to what
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
from multiprocessing.connection import Connection
from pathlib import Path

import psutil

from farm.candidate import COMPILE_ERROR, COMPILE_TIMEOUT, CRASHED, BuildResult, CandidateSpec

_CALLS = ("autoschedule_result", "build")  # the farm.build.compile functions a child runs


class CompileProcess:
    """One child process and the calls it answers, one at a time."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._conn: tuple[Connection, Connection] | None = None
        self._tmp: str | None = None  # the child's TMPDIR: removed with the child
        self._lock = threading.Lock()

    def call(self, name: str, spec: CandidateSpec, cpu_limit_s: float | None):
        """farm.build.compile.`name`(spec, cpu_limit_s=...) in the child: its value, or a failed
        BuildResult (with an empty binary and no library for "build") when the child ran
        out of CPU or died."""
        assert name in _CALLS
        with self._lock:
            send, receive = self._connection()
            try:
                send.send((name, spec, cpu_limit_s))
                return receive.recv()
            except (EOFError, OSError):
                return self._died(name, cpu_limit_s)

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

    def _died(self, name: str, cpu_limit_s: float | None):
        assert self._proc is not None
        code = self._proc.wait()
        self._proc = self._conn = None
        self._remove_tmp()
        host = socket.gethostname()
        if code == -signal.SIGXCPU and cpu_limit_s is not None:
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
    from farm.build import compile as build

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
            send.send(getattr(build, name)(spec, cpu_limit_s=cpu_limit_s))
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
