"""`farm bench`: did pretraining help `farm run`? A matrix per benchmark and device of the
manual schedule, beam-32 with the baseline weights, beam-32 with tuned weights, and the best
schedule a run found, each re-timed several times (interleaved) on each device, with a
verdict against beam-32 with the baseline weights (farm.stats.verdict).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from farm.build import compiler
from farm.candidate import BEAM_SEARCH, DEFAULT_PARALLELISM, CandidateSpec
from farm.devices.timing import TimingConfig
from farm.errors import BadInput, RunDirError
from farm.execution import compare
from farm.execution.session import DeviceSession, check_usable, default_target, find
from farm.machine.targets import resolve
from farm.model import weights
from farm.pipelines import catalog
from farm.pipelines.benchmark import Benchmark
from farm.report import comparison
from farm.report.output import pyplot, save_figure
from farm.store.registry import Registry
from farm.store.rundir import RunDir

VARIANTS = ("manual", "beam32 baseline", "beam32 tuned", "run best")
SCHEMA = pa.schema([("benchmark", pa.string()), ("device_id", pa.string()),
                    ("device_kind", pa.string()), ("target", pa.string()),
                    ("variant", pa.string()), ("median_ms", pa.float64()),
                    ("min_ms", pa.float64()), ("retimes_ms", pa.list_(pa.float64())),
                    ("weights_sha256", pa.string()), ("error", pa.string()),
                    ("vs_baseline", pa.float64()), ("vs_baseline_low", pa.float64()),
                    ("vs_baseline_high", pa.float64()), ("verdict", pa.string()),
                    ("created_at", pa.timestamp("us", tz="UTC"))])


@dataclass(frozen=True)
class TunedRun:
    """What `--run RUN_DIR` contributes: its benchmark, target, tuned weights, best schedule.
    Its benchmark runs only as catalog.recorded allows: a built-in, or the generator the
    user names again (checked against `sha256`, what the run recorded)."""

    benchmark: str
    target: str
    parallelism: int
    best_weights: Path
    best: dict | None
    sha256: str = ""
    campaign: bool = False
    manifest_path: Path | None = None

    @classmethod
    def load(cls, path: str | Path) -> TunedRun:
        run = RunDir(path)
        m = run.read_manifest()
        if m is None:
            raise RunDirError(f"--run {path} is not a run directory (no manifest.json)")
        best_weights = run.best_weights if run.best_weights.exists() else run.latest_weights
        record = run.read_retiming()  # best/runtime.json
        # `best` keeps the record's JSON keys, plus where the weights that planned it are
        best = None if record is None else {
            **record.to_json(), "weights_path": str(run.retiming_weights(record))}
        return cls(m.benchmark, m.target, m.parallelism, best_weights, best,
                   m.benchmark_sha256, m.campaign, run.manifest_path)

    def benchmark_for(self, name: str | None) -> Benchmark:
        """The benchmark to bench: the run's own when `name` is None (a user's generator
        only by catalog.recorded's rules), else `name`, the user's; when that is the run's
        generator by path, checked against the run's sha256 before any of its code runs."""
        if name is None:
            run = self.manifest_path.parent if self.manifest_path else "RUN_DIR"
            if self.campaign:
                raise BadInput(f"--run {run} is a campaign: name the benchmarks to bench "
                               f"(its pipelines: `farm report {run}`)")
            return catalog.recorded(self.benchmark, self.sha256, (), str(self.manifest_path),
                                    f"farm bench {{ref}} --run {run}")
        if not self.campaign:
            path = catalog.generator_path(self.benchmark)
            if path is not None and catalog.names_path(name, path):
                return catalog.resolve(name, self.sha256 or None)
        return catalog.resolve(name)


def variants(bench, target, parallelism, tuned: Path | None, run: TunedRun | None):
    base = CandidateSpec(bench, target, weights.baseline(), parallelism=parallelism,
                         **BEAM_SEARCH)
    out = [("manual", compiler.manual_spec(base)), ("beam32 baseline", base)]
    if tuned is not None:
        out.append(("beam32 tuned", replace(base, weights=weights.load(tuned))))
    if run is not None and run.best and run.benchmark in (bench.ref, bench.name):
        b = run.best
        out.append(("run best", replace(base, weights=weights.load(b["weights_path"]),
                                        beam_size=b["beam_size"],
                                        random_dropout=b["random_dropout"], seed=b["seed"],
                                        parallelism=b["parallelism"])))
    return out


BUILD_TIMEOUT_S = 900.0  # a variant whose build takes longer is reported as failed
# Interleaved re-timings per schedule: enough for a true 10% difference on median3x3 to get a
# "faster"/"slower" verdict in at least 8 of 10 runs of `farm bench` here (PERFORMANCE.md,
# *Verdicts*; tests/perf/verdicts.py measures it).
DEFAULT_RETIMES = 10
BASELINE = "beam32 baseline"


def run_bench(names: list[str], device_ids: list[str] | None, weights_file: str | None,
              run_dir: str | None, address: str | None, retimes: int = DEFAULT_RETIMES,
              progress=print,
              ) -> list[dict]:
    run = TunedRun.load(run_dir) if run_dir else None
    if not names and run is None:
        raise BadInput("name benchmarks (or `all`), or give --run RUN_DIR")
    names = catalog.expand(names)  # suites: `all`, `corpus`, a corpus family
    if run is None:
        benches = [catalog.resolve(n) for n in names]
    else:  # a run directory is data: its benchmark runs only as catalog.recorded allows
        benches = [run.benchmark_for(n) for n in names] if names else [run.benchmark_for(None)]
    # without --weights or --run, each device class's current model is the tuned weights
    from_registry = weights_file is None and run is None
    if weights_file == weights.BASELINE:  # Halide's: nothing tuned to compare
        weights.resolve(weights_file)  # (refused when a file of that name is here)
        weights_file = None
    tuned = Path(weights_file) if weights_file else (run.best_weights if run else None)
    best = run.best["weights_path"] if run and run.best and any(
        run.benchmark in (b.ref, b.name) for b in benches) else None  # (as variants())
    for path in (tuned, best):
        if path is not None:
            weights.load(path)  # a bad file stops us before any work (and before Ray)
    parallelism = run.parallelism if run else DEFAULT_PARALLELISM
    rows = []
    with DeviceSession(address, holder=run_dir or "farm bench") as session:
        by_target: dict[str, list] = {}
        for info in ([find(session.devices, i) for i in device_ids] if device_ids
                     else session.devices):
            target = resolve(run.target if run else default_target(info))
            if device_ids:
                check_usable(info, target)
            elif info.problem_for(target):
                continue
            by_target.setdefault(target.compile, []).append(info)
        for infos in by_target.values():
            target = resolve(run.target if run else default_target(infos[0]))
            here = tuned
            if from_registry:
                model = Registry().current(infos[0].device_class.name)
                if model is not None:
                    model.load()  # (checked against what was promoted)
                    here = model.weights_path
                    progress(f"tuned weights: the current model of class "
                             f"{model.record.device_class}, {model.record.sha256[:16]} "
                             f"({model.record.describe()})")
            pool = session.pool(infos, target)
            for bench in benches:
                progress(f"{bench.label} on {', '.join(i.id for i in infos)} ...")
                rows += _bench_one(bench, target, parallelism, here, run, pool, retimes,
                                   progress)
    return rows


def _bench_one(bench, target, parallelism, tuned, run, pool, retimes, progress
               ) -> list[dict]:
    specs = variants(bench, target, parallelism, tuned, run)
    started = time.monotonic()
    progress(f"  building {len(specs)} schedules ({', '.join(label for label, _ in specs)}; "
             "a beam-32 search takes seconds to minutes) ...")
    built = compare.build(pool, [compare.Variant(label, spec, against=_against(label))
                                 for label, spec in specs], BUILD_TIMEOUT_S)
    progress(f"  built in {time.monotonic() - started:.0f} s")
    rows = []
    for handle in list(pool.usable()):
        started = time.monotonic()

        def said(n: int, device=handle.info.id, started=started) -> None:
            left = (time.monotonic() - started) / n * (retimes - n)
            progress(f"  re-timed {n}/{retimes} on {device}, interleaved"
                     + (f"; ~{left:.0f} s left" if n < retimes else ""))

        results = compare.retime(pool, built, parallelism, TimingConfig(), retimes,
                                 device=handle.info.id, on_round=said)
        for label, spec in specs:
            c = results[label]
            rows.append({"benchmark": bench.label, "device_id": handle.info.id,
                         "device_kind": handle.info.kind, "target": target.compile,
                         "variant": label, **comparison.row(
                             c, c.verdict, spec.weights.sha256 if spec.weights else None)})
    return rows


def _against(label: str) -> str | None:
    return None if label == BASELINE else BASELINE


def format_table(rows: list[dict]) -> str:
    groups = comparison.grouped(rows, lambda r: (r["benchmark"], r["device_id"]))
    shown = comparison.present(rows, VARIANTS)
    against = [(heading, v) for heading, v in (
        ("manual / baseline", "manual"), ("tuned / baseline", "beam32 tuned"),
        ("run best / baseline", "run best")) if v in shown]  # a column of nothing: left out
    return comparison.format_table(
        ("benchmark", "device"), ((key, groups[key]) for key in sorted(groups)),
        shown, against, _versus) + (
        "\nagainst beam32 baseline: median of paired interleaved re-timings with a 95% "
        "bootstrap interval (docs/autotuning.md: how ratios read)")


def _versus(rows: comparison.Rows, variant: str) -> str:
    r = rows.get(variant)
    if r is None and variant == "run best":
        return "not the run's pipeline"  # (--run's best is of its own pipeline only)
    if variant == "beam32 tuned" and r is not None and r["weights_sha256"] and \
            r["weights_sha256"] == rows.get(BASELINE, {}).get("weights_sha256"):
        return "same weights (tuning kept the baseline)"
    return comparison.versus(r)


def write_results(rows: list[dict], out_dir: Path) -> tuple[Path, Path]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return comparison.write_results(rows, SCHEMA, out_dir / f"bench-{stamp}.parquet",
                                 out_dir / f"bench-{stamp}.png", _plot)


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
