import os
import subprocess
import sys

from clitools import assert_user_error, farm

from farm import weights


def test_version_names_all_three():
    out = farm("--version", check=0).stdout
    assert out.startswith("farm ") and "Halide 21." in out and "Ray 2." in out


def test_help_lists_every_subcommand():
    out = farm("--help", check=0).stdout
    for cmd in ("run", "autotune", "devices", "report", "bench", "export", "weights",
                "benchmarks"):
        assert cmd in out


def test_benchmarks_lists_the_six(tmp_path):
    lines = farm("benchmarks", check=0).stdout.splitlines()
    assert [ln.split()[0] for ln in lines] == ["conv3x3a16", "conv3x3a32", "dilate3x3",
                                               "gaussian5x5", "median3x3", "sobel"]


def test_weights_baseline_and_check(tmp_path):
    out = tmp_path / "w"
    farm("weights", "baseline", "-o", out, check=0)
    assert out.stat().st_size == 17136
    assert weights.load(out).sha256.startswith("de088dc7285ad431")
    assert "usable" in farm("weights", "check", out, check=0).stdout
    out.write_bytes(out.read_bytes()[:1000])
    assert_user_error(farm("weights", "check", out), str(out), "truncated")


def test_run_prints_auto_and_manual_and_writes_the_schedule(tmp_path):
    proc = farm("run", "dilate3x3", "--beam-size", "1", "--parallelism", "2", "--out",
                tmp_path, check=0)
    assert "autoscheduled:" in proc.stdout and "manual:" in proc.stdout
    assert "ms" in proc.stdout
    assert "Func output" in (tmp_path / "dilate3x3.schedule.h").read_text()


def test_run_user_errors(tmp_path):
    assert_user_error(farm("run", "nosuch"), "unknown benchmark", "median3x3")
    assert_user_error(farm("run", "median3x3", "--beam-size", "-1"), "--beam-size")
    assert_user_error(farm("run", "median3x3", "--parallelism", "0"), "--parallelism")
    bad = tmp_path / "bad.weights"
    bad.write_bytes(b"not weights")
    assert_user_error(farm("run", "median3x3", "--weights", bad), str(bad))
    assert_user_error(farm("run", "median3x3", "--target", "bogus"), "bogus")
    assert_user_error(farm("run", "median3x3", "--device", "phone9"), "phone9")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_user_error(farm("run", "median3x3", "--out", blocker / "sub"), "--out")


def test_output_piped_into_a_closed_reader_is_not_an_error():
    """`farm ... | head -1`: the reader goes away; no traceback, exit 0."""
    proc = subprocess.Popen([sys.executable, "-m", "farm", "benchmarks"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdout.close()  # before the command prints anything: its first write fails
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
