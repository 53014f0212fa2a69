"""Real multi-node Ray clusters on this machine, started with `ray start --block`."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TOKEN = "farm-test-token-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def auth_env() -> dict:
    """Ray 2.60 turns token authentication on: every node and driver needs the token."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}


class LocalCluster:
    """A head and `workers` more nodes, each a `ray start --block` process group."""

    def __init__(self, workers: int = 1, cpus: int = 1, head_labels: str = "",
                 node_env: list[dict] | None = None, token: bool = True,
                 client_port: int | None = None):
        """`node_env`: more environment for each node, the head's first (e.g. a cache
        directory of its own, as a node of a real cluster has). `token`: the cluster
        requires one (else it accepts any client)."""
        self.port = free_port()
        self.client_port = client_port
        self.address = f"127.0.0.1:{self.port}"
        self.procs = []
        self.env = dict(os.environ, **(auth_env() if token else {"RAY_AUTH_MODE": "disabled"}))
        self.tmp = tempfile.mkdtemp(prefix="farm-ray-")
        ray = str(Path(sys.executable).with_name("ray"))
        head = [ray, "start", "--head", "--block", f"--port={self.port}",
                f"--num-cpus={cpus}", "--include-dashboard=false", f"--temp-dir={self.tmp}"]
        if head_labels:
            head.append(f"--labels={head_labels}")
        if client_port:  # a Ray Client server: ray://127.0.0.1:client_port
            head.append(f"--ray-client-server-port={client_port}")
        extra = node_env or [{} for _ in range(1 + workers)]
        self._start(head, extra[0])
        self._wait_for_port()
        for i in range(workers):
            self._start([ray, "start", "--block", f"--address={self.address}",
                         f"--num-cpus={cpus}"], extra[1 + i])
        self._wait_for_nodes(1 + workers)

    def _start(self, argv, extra_env=None):
        with open(Path(self.tmp) / f"node{len(self.procs)}.log", "w") as log:
            self.procs.append(subprocess.Popen(argv, env={**self.env, **(extra_env or {})},
                                               stdout=log, stderr=log,
                                               start_new_session=True))

    def _wait_for_port(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("the Ray head did not come up")

    def _wait_for_nodes(self, n, timeout=90):
        code = ("import ray,sys; ray.init(address=sys.argv[1], logging_level='ERROR');"
                "print(sum(1 for x in ray.nodes() if x['Alive']))")
        end = time.time() + timeout
        while time.time() < end:
            out = subprocess.run([sys.executable, "-c", code, self.address], env=self.env,
                                 capture_output=True, text=True).stdout.strip()
            if out.isdigit() and int(out) >= n:
                return
            time.sleep(1)
        raise RuntimeError(f"{n} Ray nodes did not come up")

    def stop(self):
        for p in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        deadline = time.time() + 3  # a test cluster has nothing to save: a short grace
        for p in self.procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
