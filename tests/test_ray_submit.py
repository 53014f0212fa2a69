"""`ray up cluster.yaml` and `ray submit` against sshd on 127.0.0.1 (the repo's own cluster.yaml,
with its IPs and ssh user swapped for this machine). Slow: it installs the farm into a fresh
virtual environment on the "head"."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (os.path.exists(SSHD) and shutil.which("rsync")
                            and os.geteuid() == 0),
                       reason="needs root, sshd and rsync (.ci/run installs them with apt)"),
]


def _ssh_ready(key: Path) -> None:
    Path("/run/sshd").mkdir(exist_ok=True)
    subprocess.run(["ssh-keygen", "-A"], check=True, capture_output=True)
    if subprocess.run(["pgrep", "-x", "sshd"], capture_output=True).returncode != 0:
        subprocess.run([SSHD], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)


@pytest.fixture
def ssh_key(tmp_path):
    key = tmp_path / "id_ed25519"
    _ssh_ready(key)
    auth = Path.home() / ".ssh" / "authorized_keys"
    auth.parent.mkdir(mode=0o700, exist_ok=True)
    before = auth.read_text() if auth.exists() else None
    with open(auth, "a") as f:
        f.write(Path(f"{key}.pub").read_text())
    auth.chmod(0o600)
    yield key
    if before is None:
        auth.unlink()
    else:
        auth.write_text(before)


def test_ray_up_and_submit_autotune(tmp_path, ssh_key):
    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    config["auth"] = {"ssh_user": os.environ.get("USER", "root"),
                      "ssh_private_key": str(ssh_key)}
    config["min_workers"] = config["max_workers"] = 0
    config["file_mounts"]["~/halide-farm"] = str(REPO)
    config["cluster_name"] = "farm-ci"
    # the dashboard binds the head's private address: here the head is 127.0.0.1
    config["head_start_ray_commands"] = [c.replace("10.0.0.10", "127.0.0.1")
                                         for c in config["head_start_ray_commands"]]
    local = tmp_path / "cluster.yaml"
    local.write_text(yaml.safe_dump(config))
    ray = str(Path(sys.executable).with_name("ray"))
    env = dict(os.environ, RAY_AUTH_MODE="token")
    subprocess.run([ray, "get-auth-token", "--generate"], env=env, capture_output=True)
    run = tmp_path / "run"

    def ray_cmd(*args, timeout=900):
        proc = subprocess.run([ray, *args], env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    try:
        ray_cmd("up", "-y", str(local))
        devices = ray_cmd("submit", str(local), str(REPO / "farm" / "ray_driver.py"), "--",
                          "devices")
        assert "cpu@" in devices and "ready" in devices
        out = ray_cmd("submit", str(local), str(REPO / "farm" / "ray_driver.py"), "--",
                      "autotune", "median3x3", "--rounds", "1", "--batch-size", "8",
                      "--out", str(run))
        assert "8 samples" in out and "use them:" in out
        assert (run / "best" / "runtime.json").exists()
    finally:
        subprocess.run([ray, "down", "-y", str(local)], env=env, capture_output=True,
                       timeout=300)
