import argparse
import os
import re
import subprocess
import sys

import pytest
from clitools import assert_user_error, farm, farm_here

from farm.cli import COMMANDS, build_parser, main
from farm.commands.options import DeprecatedAlias
from farm.model import weights
from farm.pipelines import catalog


def test_version_names_all_three():
    out = farm("--version", check=0).stdout
    assert out.startswith("farm ") and "Halide 21." in out and "Ray 2." in out


def test_help_lists_every_subcommand():
    """`farm --help` lists exactly the commands farm.cli dispatches, each with a help line,
    in order; every one has a --help of its own."""
    out = farm("--help", check=0).stdout
    section = out.split("positional arguments:", 1)[1].split("options:", 1)[0]
    listed = re.findall(r"^    ([a-z]+)(?: {2,}(\S.*))?$", section, re.M)
    assert [name for name, _ in listed] == list(COMMANDS), out
    for name, help_text in listed:  # its help on the same line, or the next one
        assert help_text or re.search(rf"^    {name}\n {{10,}}\S", section, re.M), name
    for cmd in COMMANDS:
        assert farm(cmd, "--help", check=0).stdout.startswith(f"usage: farm {cmd}")


def test_benchmarks_lists_the_six_the_corpus_by_family_and_how_to_name_your_own(tmp_path):
    out = farm("benchmarks", check=0).stdout
    sections = out.split("\n\n")
    builtins = sections[0]
    own = next(s for s in sections if s.startswith("Your own generators"))
    assert [ln.split()[0] for ln in builtins.splitlines()[1:]] == [
        b.name for b in catalog.builtin_benchmarks()]
    assert len(builtins.splitlines()) == 1 + 6
    if catalog.corpus_families():
        corpus = next(s for s in sections if s.startswith("The corpus"))
        listed = [ln.split()[0] for ln in corpus.splitlines()[1:]]
        for family, benches in catalog.corpus_families().items():
            assert family + ":" in listed
            assert all(b.name in listed for b in benches)
    forms = [ln.split()[0] for ln in own.splitlines()[1:] if ln.startswith("  ") and
             not ln.startswith("   ")]
    assert forms == ["path/to/file.py:NAME", "path/to/dir", "path/to/file.cpp[:NAME]",
                     "path/to/exe[:NAME]", "BENCH:name=value,..."]


def test_weights_baseline_and_check(tmp_path):
    out = tmp_path / "w"
    farm("weights", "baseline", "--out", out, check=0)
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
    # the two are re-timed, interleaved, and compared with an interval (farm.stats.verdict)
    ratio = r"\d+\.\d\dx"
    interval = r"\[\d+\.\d\d, \d+\.\d\d\]"
    assert re.search(
        r"^  re-timed 5 times each, interleaved: \d+\.\d{3} vs \d+\.\d{3} ms \(medians\); "
        rf"(autoscheduled is {ratio} (faster|slower) {interval} than the manual schedule|"
        rf"autoscheduled and the manual schedule are indistinguishable \({ratio} {interval}\))$",
        proc.stdout, re.M), proc.stdout


def test_run_user_errors(tmp_path, capsys):
    """Found before any work, in this process (the error boundary is cli.main's)."""
    assert_user_error(farm_here(capsys, "run", "nosuch"), "unknown benchmark",
                      "farm benchmarks")
    assert_user_error(farm_here(capsys, "run", "median3x4"), "unknown benchmark",
                      "did you mean median3x3?")
    assert_user_error(farm_here(capsys, "run", "median3x3", "--beam-size", "-1"),
                      "--beam-size")
    assert_user_error(farm_here(capsys, "run", "median3x3", "--parallelism", "0"),
                      "--parallelism")
    bad = tmp_path / "bad.weights"
    bad.write_bytes(b"not weights")
    assert_user_error(farm_here(capsys, "run", "median3x3", "--weights", bad), str(bad))
    assert_user_error(farm_here(capsys, "run", "median3x3", "--target", "bogus"), "bogus")
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert_user_error(farm_here(capsys, "run", "median3x3", "--out", blocker / "sub"), "--out")


def test_run_on_an_unknown_device_is_a_user_error():
    """After device discovery (on the embedded Ray), in a process of its own."""
    assert_user_error(farm("run", "median3x3", "--device", "phone9"), "phone9")


def test_output_piped_into_a_closed_reader_is_not_an_error():
    """`farm ... | head -1`: the reader goes away; no traceback, exit 0."""
    proc = subprocess.Popen([sys.executable, "-m", "farm", "benchmarks"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    proc.stdout.close()  # before the command prints anything: its first write fails
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err


# --- parse level, in-process: no Ray or Halide work ---------------------------------------

def _parsers(parser=None, path=("farm",)):
    """(path, parser) for the top-level parser and every subcommand's, nested ones too."""
    parser = parser or build_parser()
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, (*path, name))


def _parse(*argv):
    return build_parser().parse_args([str(a) for a in argv])


def _exit_code(argv, capsys) -> tuple[int, str]:
    """main(argv)'s exit code, whether returned or raised by argparse, and its stderr."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_every_subcommand_is_a_commands_module_with_add_parser_and_main():
    for name, module in COMMANDS.items():
        # a command named by a Python keyword (import) is a module that says its NAME
        assert module.__name__ == f"farm.commands.{name}" or getattr(module, "NAME", "") == name
        assert callable(module.add_parser) and callable(module.main)
    assert {p[1] for p, _ in _parsers() if len(p) == 2} == set(COMMANDS)


def test_every_argument_has_help_text_shown_by_help():
    walked = 0
    for path, parser in _parsers():
        text = parser.format_help()
        for action in parser._actions:
            walked += 1
            where = f"{' '.join(path)} {action.option_strings or action.metavar or action.dest}"
            if action.help == argparse.SUPPRESS:  # only old spellings may hide
                assert isinstance(action, DeprecatedAlias), where
                continue
            assert isinstance(action.help, str) and action.help.strip(), where
            shown = action.option_strings[0] if action.option_strings else action.metavar
            assert shown and shown in text, where
            if isinstance(action, argparse._SubParsersAction):  # each choice's line
                for choice in action._choices_actions:
                    assert choice.help and choice.dest in text, f"{where} {choice.dest}"
    assert walked > 50


def test_help_builds_without_importing_ray_halide_or_pyarrow():
    """`farm --help` builds every subcommand's parser: none may import the heavy library."""
    code = ("import sys\n"
            "from farm.cli import build_parser\n"
            "parser = build_parser()\n"
            "parser.format_help()\n"
            "heavy = {'ray', 'halide', 'pyarrow', 'numpy', 'matplotlib', 'scipy'}\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("command", ["autotune", "bench"])
def test_repeated_device_accumulates(command):
    first = ["autotune", "median3x3", "--out", "r"] if command == "autotune" else ["bench"]
    assert _parse(*first, "--device", "a", "b").devices == ["a", "b"]
    assert _parse(*first, "--device", "a", "--device", "b").devices == ["a", "b"]
    assert _parse(*first, "--device", "a", "b", "--device", "c").devices == ["a", "b", "c"]
    assert _parse(*first).devices is None  # every usable device


def test_run_takes_one_device_and_says_so_when_given_two(capsys):
    assert _parse("run", "median3x3", "--device", "a").device == "a"
    code, err = _exit_code(["run", "median3x3", "--device", "a", "--device", "b"], capsys)
    assert code == 2
    assert "farm run times on one device; give --device once" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["bench"], ["evaluate", "some-run"]])
def test_retimes_is_the_word_for_re_timings_and_repeats_its_old_spelling(argv):
    assert _parse(*argv, "--retimes", "7").retimes == 7
    assert _parse(*argv, "--repeats", "3").retimes == 3  # one argument, two spellings
    text = " ".join(build_parser()._subparsers._group_actions[0].choices[argv[0]]
                    .format_help().split())
    assert "--retimes N, --repeats N" in text and "--repeats is its old name" in text


def test_run_retimes_its_two_schedules_five_times_by_default():
    assert _parse("run", "median3x3").retimes == 5
    assert _parse("run", "median3x3", "--retimes", "9").retimes == 9


WRITERS = {  # every command that writes files, with what else it needs
    "run": ["run", "median3x3"],
    "autotune": ["autotune", "median3x3"],
    "report": ["report", "some-run"],
    "bench": ["bench", "median3x3"],
    "export": ["export", "some-run"],
    "weights baseline": ["weights", "baseline"],
}


@pytest.mark.parametrize("command", WRITERS)
def test_every_writing_command_takes_out(command):
    assert _parse(*WRITERS[command], "--out", "there").out == "there"


def test_out_is_required_where_there_is_no_default(capsys):
    for argv in (WRITERS["autotune"], WRITERS["export"], WRITERS["weights baseline"]):
        code, err = _exit_code(argv, capsys)
        assert code == 2, argv
        assert "required: --out" in err, err
    assert _parse(*WRITERS["run"]).out == "."
    assert _parse(*WRITERS["bench"]).out == "farm-bench"
    assert _parse(*WRITERS["report"]).out is None  # RUN_DIR/report


@pytest.mark.parametrize("old", ["-o", "--output"])
def test_weights_baseline_old_output_option_still_works(old, capsys):
    assert _parse("weights", "baseline", old, "w.weights").out == "w.weights"
    err = capsys.readouterr().err
    assert f"{old} is deprecated; use --out FILE" in err
    code, err = _exit_code(["weights", "baseline", "--out", "a", old, "b"], capsys)
    assert code == 2 and "not allowed with" in err


def test_export_old_positional_dir_still_works(capsys):
    assert _parse("export", "some-run", "dir").out == "dir"
    assert "deprecated; use --out DIR" in capsys.readouterr().err
    assert _parse("export", "--out", "dir", "some-run").out == "dir"
    code, err = _exit_code(["export", "some-run", "dir", "--out", "other"], capsys)
    assert code == 2 and "not allowed with" in err


def test_old_spellings_stay_out_of_help():
    help_text = {" ".join(path): parser.format_help() for path, parser in _parsers()}
    assert "--output" not in help_text["farm weights baseline"]
    assert "-o " not in help_text["farm weights baseline"]
    assert "RUN_DIR --out DIR" in help_text["farm export"]


def test_weights_baseline_with_the_old_option_writes_the_file(tmp_path):
    out = tmp_path / "w"
    proc = farm("weights", "baseline", "-o", out, check=0)
    assert out.stat().st_size == 17136
    assert "deprecated" in proc.stderr


class _NoUsableDevice:
    """A DeviceSession whose only device cannot be used (as on a host without the harness)."""

    def __init__(self, address=None, holder=""):
        from farm.devices.base import UNUSABLE, DeviceInfo

        self.devices = [DeviceInfo("cpu@h", "host", "h", state=UNUSABLE, problem="broken")]
        self.notes = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_bench_without_a_usable_device_is_a_user_error(tmp_path, capsys, monkeypatch):
    import farm.workflows.bench

    monkeypatch.setattr(farm.workflows.bench, "DeviceSession", _NoUsableDevice)
    code, err = _exit_code(["bench", "median3x3", "--out", tmp_path / "b"], capsys)
    assert code == 2
    assert err.startswith("farm bench: error: no usable device to bench on")
    assert "`farm devices`" in err
    assert len(err.strip().splitlines()) == 1


def test_a_ray_failure_is_one_line_but_a_bug_in_a_ray_task_keeps_its_traceback(
        monkeypatch, capsys):
    """Ray's system errors (a dead actor) are the cluster's failure; a RayTaskError wraps an
    exception the farm's own code raised in a worker: a bug, so its traceback is the report."""
    import ray.exceptions

    def raising(error):
        def main(args):
            raise error
        return main

    monkeypatch.setattr("farm.cli.lost_head", lambda check=False: None)
    command = COMMANDS["benchmarks"]
    monkeypatch.setattr(command, "main", raising(ray.exceptions.ActorDiedError()))
    code, err = _exit_code(["benchmarks"], capsys)
    assert code == 1 and "the Ray cluster failed: ActorDiedError" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err

    bug = ray.exceptions.RayTaskError("build", "Traceback ...", ValueError("a bug"))
    monkeypatch.setattr(command, "main", raising(bug.as_instanceof_cause()))
    with pytest.raises(ray.exceptions.RayTaskError) as raised:
        main(["benchmarks"])
    assert isinstance(raised.value, ValueError)


# refused before Ray starts (issue 22): what needs no cluster takes no seconds to refuse ----

BEFORE_RAY = {"autotune": ["autotune", "median3x3"], "run": ["run", "median3x3"],
              "bench": ["bench", "median3x3"]}


@pytest.mark.parametrize("command", list(BEFORE_RAY))
def test_out_naming_a_file_is_refused_before_ray_starts(command, tmp_path, capsys, no_ray):
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert_user_error(farm_here(capsys, *BEFORE_RAY[command], "--out", notes),
                      f"farm {command}: error: --out {notes} names a file, not a folder; "
                      "choose another --out")
    assert_user_error(farm_here(capsys, *BEFORE_RAY[command], "--out", notes / "run"),
                      f"--out {notes / 'run'} is inside {notes}, a file, not a folder")
    assert notes.read_text() == "mine"


@pytest.mark.parametrize("command", list(BEFORE_RAY))
def test_an_unknown_device_is_refused_before_ray_starts(command, tmp_path, capsys, no_ray):
    out = tmp_path / "out"
    assert_user_error(farm_here(capsys, *BEFORE_RAY[command], "--device", "phone7@nowhere",
                                "--out", out),
                      f"farm {command}: error: unknown device 'phone7@nowhere'; known devices: ",
                      "(see `farm devices`)")
    assert not out.exists() or command != "autotune"  # autotune makes no run directory


def test_autotune_refuses_another_commands_output_before_ray_starts(tmp_path, capsys,
                                                                     no_ray):
    """`farm evaluate`'s or `farm bench`'s --out is no run to resume."""
    out = tmp_path / "evaluated"
    out.mkdir()
    (out / "evaluate.parquet").write_bytes(b"")
    assert_user_error(farm_here(capsys, "autotune", "median3x3", "--out", out),
                      f"--out {out} holds evaluate.parquet and no manifest.json",
                      "choose another --out")
    assert sorted(p.name for p in out.iterdir()) == ["evaluate.parquet"]


def test_bad_weights_and_bench_specs_are_refused_before_ray_starts(tmp_path, capsys, no_ray):
    bad = tmp_path / "bad.weights"
    bad.write_bytes(b"not weights")
    for command in BEFORE_RAY:
        out = ["--out", tmp_path / command]
        assert_user_error(farm_here(capsys, *BEFORE_RAY[command], "--weights", bad, *out),
                          str(bad))
        assert_user_error(farm_here(capsys, command, "median9x9", *out), "median9x9")
        assert_user_error(farm_here(capsys, command, "median3x3:radius=x", *out),
                          "median3x3")


@pytest.mark.parametrize("args, words", [
    (("autotune", "median3x3", "--batch-size", "100000000"), ("--batch-size", "is more than",
                                                              "GB")),
    (("run", "median3x3", "--parallelism", "3000000000"), ("--parallelism", "256")),
    (("run", "median3x3", "--beam-size", "3000000000"), ("--beam-size", "1,024")),
    (("bench", "median3x3", "--retimes", "3000000000"), ("--retimes", "1,000")),
    (("autotune", "median3x3", "--compile-timeout", "inf"), ("--compile-timeout", "finite")),
    (("autotune", "median3x3", "--run-timeout", "nan"), ("--run-timeout", "finite")),
    (("autotune", "median3x3", "--budget", "400d"), ("--budget", "a year")),
    (("pretrain", "--pipelines", "99999999999"), ("--pipelines", "100,000")),
    (("pretrain", "--pipelines", "8", "--per-pipeline", "8"), ("--pipelines 8 makes one round",
                                                               "--pipelines 16")),
    (("autotune", "median3x3", "--round", "2"), ("unrecognized arguments: --round",)),
])
def test_every_number_is_bounded_and_no_option_abbreviated(tmp_path, capsys, no_ray, args,
                                                          words):
    """Unbounded, these grew the driver to 14-18 GB, aborted it (SIGABRT), killed the
    compile or ran without end; an abbreviation was taken for the option it began."""
    assert_user_error(farm_here(capsys, *args, "--out", tmp_path / "run"), *words)


def test_the_library_bounds_its_numbers_too(tmp_path, no_ray):
    from farm import api
    from farm.errors import BadInput

    with pytest.raises(BadInput, match="--batch-size 100,000,000 is more than"):
        api.tune(tmp_path / "run", "median3x3", batch_size=100_000_000)


@pytest.mark.slow  # builds the harness afresh (~20 s)
def test_the_first_run_on_a_machine_says_it_builds_the_timing_harness(tmp_path):
    env = {"FARM_CACHE_DIR": str(tmp_path / "cache")}
    first = farm("run", "median3x3", "--no-manual", "--retimes", "1", "--out", tmp_path,
                 env=env, check=0)
    assert "building the timing harness once on this machine" in first.stderr
    again = farm("run", "median3x3", "--no-manual", "--retimes", "1", "--out", tmp_path,
                 env=env, check=0)
    assert "building the timing harness" not in again.stderr


def test_bench_says_what_it_does_while_it_builds_and_re_times(tmp_path):
    """It printed one line, then nothing for 2m45."""
    out = farm("bench", "median3x3", "--retimes", "2", "--out", tmp_path, check=0).stdout
    assert "building 2 schedules (manual, beam32 baseline" in out
    assert re.search(r"built in \d+ s", out)
    assert "re-timed 1/2 on" in out and "re-timed 2/2 on" in out


def test_a_refused_bench_makes_no_out_folder(tmp_path, capsys, no_ray):
    out = tmp_path / "bench-out"
    assert_user_error(farm_here(capsys, "bench", "nosuch", "--out", out), "unknown benchmark")
    assert not out.exists()


def test_a_path_or_working_folder_that_is_not_utf8_is_one_line_exit_2(tmp_path):
    """`--out` with a non-UTF-8 byte gave Ray's traceback."""
    import subprocess
    import sys

    bad = bytes(tmp_path) + b"/x\xffy"
    proc = subprocess.run([sys.executable.encode(), b"-m", b"farm", b"autotune", b"median3x3",
                           b"--out", bad], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "not UTF-8" in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    folder = tmp_path / "w"
    folder.mkdir()
    odd = bytes(folder) + b"/\xfe"
    import os

    os.mkdir(odd)
    proc = subprocess.run([sys.executable, "-m", "farm", "run", "median3x3"], cwd=odd,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "working folder" in proc.stderr, proc.stderr
