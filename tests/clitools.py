"""Run the `farm` command line as a user does: a separate process, from another folder."""

import os
import subprocess
import sys
from pathlib import Path


def farm(*args, cwd=None, env=None, timeout=600, check=None):
    """Run `python -m farm ARGS`; return the CompletedProcess (text)."""
    full_env = dict(os.environ, **(env or {}))
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    proc = subprocess.run([sys.executable, "-m", "farm", *map(str, args)], cwd=cwd or Path.home(),
                          env=full_env, capture_output=True, text=True, timeout=timeout)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def assert_user_error(proc, *words):
    """Exit 2, one line on stderr naming the culprit, no traceback."""
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, (proc.stdout, proc.stderr[-3000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def farm_here(capsys, *args):
    """`farm ARGS` in this process (for errors found before any work): a CompletedProcess."""
    from farm.cli import main

    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse's own errors
        code = e.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(["farm", *map(str, args)], code, out, err)
