"""The farm joins only a Ray cluster that requires a token: one that accepts any client runs
anybody's code as whoever started it."""

import os

import pytest
from clitools import assert_user_error, farm
from raycluster import LocalCluster, auth_env, free_port


@pytest.fixture(scope="module")
def open_cluster():
    c = LocalCluster(workers=0, cpus=1, token=False, client_port=free_port())
    yield c
    c.stop()


def test_an_open_cluster_is_refused_with_the_fix(open_cluster):
    proc = farm("devices", "--address", open_cluster.address, timeout=120,
                env={"RAY_AUTH_MODE": "disabled"})
    assert_user_error(proc, open_cluster.address, "does not require a token",
                      "RAY_AUTH_MODE=token")


def test_an_open_cluster_is_refused_through_a_ray_client_too(open_cluster):
    """ray:// went around the check: the farm joined and ran tasks. (Ray's client proxy now
    and then fails to start a client's server: "Starting Ray client server failed", or
    psutil's ZombieProcess in its proxier. The farm then says it cannot join, in one line,
    and the test asks again.)"""
    address = f"ray://127.0.0.1:{open_cluster.client_port}"
    for _ in range(5):
        proc = farm("devices", "--address", address, timeout=180,
                    env={"RAY_AUTH_MODE": "disabled"})
        if "cannot join that Ray cluster" not in proc.stderr:
            break
        assert_user_error(proc, address, "cannot join that Ray cluster")
    assert_user_error(proc, address, "does not require a token", "RAY_AUTH_MODE=token")


def test_an_open_cluster_is_joined_when_the_user_says_so(open_cluster):
    proc = farm("devices", "--address", open_cluster.address, timeout=120,
                env={"RAY_AUTH_MODE": "disabled", "FARM_ALLOW_OPEN_CLUSTER": "1"}, check=0)
    assert "cpu@" in proc.stdout


@pytest.mark.slow  # a second cluster: tests/test_cluster.py joins token clusters throughout
def test_a_cluster_that_requires_a_token_is_joined():
    c = LocalCluster(workers=0, cpus=1)
    try:
        farm("devices", "--address", c.address, env=auth_env(), timeout=120, check=0)
    finally:
        c.stop()


def test_the_embedded_clusters_token_is_its_users_alone(tmp_path, monkeypatch):
    """Ray wrote ~/.ray/auth_token 0644 in a 0755 folder while its GCS listened on every
    interface."""
    from farm.execution.cluster import private_token

    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    private_token()
    token = tmp_path / ".ray" / "auth_token"
    assert token.stat().st_mode & 0o777 == 0o600 and len(token.read_text()) == 64
    assert token.parent.stat().st_mode & 0o777 == 0o700
    os.chmod(token, 0o644), os.chmod(token.parent, 0o755)  # as Ray leaves its own
    before = token.read_text()
    private_token()
    assert token.stat().st_mode & 0o777 == 0o600 and token.read_text() == before
    assert token.parent.stat().st_mode & 0o777 == 0o700
