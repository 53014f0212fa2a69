"""The compile gate's folder trusts nothing another user put in it, survives being removed
under a running farm, and signals a process only if it is still the one it registered."""

import os
import shutil
import signal
import subprocess
import sys
import time

import psutil
import pytest

from farm.devices import gate
from farm.devices.gate import GateError


@pytest.fixture
def folder(tmp_path, monkeypatch):
    path = tmp_path / "gate"
    monkeypatch.setenv("FARM_GATE_DIR", str(path))
    return path


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to make a file of another user")
def test_a_lock_file_of_another_user_is_refused_not_waited_on(folder):
    gate.gate_dir()
    lock = folder / "gate.lock"
    lock.touch()
    os.chown(lock, 65534, 65534)  # another user's lock would block every compile
    with pytest.raises(GateError, match=r"holds gate.lock, which belongs to uid 65534"), \
            gate.compiling():
        pass


def test_a_folder_removed_under_a_running_farm_is_made_again_and_said(folder, capsys):
    with gate.compiling():
        pass
    shutil.rmtree(folder)  # as logind's RemoveIPC does at a logout
    with gate.compiling():
        assert (folder / "compilers").is_dir()
    err = capsys.readouterr().err
    assert f"the compile gate's folder {folder} vanished; made it again" in err
    assert oct(os.stat(folder).st_mode & 0o777) == "0o700"


def test_a_process_is_signalled_only_if_it_is_still_the_one_registered():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = psutil.Process(child.pid).create_time()
        # a pid whose process started at another time: a reused pid, never signalled
        assert gate._signal(child.pid, start - 100.0, signal.SIGSTOP) is False
        time.sleep(0.2)
        assert psutil.Process(child.pid).status() != psutil.STATUS_STOPPED
        assert gate._signal(child.pid, start, signal.SIGSTOP) is True
        deadline = time.monotonic() + 5
        while psutil.Process(child.pid).status() != psutil.STATUS_STOPPED:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert gate._signal(child.pid, start, signal.SIGCONT) is True
    finally:
        child.kill()
        child.wait()
    assert gate._signal(child.pid, start, signal.SIGCONT) is False  # gone
