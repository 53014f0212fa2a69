"""Connecting to Ray, and finding the cluster's nodes and devices.

Without an address the farm starts an embedded local Ray (this machine only,
its CPU as the device). With --address or RAY_ADDRESS it joins that cluster;
the address is probed first, because `ray.init` on a dead address blocks for
over a minute and ignores SIGTERM, and the head is watched while the command runs
(a lost head is a clear error, not a long hang).
"""

from __future__ import annotations

import _thread
import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from farm.devices.base import DeviceInfo
from farm.errors import BadInput, WorkFailed

PROBE_TIMEOUT_S = 5.0
HEAD_WATCH_S = 5.0  # how often a driver joined to a cluster checks that its head answers
HEAD_LOST_AFTER = 3  # failed checks in a row before the head counts as lost
HEAD_LOST_GRACE_S = 30.0  # then the driver stops: cleanly if it can, else at once

_lost_head: list[str] = []  # why the head counts as lost (set by the watcher thread)
_heads: list[str] = []  # the GCS address of the cluster this process joined
_exit_when_stuck: list[bool] = []  # set by the command line (never in a notebook's kernel)


def exit_when_stuck() -> None:
    """Let the head watcher end this process when Ray stays stuck after a lost head (the
    command line's choice; a library caller gets the KeyboardInterrupt only)."""
    _exit_when_stuck.append(True)


def lost_head(check: bool = False) -> str | None:
    """Why this process lost its Ray cluster's head, if it did (the CLI says so instead of
    "interrupted", or of the Ray error a call raised); `check`: probe the head now."""
    if not _lost_head and check and _heads:
        try:
            probe(_heads[-1])
        except BadInput:
            _lost_head.append(_lost_message(_heads[-1], 0))
    return _lost_head[0] if _lost_head else None


def _lost_message(gcs: str, seconds: float) -> str:
    silent = f"has not answered for {seconds:g} s" if seconds else "does not answer"
    return (f"lost the Ray cluster: its head at {gcs} {silent}. The committed rounds are "
            "kept; rerun the same command once the cluster is back (with --address of its "
            "head)")


@dataclass(frozen=True)
class Node:
    node_id: str
    name: str  # the farm's short name for it: its farm-node label, else its hostname
    address: str
    cpus: float


class ClusterLike(Protocol):
    """What the farm asks of a cluster: Cluster (Ray's), or farm.testing.FakeCluster over a
    Ray the caller started."""

    @property
    def local(self) -> bool:
        """Embedded in this process (no address): this machine is the whole cluster."""

    def __enter__(self) -> ClusterLike: ...

    def __exit__(self, *exc) -> object: ...

    def connect(self) -> None:
        """Join (or start) Ray."""

    def shutdown(self) -> None: ...

    def discover(self, timeout_s: float = 60.0) -> tuple[list[DeviceInfo], list[str]]:
        """Every node's devices, found on the node, and notes for the user."""

    def compile_slots(self, node_ids: set[str] | None = None) -> int:
        """How many compile tasks the nodes (those of `node_ids`) run at once."""


@contextlib.contextmanager
def deferred_interrupt():
    """Hold a Ctrl-C (SIGINT) back for the block: the yielded list is non-empty once one
    came. Only in the main thread (elsewhere signals cannot be handled: a no-op)."""
    came: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield came
        return
    before = signal.signal(signal.SIGINT, lambda signum, frame: came.append(signum))
    try:
        yield came
    finally:
        signal.signal(signal.SIGINT, before)


class Cluster:
    """Ray's cluster: an embedded local one without an address, else the one there."""

    def __init__(self, address: str | None):
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self._unwatch = threading.Event()  # set at shutdown: the head watcher ends

    @property
    def local(self) -> bool:
        return self.address is None

    def discover_here(self) -> tuple[list[DeviceInfo], list[str]] | None:
        """Without an address: the devices discover() will find, found without starting Ray
        (this machine's, named as the embedded cluster names its one node), so that a
        command refuses a device it cannot have in a second. None on a cluster."""
        if not self.local:
            return None
        from farm.devices.registry import discover_local

        return discover_local(socket.gethostname().split(".")[0])

    def __enter__(self):
        self.connect()
        return self

    def __exit__(self, *exc):
        self.shutdown()

    def connect(self) -> None:
        """Join (or start) Ray. A Ctrl-C while Ray starts waits until it has started, then
        shuts it down and is raised: interrupted half-way, Ray's native core crashed the
        process at exit (a segfault in 2 of 3 tries)."""
        import ray

        if ray.is_initialized():
            return
        with deferred_interrupt() as interrupted:
            try:
                self._connect()
            finally:
                if interrupted:
                    self.shutdown()
        if interrupted:
            raise KeyboardInterrupt

    def _connect(self) -> None:
        import ray

        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "logging_level": logging.ERROR, "configure_logging": True}
        address = self.address
        if address is None:  # self.local
            private_token()
            # a task its memory monitor kills fails at once (OutOfMemoryError: a row of the
            # candidate's, farm.execution.workers), never Ray's endless OOM retries
            ray.init(**kwargs, _system_config={"task_oom_retries": 0})
            return
        if address != "auto" and not address.startswith("ray://"):
            probe(address)
        try:
            ray.init(address=address, **kwargs)
        except ConnectionError as e:
            raise BadInput(f"--address {address}: cannot join that Ray cluster "
                           f"({_last_line(e)}); start it with `ray start --head` or fix the "
                           "address") from None
        client = address.startswith("ray://")
        if client:  # a Ray Client's gcs_address is the cluster's inside view: asked there
            gcs = ""
            ask = ray.remote(num_cpus=0, max_retries=0)(_asks_for_token_here)
            open_door = not ray.get(ask.remote(), timeout=2 * TOKEN_CHECK_S)
        else:
            gcs = ray.get_runtime_context().gcs_address
            open_door = not requires_token(gcs)
        if open_door and not os.environ.get(ALLOW_OPEN):
            ray.shutdown()
            raise BadInput(
                f"--address {address}: that Ray cluster does not require a token, so anyone "
                "who reaches it runs code as you; restart its head and nodes with "
                f"RAY_AUTH_MODE=token (docs/clusters.md), or set {ALLOW_OPEN}=1 on a "
                "network only you reach")
        if client:
            return  # its head is watched by the Ray Client's own connection
        _heads.append(gcs)
        self._unwatch = threading.Event()
        threading.Thread(target=_watch_head, args=(gcs, self._unwatch), daemon=True,
                         name="farm-head-watch").start()

    def shutdown(self) -> None:
        import ray

        self._unwatch.set()
        if ray.is_initialized():
            ray.shutdown()

    def nodes(self) -> list[Node]:
        import ray

        def base(n) -> str:
            labels = n.get("Labels") or {}
            name = labels.get("farm-node") or n.get("NodeManagerHostname") or \
                n["NodeManagerAddress"]
            return name.split(".")[0]

        # Two Ray nodes on one machine (as in tests) share a hostname: number them by port.
        alive = sorted((n for n in ray.nodes() if n.get("Alive")),
                       key=lambda n: (base(n), n.get("NodeManagerPort", 0)))
        nodes: list[Node] = []
        seen: dict[str, int] = {}
        for n in alive:
            name = base(n)
            seen[name] = seen.get(name, 0) + 1
            if seen[name] > 1:
                name = f"{name}-{seen[name]}"
            nodes.append(Node(n["NodeID"], name, n["NodeManagerAddress"],
                              float(n.get("Resources", {}).get("CPU", 0))))
        return nodes

    def compile_slots(self, node_ids: set[str] | None = None) -> int:
        """CPUs for compile tasks: of the whole cluster, or of the given nodes."""
        nodes = [n for n in self.nodes() if node_ids is None or n.node_id in node_ids]
        return max(1, int(sum(n.cpus for n in nodes)))

    def discover(self, timeout_s: float = 60.0) -> tuple[list[DeviceInfo], list[str]]:
        """Every node's devices, found by a task pinned to that node, and notes."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from farm.execution.workers import discover_task

        refs = [discover_task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            node.node_id, soft=False)).remote(node.node_id, node.name) for node in self.nodes()]
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        for ref in pending:
            ray.cancel(ref, force=True)
        devices, notes = [], []
        if pending:
            notes.append(f"{len(pending)} node(s) did not answer device discovery within "
                         f"{timeout_s:g} s")
        for ref in ready:
            try:
                found, node_notes = ray.get(ref)
            except ray.exceptions.RayError as e:  # a node that died while we asked
                notes.append(f"device discovery failed on a node: {e}")
                continue
            devices.extend(found)
            notes.extend(node_notes)
        if not devices:
            raise WorkFailed("no node of the Ray cluster answered device discovery")
        return sorted(devices, key=lambda d: d.id), notes

    def leases(self, devices: list[DeviceInfo], recent: int = 0, timeout_s: float = 30.0
               ) -> dict:
        """Each device's lease state with its last `recent` logged leases
        (farm.execution.leases.LeaseState by device id), read by a task on its node; a node
        that does not answer is left out."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from farm.execution.workers import lease_task

        by_node: dict[str, list[str]] = {}
        for d in devices:
            by_node.setdefault(d.node_id, []).append(d.id)
        refs = [lease_task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            node_id, soft=False)).remote(ids, recent) for node_id, ids in by_node.items()
            if node_id]
        ready, pending = ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        for ref in pending:
            ray.cancel(ref, force=True)
        found = {}
        for ref in ready:
            try:
                found.update({s.device: s for s in ray.get(ref)})
            except ray.exceptions.RayError:  # a node that died while we asked
                continue
        return found


def _watch_head(gcs: str, unwatch: threading.Event) -> None:
    """A lost head (its host down, `ray stop` there) leaves Ray's calls hanging for minutes
    before Ray ends the process without a word: after HEAD_LOST_AFTER failed checks, say
    why and stop this driver (Ctrl-C's path, so the lock is released and nothing is half
    written); committed rounds are on disk and the same command resumes."""
    failures = 0
    while not unwatch.wait(HEAD_WATCH_S):
        try:
            probe(gcs)
            failures = 0
            continue
        except BadInput:
            failures += 1
        if failures < HEAD_LOST_AFTER:
            continue
        why = _lost_message(gcs, HEAD_WATCH_S * HEAD_LOST_AFTER)
        _lost_head.append(why)
        _thread.interrupt_main()
        if unwatch.wait(HEAD_LOST_GRACE_S) or not _exit_when_stuck:
            return
        print(f"farm: error: {why}", file=sys.stderr, flush=True)  # still stuck in Ray
        os._exit(1)


ALLOW_OPEN = "FARM_ALLOW_OPEN_CLUSTER"  # joins a cluster without token authentication
# Asks the cluster's GCS for its session name as a client without a token would: Ray reads
# its authentication mode when a process starts, so the question is asked by a new one.
_UNAUTHENTICATED_ASK = """
import sys
from ray._raylet import GcsClient
try:
    GcsClient(address=sys.argv[1]).internal_kv_get(b"session_name", b"session", timeout=10)
except Exception as e:
    print(type(e).__name__)
else:
    print("answered")
"""


TOKEN_CHECK_S = 60.0


def private_token() -> None:
    """The embedded cluster's token, this user's alone. Ray writes ~/.ray/auth_token
    world-readable (0644, in a 0755 folder) while the GCS listens on every interface: any
    local user who read it could run tasks as the farm's user. Made here first (0600 in a
    0700 folder) when absent, else tightened; a token given in RAY_AUTH_TOKEN is Ray's."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or
                os.path.join(os.path.expanduser("~"), ".ray", "auth_token"))
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if path.parent.stat().st_uid == os.getuid():
            os.chmod(path.parent, path.parent.stat().st_mode & ~0o077)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            if path.stat().st_uid == os.getuid():
                os.chmod(path, 0o600)
            return
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    except OSError as e:
        raise BadInput(f"Ray's token file {path} cannot be made private ({e.strerror}): fix "
                       "its folder's permissions, or set RAY_AUTH_TOKEN") from None


def _asks_for_token_here() -> bool:
    """requires_token of the cluster this process is a worker of (a Ray task's view)."""
    import ray

    return requires_token(ray.get_runtime_context().gcs_address)


def requires_token(gcs: str) -> bool:
    """Whether the cluster whose GCS is at `gcs` refuses a client without its token."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    env["RAY_AUTH_MODE"] = "disabled"
    try:
        out = subprocess.run([sys.executable, "-c", _UNAUTHENTICATED_ASK, gcs], env=env,
                             capture_output=True, text=True,
                             timeout=TOKEN_CHECK_S).stdout.strip()
    except subprocess.TimeoutExpired:
        return True  # no answer to the question: not an open door either
    return out.splitlines()[-1:] != ["answered"]


def probe(address: str) -> None:
    """Raise BadInput unless something accepts a TCP connection at host:port."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise BadInput(f"--address {address!r} is not host:port (e.g. 10.0.0.5:6379)")
    try:
        with socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as e:
        reason = "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
        raise BadInput(f"nothing answers at --address {address} ({reason} after "
                       f"{PROBE_TIMEOUT_S:g} s); start the head with `ray start --head "
                       "--port=...` or fix the address") from None


def _last_line(e: Exception) -> str:
    """What an error from Ray says, in one line: a Ray Client's carries the server's whole
    traceback, whose last line says what failed."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__
