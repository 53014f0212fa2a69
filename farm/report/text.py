"""`farm report`: what a researcher looks at after a run. Tables and matplotlib plots.

Everything comes from the run directory: rounds/*.json (per-round timings and
the acceptance of new weights: how well the weights that planned a round rank
its schedules, which they were not trained on, and each candidate's figures),
the sample dataset, and best/runtime.json (the final interleaved re-timing
with verdicts).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from farm.candidate import DUPLICATE, OK
from farm.errors import BadInput, RunDirError
from farm.report.output import columns
from farm.report.progress import plural
from farm.stats import verdict
from farm.store.records import (
    MANUAL_LABEL,
    START_LABEL,
    BestWeightsRecord,
    Manifest,
    RetimingRecord,
    RoundRecord,
    RunKind,
    VerdictRecord,
)
from farm.store.rundir import RunDir, class_dirs
from farm.store.samples import REPORT_COLUMNS, cause

HELD_OUT_LABEL = ("held-out rank: share of the round's schedule pairs (one 1.2x slower than "
                  "the other) that the weights which planned it order right; they were not "
                  "trained on them.")
TRAIN_RATE_LABEL = ("trainer rate: Halide's trainer's own figure, on its TRAINING data: the "
                    "share of schedules over 1.3x slower than the fastest that it predicts "
                    "slower than the fastest.")


@dataclass
class Report:
    run: RunDir
    manifest: Manifest
    rows: list[dict]  # the samples' REPORT_COLUMNS
    rounds: list[dict]  # one per round: figures from the samples and the round record
    best: RetimingRecord | None  # best/runtime.json
    handed: BestWeightsRecord | None = None  # weights/best.json
    text: str = ""
    pipeline: str = ""  # a campaign's pipeline this report is restricted to

    @property
    def title(self) -> str:
        m = self.manifest
        if self.pipeline:
            return f"{self.pipeline} in a campaign of {plural(len(m.pipelines), 'pipeline')}"
        if m.kind is RunKind.IMPORTED:
            return (f"samples of Halide's loop, imported: "
                    f"{', '.join(p.name for p in m.pipelines)}")
        if m.kind is RunKind.PRETRAINING:
            return f"pre-training on {m.benchmark}: {plural(len(m.pipelines), 'pipeline')}"
        if m.campaign:
            return f"campaign of {', '.join(p.name for p in m.pipelines)}"
        return m.generator


def build_report(run_dir: str | Path, pipeline: str | None = None) -> Report:
    """The report of a run; of a campaign's `pipeline` only, when given."""
    run = RunDir(run_dir)
    manifest = run.read_manifest()
    if manifest is None:
        found = class_dirs(run.path)
        raise RunDirError(f"{run.path} is not a run directory (no manifest.json); give the "
                          "--out of a `farm autotune`" + (
                              f" or one class's: {', '.join(str(d) for d in found)}"
                              if found else ""))
    if pipeline and (not manifest.campaign or manifest.pipeline(pipeline) is None):
        names = ", ".join(p.name for p in manifest.pipelines) if manifest.campaign else ""
        raise BadInput(f"--pipeline {pipeline}: " + (
            f"not a pipeline of this campaign ({names})" if names else
            f"{run.path} is not a campaign (--pipeline is for campaigns)"))
    rows = run.samples.read(REPORT_COLUMNS).to_pylist()
    if pipeline:
        rows = [row for row in rows if row["benchmark"] == pipeline]
    rounds = []
    for r in sorted({row["round"] for row in rows}):
        mine = [row for row in rows if row["round"] == r]
        ok = [row["runtime_ms"] for row in mine if row["status"] == OK]
        failures: dict[str, int] = {}
        for row in mine:
            if row["status"] not in (OK, DUPLICATE):
                failures[row["status"]] = failures.get(row["status"], 0) + 1
        record = run.read_round(r)  # None: the round's driver died before writing it
        acc = record.acceptance if record else None
        cands = acc.candidates if acc else []
        # a candidate judged has an accuracy and a gain's lower bound (farm.model.acceptance.judge)
        judged = [(c.gain_low, c) for c in cands[1:]
                  if c.accuracy is not None and c.gain_low is not None]
        top = max(judged, key=lambda g: g[0])[1] if judged else None
        winner = next((c for c in cands if c.name == acc.accepted), None) if acc else None
        trained = winner or top
        rounds.append({
            "round": r, "candidates": len(mine), "ok": len(ok), "failures": failures,
            "duplicates": sum(row["status"] == DUPLICATE for row in mine),
            "distinct": len({(row["benchmark"], row["schedule_key"]) for row in mine
                             if row["status"] == OK}),
            "best_ms": min(ok, default=None),
            "median_ms": statistics.median(ok) if ok else None,
            "beam_ms": ((record.pipelines or {}).get(pipeline, {}).get("beam_ms") if pipeline
                        else record.beam_ms) if record else None,
            "wall_s": record.wall_s if record else None,
            "record": record,  # the page's decisions and times read it
            "held_out": cands[0].accuracy if cands else None,
            "best_candidate": top.accuracy if top else None,
            "provisional": acc.accepted if acc is not None and acc.switched else None,
            "beam_check": _beam_check(record),
            "train_rate": trained.train_rate if trained else None,
            "runtimes": ok})
    report = Report(run, manifest, rows, rounds, run.read_retiming(pipeline or ""),
                    run.read_best_weights_record(), pipeline=pipeline or "")
    report.text = _text(report)
    if manifest.campaign and not pipeline:
        report.text += "\n\n" + _pipelines_text(run, manifest, rows)
    return report


MAX_PIPELINE_SECTIONS = 12  # a campaign's pipelines drawn one by one, at most


def pipeline_sections(manifest: Manifest) -> list[str]:
    """The pipelines of a campaign that get plots and a page section of their own: every
    one, in a campaign of at most MAX_PIPELINE_SECTIONS; none in a pre-training (each of
    its pipelines is one round's) or a bigger campaign, where `--pipeline NAME` shows one."""
    if not manifest.campaign or manifest.kind is RunKind.PRETRAINING or \
            len(manifest.pipelines) > MAX_PIPELINE_SECTIONS:
        return []
    return [p.name for p in manifest.pipelines]


PIPELINE_HEADER = ("pipeline", "since round", "samples", "ok", "distinct", "best sample ms",
                   "final best ms", "vs start weights' beam")


def pipeline_rows(run: RunDir, manifest: Manifest, rows: list[dict]) -> list[tuple[str, ...]]:
    """A campaign's pipelines, a row of PIPELINE_HEADER's cells each."""
    table: list[tuple[str, ...]] = []
    for p in manifest.pipelines:
        mine = [r for r in rows if r["benchmark"] == p.name]
        ok = [r for r in mine if r["status"] == OK]
        best = run.read_retiming(p.name)
        winner = best.finalist_labelled(best.finalist) if best else None
        table.append((p.name, str(p.first_round), str(len(mine)), str(len(ok)),
                      str(len({r["schedule_key"] for r in ok})),
                      _num(min((r["runtime_ms"] for r in ok), default=None), ".3f"),
                      _num(best.runtime_ms if best else None, ".3f"),
                      _verdict(winner.vs_start if winner else None) or "-"))
    return table


def _pipelines_text(run: RunDir, manifest: Manifest, rows: list[dict]) -> str:
    """A campaign's pipelines, one line each (`farm report RUN --pipeline NAME`: all), and
    how each round was split across them."""
    text = ("per pipeline (best/NAME/ holds each one's best schedule; `farm report RUN_DIR "
            "--pipeline NAME` shows its rounds and final re-timing):\n"
            + columns([PIPELINE_HEADER, *pipeline_rows(run, manifest, rows)]))
    shares = allocation_rows(run, manifest, rows)
    if shares:
        text += (f"\n\ncandidates per round and pipeline (allocation: {manifest.allocation}; "
                 "farm.search.allocation), and why, in the last round:\n"
                 + columns(shares[0], right=True) + "\n" + "\n".join(shares[1]))
    return text


def allocation_rows(run: RunDir, manifest: Manifest, rows: list[dict]
                    ) -> tuple[list[tuple[str, ...]], list[str]] | None:
    """A campaign's candidates per round (a row per round, a column per pipeline) and
    the last round's reasons, one line per pipeline; None for a run of one pipeline."""
    names = [p.name for p in manifest.pipelines]
    if len(names) < 2:
        return None
    table: list[tuple[str, ...]] = [("round", *names)]
    last: dict = {}
    for r in sorted({row["round"] for row in rows}):
        record = run.read_round(r)
        figures = (record.pipelines or {}) if record else {}
        counts = {n: sum(1 for row in rows if row["round"] == r and row["benchmark"] == n)
                  for n in names}
        table.append((str(r), *(str(counts[n]) if counts[n] else "-" for n in names)))
        last = figures or last
    reasons = [f"  {n}: {_one_line(f.get('why'), 200)}" for n, f in last.items() if f.get("why")]
    return table, reasons


def _beam_check(record: RoundRecord | None) -> str | None:
    check = record.beam_check if record else None
    if check is None:
        return None
    ratio = check.verdict.ratio if check.verdict else None
    return (f"{verdict.factor(ratio)}, " if ratio else "") + (
        "passed" if check.passed else "failed")


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


ROUND_HEADER = ("round", "cand", "ok", "failed", "dup", "distinct", "best ms", "median ms",
                "beam ms", "beam check", "held-out rank", "best cand.", "provisional",
                "trainer rate", "wall s")


def round_rows(rep: Report) -> list[tuple[str, ...]]:
    """A row of ROUND_HEADER's cells per round."""
    table: list[tuple[str, ...]] = []
    for r in rep.rounds:
        failed = ", ".join(f"{k} {v}" for k, v in sorted(r["failures"].items())) or "0"
        table.append((str(r["round"]), str(r["candidates"]), str(r["ok"]), failed,
                      str(r["duplicates"]), str(r["distinct"]), _num(r["best_ms"], ".3f"),
                      _num(r["median_ms"], ".3f"), _num(r["beam_ms"], ".3f"),
                      r["beam_check"] or "-", _num(r["held_out"], ".2f"),
                      _num(r["best_candidate"], ".2f"), r["provisional"] or "-",
                      _num(r["train_rate"], ".2f"), _num(r["wall_s"], ".1f")))
    return table


def finalist_rows(best: RetimingRecord) -> list[tuple[str, str, str, str, str]]:
    """The final re-timing: (finalist, median ms of its re-timings, ms timed during its
    round, against the start weights' beam search with its 95% interval (farm.stats.verdict's
    wording), the verdict's word) per finalist; the winner's label ends with " (best/)"."""
    out = []
    for f in best.finalists:
        v = f.vs_start
        also = f" (= {', '.join(f.also)})" if f.also else ""
        mark = " (best/)" if f.label == best.finalist else ""
        out.append((f.label + also + mark, _num(f.median_ms, ".3f"),
                    _num(f.round_ms, ".3f") + (f" (round {f.round_no})" if f.round_no else ""),
                    _verdict(v) or "-", v.verdict if v and v.verdict else "-"))
    return out


def failure_groups(rows: list[dict]) -> list[tuple[str, list[dict]]]:
    """The failed rows grouped by cause (farm.tuning.rows.cause; derived from the error for
    rows written before the column), the commonest first."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        if row["status"] in (OK, DUPLICATE):
            continue
        key = row.get("cause") or cause(row["status"], row.get("error")) or row["status"]
        groups.setdefault(key, []).append(row)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def failure_rows(rows: list[dict]) -> list[tuple[str, str, str]]:
    """failure_groups as (cause, count, the first one's error in a line)."""
    return [(key, str(len(members)), _one_line(members[0].get("error"), 100))
            for key, members in failure_groups(rows)]


DEVICE_HEADER = ("device", "timed", "timing time", "busy")


def device_rows(rows: list[dict]) -> list[tuple[str, str, str, str]]:
    """Per device, from the rows' timing intervals (rows of schema 4 and later): candidates
    timed, time spent timing, and the share of the run's timing span (the first timing's
    start to the last one's end, on any device) that it spent timing."""
    timed = [r for r in rows if r.get("timing_started_at") and r.get("timing_ended_at")]
    if not timed:
        return []
    span = (max(r["timing_ended_at"] for r in timed)
            - min(r["timing_started_at"] for r in timed)).total_seconds()
    out = []
    for device in sorted({r["device_id"] or "?" for r in timed}):
        mine = [r for r in timed if (r["device_id"] or "?") == device]
        busy = sum((r["timing_ended_at"] - r["timing_started_at"]).total_seconds()
                   for r in mine)
        out.append((device, str(len(mine)), f"{busy:.0f} s",
                    f"{busy / span:.0%}" if span > 0 else "-"))
    return out


def _one_line(text: str | None, limit: int) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else "-"
    return line if len(line) <= limit else line[:limit - 3] + "..."


def screening_saved(rep: Report) -> str | None:
    """What screening (--screen) cost and spared, over the rounds that screened; None when
    none did. The spared build and timing are estimates: each screened-out draw at the mean
    of its round's built candidates."""
    records = [r["record"] for r in rep.rounds
               if r["record"] is not None and r["record"].screening is not None]
    if not records:
        return None
    drawn = sum(x.screening.drawn for x in records)
    kept = sum(x.screening.kept for x in records)
    cpu = sum(x.screening.autoschedule_s for x in records)
    spared_build = spared_timing = 0.0
    for x in records:
        out = x.screening.drawn - x.screening.kept
        built = max(1, x.candidates)
        spared_build += out * (x.codegen_s + x.link_s) / built
        spared_timing += out * x.timing_s / built
    factors = sorted({x.screening.factor for x in records})
    return (f"screening (--screen {'/'.join(map(str, factors))}) in "
            f"{plural(len(records), 'round')}: {drawn} draws autoscheduled ({cpu:.0f} s of "
            f"CPU), the model's {kept} built; building and timing the {drawn - kept} "
            f"screened out would have cost ~{spared_build:.0f} s of codegen and link CPU and "
            f"~{spared_timing:.0f} s of device time.")


def _text(rep: Report) -> str:
    m, rows = rep.manifest, rep.rows
    lines = [f"{rep.run.path}: {rep.title} on {m.target}"
             + (f" (device class {m.device_class})" if m.device_class else "")
             + f", batch {m.batch_size}, parallelism {m.parallelism}, run {m.run_id}", ""]
    lines += columns([ROUND_HEADER, *round_rows(rep)], right=True).splitlines()
    lines.append("best ms, median ms, beam ms: as timed during the round.")
    ok = [row for row in rows if row["status"] == OK]
    distinct = len({(row["benchmark"], row["schedule_key"]) for row in ok})
    lines += ["", f"{plural(len(rows), 'candidate')}, {len(ok)} measured, "
              f"{plural(distinct, 'distinct schedule')}",
              HELD_OUT_LABEL, "best cand.: the same for the best candidate weights trained on "
              "the earlier rounds; provisional: the candidate that beat the current weights "
              "beyond the noise, whose beam search the next round checks; beam check: that "
              "beam search re-timed against the start weights' (ratio; passed: accepted to "
              "plan the following rounds).", TRAIN_RATE_LABEL]
    saved = screening_saved(rep)
    if saved:
        lines += ["", saved]
    failures = failure_rows(rows)
    if failures:
        lines += ["", "failed candidates by cause:"]
        lines += ["  " + line for line in columns([("cause", "count", "the first one's error"),
                                                   *failures]).splitlines()]
    devices = device_rows(rows)
    if devices:
        lines += ["", "devices (busy: share of the span from the first timing to the last "
                  "spent timing on it; the rest went to compiles, training and other jobs):"]
        lines += ["  " + line for line in columns([DEVICE_HEADER, *devices]).splitlines()]
    if rep.best:
        lines += ["", "final re-timing (median of interleaved re-timings on one device, and "
                  "as timed during the round; against beam search with the start weights, "
                  "95% interval):"]
        for f in rep.best.finalists:
            mark = "  <- best/" if f.label == rep.best.finalist else ""
            also = f" (= {', '.join(f.also)})" if f.also else ""
            during = f"  ({f.round_ms:.3f} ms timed during round {f.round_no})" \
                if f.round_ms is not None and f.round_no else ""
            lines.append(f"  {f.label + also:<44} {_num(f.median_ms, '.3f'):>8} ms"
                         f"{during}  {_verdict(f.vs_start)}{mark}")
        if any(f.round_ms is not None for f in rep.best.finalists):
            lines.append(verdict.TWO_TIMINGS)
        lines += comparisons(rep.best)
    if rep.handed and rep.handed.reason:
        lines.append(f"best.weights ({rep.handed.weights}): {rep.handed.reason}")
    return "\n".join(lines)


def _verdict(v: VerdictRecord | None) -> str:
    """A recorded verdict in farm.stats.verdict's one wording ("" without a ratio)."""
    if v is None or v.ratio is None:
        return ""
    return verdict.wording(v.ratio, v.low, v.high, v.verdict)


def comparisons(best: RetimingRecord) -> list[str]:
    """The best schedule against the start weights' beam search and the manual schedule,
    each in farm.stats.verdict's wording, a line each."""
    winner = best.finalist_labelled(best.finalist)
    ms = best.runtime_ms
    out = []
    start = best.finalist_labelled(START_LABEL)
    if start and start.median_ms:
        v = winner.vs_start if winner else None
        # a verdict without a ratio (too few re-timings) still says so, with its count
        said = verdict.wording(v.ratio, v.low, v.high, v.verdict, v.pairs) if v else "the same"
        out.append(f"best schedule {ms:.3f} ms vs beam-32 with the start weights "
                   f"{start.median_ms:.3f} ms: {said}")
    manual = best.finalist_labelled(MANUAL_LABEL)
    if manual and manual.median_ms:
        # the winner's and the manual schedule's re-timings are paired by re-timing round
        mine = winner.retimes_ms if winner else best.retimes_ms
        against = verdict.compare(mine, manual.retimes_ms)
        out.append(f"best schedule {ms:.3f} ms vs the manual schedule "
                   f"{manual.median_ms:.3f} ms: {against.describe()}")
    return out
