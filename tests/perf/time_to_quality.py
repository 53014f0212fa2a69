"""Time to a fast schedule: Halide's loop and `farm autotune` side by side, on one machine.

    python tests/perf/time_to_quality.py run    --work DIR [--minutes 30] [--pipelines ...]
                                                [--side NAME=FARM_ARGS ...]
    python tests/perf/time_to_quality.py retime --work DIR [--retimes 10]
    python tests/perf/time_to_quality.py report --work DIR

Both sides tune the same C++ generator (tests/perf/upstream/generators.cpp: median3x3,
gaussian5x5, unsharp) from Halide's baseline weights, alone on the machine, each for the same
wall time, the order alternated from one pipeline to the next:

- `loop`: Halide's adams2019_autotune_loop.sh from the halide wheel, unchanged (batch 32,
  parallelism 32), batch after batch, given the farm's host target; killed at the deadline.
- `farm` (and any `--side NAME=ARGS`, e.g. `screened=--screen 4`): `farm autotune` with
  `--rounds` far beyond the deadline, Ctrl-C'd at the deadline (its committed rounds are kept;
  its end stage is not run, and not counted).

Each side's best-so-far against wall time is its own measurement of each schedule, at the
time it was measured (the loop's bench.txt, the farm's row). `retime` rebuilds each side's
best-so-far schedule at every checkpoint (1, 2, 3, 5, 10, 20, 30 minutes) from what planned
it (the loop's batch weights, seed and search; the farm's row), checks the rebuilt schedule
is the one that was measured, and re-times all of them and the baseline's beam-32 interleaved
(--retimes each) on one device, with verdicts against the baseline. `report` writes the
table and the plot. Each step resumes: a side already done is not run again; a side cut off
(Ctrl-C, a stopped machine) is run again from its start.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import upstream_loop

CHECKPOINTS_MIN = (1, 2, 3, 5, 10, 20, 30)
PIPELINES = ("median3x3", "gaussian5x5", "unsharp")
PARALLELISM = 32  # the loop's autoscheduler.parallelism and HL_NUM_THREADS; the farm's default
BENCH_LINE = re.compile(r"best case of ([\d.eE+-]+) sec/iter")
BASELINE = "baseline beam32"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


# running the sides ---------------------------------------------------------------------


def _stop(proc: subprocess.Popen, first: int, grace_s: float) -> None:
    """Signal the process group `first`, then SIGKILL it after `grace_s`."""
    try:
        os.killpg(proc.pid, first)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        proc.wait()


def host_target() -> str:
    """The farm's host target, given to the loop too: left empty, the loop asks Halide's
    get_host_target, which keeps avx512_zen4 here, and the two sides would tune for different
    targets (and the loop's schedules could not be rebuilt for re-timing)."""
    from farm.machine.halide_env import host_target as farm_host

    return farm_host()


def run_loop(paths: dict, bench: str, out: Path, deadline: float) -> None:
    """Batches of Halide's loop until the deadline (the script runs one batch per call)."""
    samples = out / "samples"
    with open(out / "loop.log", "a") as log:
        while time.time() < deadline:
            proc = subprocess.Popen(
                ["bash", str(paths["script"]), str(paths["generator"]), bench, host_target(),
                 str(paths["weights"]),
                 str(paths["autosched"]), str(paths["distrib"]), str(samples)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                proc.wait(timeout=max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                _stop(proc, signal.SIGKILL, 5)
                return
            say(f"  loop: {len(list(samples.glob('batch_*')))} batches")


def run_farm(paths: dict, bench: str, out: Path, deadline: float, extra: list[str]) -> None:
    cmd = [sys.executable, "-m", "farm", "autotune", f"{paths['generator']}:{bench}",
           "--out", str(out / "run"), "--rounds", "10000", "--weights", str(paths["weights"]),
           *extra]
    with open(out / "farm.log", "a") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=max(0.0, deadline - time.time()))
            say(f"  farm ended before the deadline (exit {proc.returncode}): see {log.name}")
        except subprocess.TimeoutExpired:
            _stop(proc, signal.SIGINT, 120)  # as a user's Ctrl-C: committed rounds stay


def run_side(paths: dict, bench: str, side: str, extra: list[str] | None, work: Path,
             minutes: float) -> None:
    out = work / bench / side
    record = out / "side.json"
    if record.exists() and json.loads(record.read_text()).get("complete"):
        say(f"{bench} / {side}: done before")
        return
    shutil.rmtree(out, ignore_errors=True)  # cut off before: wall time starts again
    out.mkdir(parents=True)
    start = time.time()
    facts = {"pipeline": bench, "side": side, "started": start, "minutes": minutes,
             "farm_args": extra, "complete": False}
    record.write_text(json.dumps(facts))
    say(f"{bench} / {side}: {minutes:g} minutes")
    deadline = start + minutes * 60
    if extra is None:
        run_loop(paths, bench, out, deadline)
    else:
        run_farm(paths, bench, out, deadline, extra)
    facts.update(ended=time.time(), complete=True)
    record.write_text(json.dumps(facts))


def warm_farm(paths: dict, bench: str, work: Path) -> None:
    """Build the farm's timing harness and Halide runtime for this machine once (as after any
    earlier use of the farm), so that the first side does not pay for them."""
    scratch = work / "warm"
    shutil.rmtree(scratch, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "farm", "run", f"{paths['generator']}:{bench}",
                    "--beam-size", "1", "--no-manual", "--out", str(scratch)], check=True,
                   stdout=subprocess.DEVNULL)


# what each side found ------------------------------------------------------------------


def loop_points(out: Path, start: float) -> list[dict]:
    """Every sample the loop measured: when (s after the start), its ms, what planned it."""
    points = []
    for bench_txt in (out / "samples").glob("batch_*/*/bench.txt"):
        found = BENCH_LINE.search(bench_txt.read_text(errors="replace"))
        if found is None:
            continue
        sample_dir = bench_txt.parent
        batch_id = int(sample_dir.parent.name.split("_")[1])
        index = int(sample_dir.name)
        features = next(sample_dir.glob("*.featurization"), None)
        points.append({"t_s": bench_txt.stat().st_mtime - start,
                       "ms": float(found.group(1)) * 1e3, "batch": batch_id, "index": index,
                       "weights": str(sample_dir.parent / "used.weights"),
                       "featurization": str(features) if features else None})
    return points


def farm_points(out: Path, start: float) -> list[dict]:
    from farm.store.rundir import RunDir

    run = RunDir(out / "run")
    if not run.manifest_path.exists():
        return []
    rows = run.samples.read().to_pylist()
    return [{**row, "t_s": row["created_at"].timestamp() - start, "ms": row["runtime_ms"]}
            for row in rows if row["status"] == "ok" and row["runtime_ms"]]


def points_of(work: Path, bench: str, side: str) -> tuple[list[dict], dict]:
    out = work / bench / side
    facts = json.loads((out / "side.json").read_text())
    found = (loop_points(out, facts["started"]) if facts["farm_args"] is None
             else farm_points(out, facts["started"]))
    return sorted(found, key=lambda p: p["t_s"]), facts


def best_by(points: list[dict], minute: float) -> dict | None:
    """The side's fastest schedule (by its own measurement) measured within `minute`."""
    seen = [p for p in points if p["t_s"] <= minute * 60]
    return min(seen, key=lambda p: p["ms"]) if seen else None


def sides_of(work: Path, bench: str) -> list[str]:
    return sorted(p.parent.name for p in (work / bench).glob("*/side.json")
                  if json.loads(p.read_text()).get("complete"))


# re-timing -----------------------------------------------------------------------------


def _specs(work: Path, bench: str, benchmark, target) -> tuple[list, dict]:
    """The variants to build (the baseline's beam-32 and every side's best-so-far at every
    checkpoint) and, per variant key, what it stands for."""
    from farm.candidate import BEAM_SEARCH, CandidateSpec
    from farm.execution.compare import Variant
    from farm.model import weights
    from farm.model.featurization import schedule_key
    from farm.store.rundir import RunDir
    from farm.tuning.finalize import spec_from_row

    base = CandidateSpec(benchmark, target, weights.baseline(), parallelism=PARALLELISM,
                         **BEAM_SEARCH)
    variants, meaning = [Variant(BASELINE, base)], {BASELINE: {}}
    for side in sides_of(work, bench):
        points, facts = points_of(work, bench, side)
        for minute in CHECKPOINTS_MIN:
            p = best_by(points, minute)
            if p is None:
                continue
            key = f"{side} @{minute}m"
            if facts["farm_args"] is None:
                beam = p["index"] == 0  # the loop's sample 0 is beam-32, the rest probes
                spec = replace(base, weights=weights.load(p["weights"]),
                               beam_size=32 if beam else 1, random_dropout=100 if beam else 1,
                               seed=p["batch"] * 10000 + p["index"])  # "%04d%04d" % (b, i)
                expect = (schedule_key(Path(p["featurization"]).read_bytes())
                          if p["featurization"] else None)
                what = f"batch {p['batch']} sample {p['index']}"
            else:
                spec = spec_from_row(p, base, RunDir(work / bench / side / "run"))
                expect, what = p["schedule_key"], p["sample_id"]
                if spec is None:
                    meaning[key] = {"error": "its weights cannot be rebuilt"}
                    continue
            variants.append(Variant(key, spec, against=BASELINE))
            meaning[key] = {"side": side, "minute": minute, "found_s": p["t_s"],
                            "own_ms": p["ms"], "what": what, "expect_key": expect}
    return variants, meaning


def retime(work: Path, retimes: int) -> None:
    from farm.devices.timing import TimingConfig
    from farm.execution import compare
    from farm.execution.session import DeviceSession, default_target
    from farm.machine.targets import resolve
    from farm.pipelines import catalog

    paths = upstream_loop.prepare(work / "upstream")
    with DeviceSession(holder="time_to_quality") as session:
        info = next(i for i in session.devices if i.kind == "host")
        target = resolve(default_target(info))
        pool = session.pool([info], target)
        for bench in PIPELINES:
            done = work / bench / "retimed.json"
            if done.exists() or not sides_of(work, bench):
                continue
            benchmark = catalog.resolve(f"{paths['generator']}:{bench}")
            variants, meaning = _specs(work, bench, benchmark, target)
            say(f"{bench}: building {len(variants)} variants")
            built = compare.build(pool, variants, 900.0, distinct=True)
            say(f"{bench}: re-timing, {retimes} times each, interleaved")
            results = compare.retime(pool, built, PARALLELISM, TimingConfig(), retimes,
                                     device=info.id,
                                     on_round=lambda n: say(f"  re-timed {n}/{retimes}"))
            out = {}
            for key, c in results.items():
                m = dict(meaning.get(key, {}))
                expect = m.pop("expect_key", None)
                got = c.built.schedule_key
                out[key] = {**m, "median_ms": c.median_ms, "retimes_ms": list(c.retimes_ms),
                            "error": c.error,
                            "same_schedule": None if expect is None or got is None
                            else got == expect,
                            "verdict": c.verdict.as_json() if c.verdict else None}
            done.write_text(json.dumps(out, indent=1))
            say(f"{bench}: {done}")


# the report ----------------------------------------------------------------------------


def reach_minute(curve: list[tuple[float, float]], target_ms: float) -> float | None:
    """When a side's re-timed best-so-far first reaches `target_ms`, linearly interpolated
    between the checkpoints around it; None: not reached."""
    before = None
    for minute, ms in curve:
        if ms <= target_ms:
            if before is None or before[1] == ms:
                return minute
            m0, ms0 = before
            return m0 + (minute - m0) * (ms0 - target_ms) / (ms0 - ms)
        before = (minute, ms)
    return None


def report(work: Path) -> None:
    lines = ["| pipeline | side | " + " | ".join(f"{m} min" for m in CHECKPOINTS_MIN)
             + " | minutes to the loop's 30-min best |", "|---" * (len(CHECKPOINTS_MIN) + 3)
             + "|"]
    curves_all = {}
    for bench in PIPELINES:
        path = work / bench / "retimed.json"
        if not path.exists():
            continue
        got = json.loads(path.read_text())
        base = got[BASELINE]["median_ms"]
        curves: dict[str, list[tuple[float, float]]] = {}
        for key, v in got.items():
            if key != BASELINE and v.get("median_ms"):
                curves.setdefault(v["side"], []).append((v["minute"], v["median_ms"]))
        loop = dict(curves.get("loop", []))
        goal = loop.get(max(CHECKPOINTS_MIN))
        for side, curve in sorted(curves.items()):
            curve.sort()
            have = dict(curve)
            cells = []
            for m in CHECKPOINTS_MIN:
                v = got.get(f"{side} @{m}m")
                if m not in have or v is None:
                    cells.append("-")
                    continue
                word = v["verdict"]["verdict"] if v.get("verdict") else "?"
                mark = "" if v.get("same_schedule") in (True, None) else " (rebuilt differs)"
                cells.append(f"{have[m]:.3f} ({base / have[m]:.2f}x, {word}){mark}")
            reach = reach_minute(curve, goal) if goal else None
            lines.append(f"| {bench} | {side} | " + " | ".join(cells) + " | "
                         + (f"{reach:.1f}" if reach is not None else "not reached") + " |")
        curves_all[bench] = (curves, base)
    lines.append("")
    lines.append("Cells: the re-timed median ms of the side's best-so-far at that minute, its "
                 "speed-up over the baseline's beam-32 and the verdict against it.")
    text = "\n".join(lines)
    (work / "time_to_quality.md").write_text(text + "\n")
    print(text)
    _plot(curves_all, work / "time_to_quality.png")


def _plot(curves_all: dict, path: Path) -> None:
    from farm.report.output import pyplot, save_figure

    if not curves_all:
        return
    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves_all), figsize=(5 * len(curves_all), 4),
                             squeeze=False)
    for ax, (bench, (curves, base)) in zip(axes[0], curves_all.items(), strict=True):
        for side, curve in sorted(curves.items()):
            ax.step([m for m, _ in curve], [ms for _, ms in curve], where="post", marker="o",
                    label=side)
        ax.axhline(base, color="grey", linestyle=":", label="baseline beam-32")
        ax.set_xscale("log")
        ax.set_title(bench)
        ax.set_xlabel("wall time, minutes")
        ax.set_ylabel("re-timed best-so-far, ms")
        ax.legend()
    save_figure(fig, path)
    say(f"plot: {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("step", choices=("run", "retime", "report"))
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--pipelines", nargs="+", default=list(PIPELINES), choices=PIPELINES)
    p.add_argument("--side", action="append", default=[], metavar="NAME=FARM_ARGS",
                   help="a farm side besides `loop` and `farm` (e.g. screened=--screen 4)")
    p.add_argument("--only", nargs="+", metavar="SIDE", help="run only these sides")
    p.add_argument("--retimes", type=int, default=10)
    a = p.parse_args()
    # started in the background (`cmd &`), this process and its children would ignore
    # SIGINT, and the farm sides could not be stopped as a user's Ctrl-C stops them
    signal.signal(signal.SIGINT, signal.default_int_handler)
    a.work.mkdir(parents=True, exist_ok=True)
    if a.step == "run":
        sides: dict[str, list[str] | None] = {"loop": None, "farm": []}
        for given in a.side:
            name, _, args = given.partition("=")
            sides[name] = args.split()
        if a.only:
            sides = {k: v for k, v in sides.items() if k in a.only}
        paths = upstream_loop.prepare(a.work / "upstream")
        warm_farm(paths, a.pipelines[0], a.work)
        for i, bench in enumerate(a.pipelines):
            order = list(sides) if i % 2 == 0 else list(reversed(sides))
            for side in order:
                run_side(paths, bench, side, sides[side], a.work, a.minutes)
    elif a.step == "retime":
        retime(a.work, a.retimes)
    else:
        report(a.work)


if __name__ == "__main__":
    main()
