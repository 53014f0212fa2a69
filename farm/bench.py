"""`farm bench`: did pretraining help `farm run`? A matrix per benchmark and device of the
manual schedule, beam-32 with the baseline weights, beam-32 with tuned weights, and the best
schedule a run found, each re-timed several times (interleaved) on each device.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from farm import catalog, compile, weights
from farm.candidate import BEAM_SEARCH, DEFAULT_PARALLELISM, OK, CandidateSpec
from farm.devices.session import DeviceSession, default_target
from farm.errors import BadInput, RunDirError
from farm.output import columns, pyplot, save_figure
from farm.rundir import RunDir, read_json
from farm.targets import resolve
from farm.timing import TimingConfig

VARIANTS = ("manual", "beam32 baseline", "beam32 tuned", "run best")
SCHEMA = pa.schema([("benchmark", pa.string()), ("device_id", pa.string()),
                    ("device_kind", pa.string()), ("target", pa.string()),
                    ("variant", pa.string()), ("median_ms", pa.float64()),
                    ("min_ms", pa.float64()), ("retimes_ms", pa.list_(pa.float64())),
                    ("weights_sha256", pa.string()), ("error", pa.string()),
                    ("created_at", pa.timestamp("us", tz="UTC"))])


@dataclass(frozen=True)
class Run:
    """What `--run RUN_DIR` contributes: its benchmark, target, tuned weights, best schedule."""

    benchmark: str
    target: str
    parallelism: int
    best_weights: Path
    best: dict | None

    @classmethod
    def load(cls, path: str | Path) -> Run:
        run = RunDir(path)
        m = run.read_manifest()
        if m is None:
            raise RunDirError(f"--run {path} is not a run directory (no manifest.json)")
        best_weights = run.best_weights if run.best_weights.exists() else run.latest_weights
        best = read_json(run.best_dir / "runtime.json")
        if best:
            best["weights_path"] = str(run.path / "weights" / best["weights"])
        return cls(m.benchmark, m.target, m.parallelism, best_weights, best)


def variants(bench, target, parallelism, tuned: Path | None, run: Run | None):
    base = CandidateSpec(bench, target, weights.baseline(), parallelism=parallelism,
                         **BEAM_SEARCH)
    out = [("manual", compile.manual_spec(base)), ("beam32 baseline", base)]
    if tuned is not None:
        out.append(("beam32 tuned", replace(base, weights=weights.load(tuned))))
    if run is not None and run.best and run.benchmark in (bench.ref, bench.name):
        b = run.best
        out.append(("run best", replace(base, weights=weights.load(b["weights_path"]),
                                        beam_size=b["beam_size"],
                                        random_dropout=b["random_dropout"], seed=b["seed"],
                                        parallelism=b["parallelism"])))
    return out


def run_bench(names: list[str], device_ids: list[str] | None, weights_file: str | None,
              run_dir: str | None, address: str | None, repeats: int = 5, progress=print,
              ) -> list[dict]:
    run = Run.load(run_dir) if run_dir else None
    if not names:
        if run is None:
            raise BadInput("name benchmarks (or `all`), or give --run RUN_DIR")
        names = [run.benchmark]
    if names == ["all"]:
        names = [b.name for b in catalog.builtin_benchmarks()]
    benches = [catalog.resolve(n) for n in names]
    tuned = Path(weights_file) if weights_file else (run.best_weights if run else None)
    if tuned is not None:
        weights.load(tuned)  # a bad file stops us before any work
    parallelism = run.parallelism if run else DEFAULT_PARALLELISM
    rows = []
    with DeviceSession(address) as session:
        if device_ids:
            infos = [session.find(i) for i in device_ids]
        else:
            infos = [d for d in session.devices if d.usable]
        by_target: dict[str, list] = {}
        for info in infos:
            target = resolve(run.target if run else default_target(info))
            if info.problem_for(target):
                if device_ids:
                    raise BadInput(f"device {info.id} cannot be used: "
                                   f"{info.problem_for(target)}")
                continue
            by_target.setdefault(target.compile, []).append((info, target))
        for group in by_target.values():
            target = group[0][1]
            runners = [session.runner(info) for info, _ in group]
            for bench in benches:
                progress(f"{bench.name} on {', '.join(i.id for i, _ in group)} ...")
                rows += _bench_one(bench, target, parallelism, tuned, run, runners, repeats)
    return rows


def _bench_one(bench, target, parallelism, tuned, run, runners, repeats) -> list[dict]:
    built = []
    for label, spec in variants(bench, target, parallelism, tuned, run):
        result, binary = runners[0].build(spec)
        built.append((label, spec, result, binary))
    rows = []
    timing = TimingConfig()
    for runner in runners:
        times: dict[str, list[float]] = {label: [] for label, *_ in built}
        errors: dict[str, str] = {}
        for _ in range(repeats):  # interleaved, so drift hits every variant alike
            for label, spec, result, binary in built:
                if not result.ok:
                    errors[label] = result.error.splitlines()[0]
                    continue
                m = runner.time(binary, spec.parallelism, timing)
                if m.status == OK:
                    times[label].append(m.best_ms)
                else:
                    errors[label] = m.error
        for label, spec, *_ in built:
            t = times[label]
            rows.append({"benchmark": bench.name, "device_id": runner.info.id,
                         "device_kind": runner.info.kind, "target": target.compile,
                         "variant": label, "median_ms": statistics.median(t) if t else None,
                         "min_ms": min(t) if t else None, "retimes_ms": t,
                         "weights_sha256": spec.weights.sha256 if spec.weights else None,
                         "error": errors.get(label) if not t else None,
                         "created_at": datetime.now(timezone.utc)})
    return rows


def format_table(rows: list[dict]) -> str:
    keys = sorted({(r["benchmark"], r["device_id"]) for r in rows})
    present = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    header = ("benchmark", "device", *(f"{v} ms" for v in present), "tuned vs baseline")
    table = [header]
    for bench, device in keys:
        mine = [r for r in rows if (r["benchmark"], r["device_id"]) == (bench, device)]
        cells = {r["variant"]: r["median_ms"] for r in mine}
        shas = {r["variant"]: r["weights_sha256"] for r in mine}
        base, tuned = cells.get("beam32 baseline"), cells.get("beam32 tuned")
        verdict = "-"
        if shas.get("beam32 tuned") and shas.get("beam32 tuned") == shas.get("beam32 baseline"):
            verdict = "same weights (tuning kept the baseline)"
        elif base and tuned:
            verdict = (f"{base / tuned:.2f}x faster" if tuned < base
                       else f"{tuned / base:.2f}x slower")
        table.append((bench, device, *("-" if cells.get(v) is None else f"{cells[v]:.3f}"
                                       for v in present), verdict))
    return columns(table)


def write_results(rows: list[dict], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    table = out_dir / f"bench-{stamp}.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), table)
    return table, _plot(rows, out_dir / f"bench-{stamp}.png")


def _plot(rows: list[dict], path: Path) -> Path:
    plt = pyplot()
    keys = sorted({(r["benchmark"], r["device_id"]) for r in rows})
    present = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(keys) + 2), 4.5))
    width = 0.8 / len(present)
    for j, variant in enumerate(present):
        ys = [next((r["median_ms"] for r in rows if (r["benchmark"], r["device_id"]) == k
                    and r["variant"] == variant), None) for k in keys]
        ax.bar([i + j * width for i in range(len(keys))],
               [y if y is not None else 0 for y in ys], width, label=variant)
    ax.set_xticks([i + width * (len(present) - 1) / 2 for i in range(len(keys))])
    ax.set_xticklabels([f"{b}\n{d}" for b, d in keys], fontsize=8)
    ax.set(ylabel="median runtime (ms)", title="farm bench: schedules and weights per device")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return save_figure(fig, path)
