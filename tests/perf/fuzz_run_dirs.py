"""A fuzz pass over crafted run directories: a run directory is data (issue 23).

Each JSON record of a run (manifest.json, rounds/round-000001.json, best/runtime.json,
weights/best.json) has each of its fields, one at a time, replaced by a hostile value
(wrong types, huge numbers, names with `../`, `/`, NUL, control characters and markup, a
path to a planted generator), and whole records are replaced by garbage. Each variant is
run through `farm report --html`, `farm export`, `farm bench --run`, `farm evaluate` and a
resume (`farm autotune`), in this process, with the devices and Ray replaced by a stop
(a command that gets that far passed every check). For each variant and command it checks:
no traceback, an error is one line, nothing is written outside the run directory and the
command's --out, and no code of the run's runs (the planted generator leaves a marker).

    python tests/perf/fuzz_run_dirs.py [--every N] [--commands report,export,...]

prints the count of variants tried, the outcomes per command and every failure; exit 1 on
any failure. --every N tries every Nth variant (tests/trust/test_fuzz.py runs a sample).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import sys
import tempfile
import traceback
from collections import Counter
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "trust"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import crafted  # tests/trust/crafted.py

RECORDS = ("manifest.json", "rounds/round-000001.json", "best/runtime.json",
           "weights/best.json")
COMMANDS = ("report", "export", "bench", "evaluate", "resume")
# what each kind of run is given to (evaluate takes campaigns, bench --run a single run)
FOR_KIND = {"single": ("report", "export", "bench", "resume"),
            "campaign": ("report", "export", "evaluate", "resume")}
CAMPAIGN = ("median3x3", "sobel")


def hostile_values(sandbox: Path, planted: Path) -> list:
    """crafted.BAD_VALUES, and what only a whole run can tell: a path out of the sandbox, a
    planted generator's path, a long name, dots."""
    return [*crafted.BAD_VALUES, 0, "x" * 100_000, "../../../victim",
            str(sandbox / "abs-victim"), "\x1b[31mred\x1b[0m\r\x07", str(planted),
            "dilate3x3\n", "..", "."]


def base_runs(folder: Path) -> dict[str, Path]:
    """A run of one pipeline (the first release's, with best/ records) and a campaign of
    two built-ins (a committed round, a round record)."""
    from farm.pipelines import catalog
    from farm.store.records import PipelineRecord, RoundRecord

    single = folder / "single"
    crafted.add_best(crafted.v1_run(single))
    run = crafted.campaign(folder / "campaign", [
        PipelineRecord(n, n, catalog.resolve(n).sha256) for n in CAMPAIGN])
    run.round_record_path(1).parent.mkdir(exist_ok=True)
    run.write_round(RoundRecord(round=1, candidates=20, pipelines={
        n: {"beam_ms": 1.0, "best_ms": 0.5, "best_so_far_ms": 0.5, "ok": 10}
        for n in CAMPAIGN}))
    return {"single": single, "campaign": run.path}


def variants(base: Path, sandbox: Path, planted: Path):
    """(record, field, value) for every field of every record, and whole-record garbage."""
    values = hostile_values(sandbox, planted)
    for record in RECORDS:
        if not (base / record).exists():
            continue
        data = json.loads((base / record).read_text())
        for where in crafted.fields(data):
            for value in values:
                yield record, where, value
        for garbage in ("", "{", "[]", '"text"', "null", "\x00" * 8, "{" * 5000):
            yield record, "<whole file>", garbage
        yield record, "<missing>", None


def apply(run: Path, record: str, where: str, value) -> None:
    path = run / record
    if where == "<whole file>":
        path.write_text(value)
    elif where == "<missing>":
        path.unlink()
    else:
        data = json.loads(path.read_text())
        crafted.set_field(data, where, value)
        path.write_text(json.dumps(data))


def argv(command: str, kind: str, run: Path, outs: Path) -> list[str]:
    benches = ["dilate3x3"] if kind == "single" else list(CAMPAIGN)
    return {"report": ["report", str(run), "--out", str(outs / "report"), "--html"],
            "export": ["export", str(run), "--out", str(outs / "export")],
            "bench": ["bench", *benches, "--run", str(run)],
            "evaluate": ["evaluate", str(run), "--out", str(outs / "evaluate")],
            "resume": ["autotune", *benches, "--rounds", "2", "--batch-size", "8", "--out",
                       str(run)]}[command]


def snapshot(folder: Path, skip: tuple[Path, ...]) -> dict[Path, tuple[int, int]]:
    out = {}
    for p in folder.rglob("*"):
        if any(p == s or s in p.parents for s in skip):
            continue
        st = p.lstat()  # a folder's own times change as the run and --out inside it do
        out[p] = (0, 0) if p.is_dir() and not p.is_symlink() else (st.st_size,
                                                                    st.st_mtime_ns)
    return out


def run_one(command: str, kind: str, run: Path, outs: Path) -> tuple[str, str]:
    """(outcome, detail): "refused" (exit 1/2, one line), "passed" (reached the devices
    or Ray, or finished), or a failure: "traceback", "not one line"."""
    from farm import cli

    stop = crafted.StopBeforeWork
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), \
            mock.patch("farm.workflows.bench.DeviceSession", crafted.StopSession), \
            mock.patch("farm.workflows.evaluate.DeviceSession", crafted.StopSession), \
            mock.patch("farm.execution.cluster.Cluster.connect",
                       side_effect=stop("stopped before Ray: every check passed")), \
            mock.patch("farm.cli.exit_when_stuck"):
        try:
            code = cli.main(argv(command, kind, run, outs))
        except SystemExit as e:  # argparse
            code = e.code if isinstance(e.code, int) else 2
        except BaseException:
            return "traceback", traceback.format_exc(limit=-4)
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    if code == stop.exit_code or code == 0:
        return "passed", ""
    if "Traceback" in err.getvalue():
        return "traceback", err.getvalue()[-1500:]
    if len([line for line in lines if "error:" in line]) != 1:
        return "not one line", err.getvalue()[-1500:]
    return "refused", lines[-1][:200]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--every", type=int, default=1, help="try every Nth variant")
    ap.add_argument("--commands", default=",".join(COMMANDS))
    a = ap.parse_args()
    commands = a.commands.split(",")
    with tempfile.TemporaryDirectory(prefix="farm-fuzz-") as tmp:
        sandbox = Path(tmp)
        marker = sandbox / "MARKER-the-planted-generator-ran"
        planted, _ = crafted.plant(sandbox / "planted", marker)
        bases = base_runs(sandbox / "deep" / "er")
        work = sandbox / "deep" / "er" / "work"
        run, outs = work / "run", work / "outs"
        tried, outcomes, failures = 0, {c: Counter() for c in commands}, []
        cases = [(kind, *v) for kind, base in bases.items()
                 for v in variants(base, sandbox, planted)]
        for n, (kind, record, where, value) in enumerate(cases):
            if n % a.every:
                continue
            tried += 1
            for command in (c for c in commands if c in FOR_KIND[kind]):
                base = bases[kind]
                shutil.rmtree(work, ignore_errors=True)
                shutil.copytree(base, run)
                (run / "generators").mkdir(exist_ok=True)
                shutil.copy(planted, run / "generators" / "dilate3x3.py")  # a copy in the run
                apply(run, record, where, value)
                before = snapshot(sandbox, (run, outs))
                outcome, detail = run_one(command, kind, run, outs)
                after = snapshot(sandbox, (run, outs))
                if after != before:
                    outcome, detail = "wrote outside", ", ".join(
                        str(p) for p in sorted(set(after) ^ set(before))[:5]) or "changed"
                if marker.exists():
                    outcome, detail = "code ran", ""
                    marker.unlink()
                outcomes[command][outcome] += 1
                if outcome not in ("refused", "passed"):
                    failures.append((command, f"{kind} {record}", where, repr(value)[:60],
                                     outcome, detail))
        runs = sum(sum(c.values()) for c in outcomes.values())
        print(f"{tried} variants tried (of {len(cases)}), {runs} command runs")
        for command in commands:
            print(f"  {command:<9} " + ", ".join(f"{k} {v}" for k, v in
                                                   sorted(outcomes[command].items())))
        print(f"failures: {len(failures)}")
        for f in failures[:40]:
            print("  " + " | ".join(f[:5]))
            print("    " + f[5].replace("\n", "\n    ")[:1200])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
