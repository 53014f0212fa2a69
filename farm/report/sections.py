"""The report page's sections of one run (or a campaign's pipeline): what was found, the
campaign's allocation, the decisions on the weights, failures by cause, where the time
went, and the samples table. Each returns its HTML lines under heading level `h`."""

from __future__ import annotations

import shlex
import statistics
from collections.abc import Sequence

from farm.candidate import DUPLICATE, OK
from farm.errors import RunDirError
from farm.report.markup import command, escape, fmt, list_or_empty, table
from farm.report.progress import plural
from farm.report.samples_table import sample_table
from farm.report.text import (
    Report,
    allocation_rows,
    comparisons,
    failure_groups,
    screening_saved,
)
from farm.store.records import RunKind
from farm.store.rundir import RunDir

TIME_HEADER = ("round", "wall s", "autoschedule s", "codegen s", "link s", "timing s",
               "retrain s", "timing share")
DECISION_HEADER = ("candidate", "held-out rank", "gain", "gain low", "train loss",
                   "trainer rate", "trained on", "train s", "note")
LOG_LINES = 12  # of a cause's first failure's error and log


def handed(rep: Report) -> list[str]:
    """Which weights were handed over (best.weights), and why."""
    if rep.handed and rep.handed.reason:
        return [f"<p>best.weights ({escape(rep.handed.weights)}): "
                f"{escape(rep.handed.reason)}</p>"]
    return []


def allocation(rep: Report, h: str) -> list[str]:
    """A campaign's candidates per round and pipeline, and the last round's reasons (not a
    pre-training's: each of its pipelines is one round's)."""
    if rep.manifest.kind is RunKind.PRETRAINING:
        return []
    split = allocation_rows(rep.run, rep.manifest, rep.rows)
    if not split:
        return []
    shares, reasons = split
    return [f"<{h}>Candidates per round (allocation: {escape(rep.manifest.allocation)})</{h}>",
            table(shares[0], shares[1:]),
            '<p class="note">How each round\'s batch was split across the pipelines '
            "(farm.search.allocation); why, in the last round:</p>",
            "<ul>" + "".join(f"<li>{escape(r.strip())}</li>" for r in reasons) + "</ul>"]


def _schedule(run: RunDir, path, name: str, ms: float) -> list[str]:
    """A best schedule's text, folded (none when there is no file; why, when it is not the
    run's own)."""
    try:
        text = run.best.schedule_text(path)
    except RunDirError as e:
        text = f"({e})"
    if text is None:
        return []
    where = path.relative_to(run.path) if path.is_relative_to(run.path) else path
    return [f"<details><summary>{escape(name)}the best schedule ({escape(where)}, "
            f"{ms:.3f} ms)</summary><pre>{escape(text)}</pre></details>"]


def found(rep: Report, parts: Sequence[Report], h: str) -> list[str]:
    """What the run found and how to use it: the best schedule against the start weights'
    beam search (and the manual schedule), with its text; the weights handed over and the
    commands that use them; the run's command lines, settings and devices."""
    run, m = rep.run, rep.manifest
    out = [f"<{h}>What was found</{h}>", '<div class="found">']
    whole = m.campaign and not rep.pipeline  # a campaign's bests are its pipelines'
    timed = [p for p in (parts if whole else [rep]) if p.best is not None]
    for part in timed:
        best, scope = part.best, part.pipeline
        assert best is not None
        name = f"{scope}: " if scope else ""
        out.append("<ul>" + "".join(f"<li>{escape(name + line)}</li>"
                                    for line in comparisons(best)) + "</ul>")
        out += _schedule(run, run.best_schedule(best.benchmark.split(":")[0], scope,
                                                best.library), name, best.runtime_ms)
    if whole and not parts:
        out.append('<p class="note">Each pipeline\'s best: the table of pipelines below.</p>')
    elif not timed:
        out.append('<p class="note">No best schedule yet: the final re-timing comes at the '
                   "end of the run.</p>")
    weights_path = run.best_weights
    if weights_path.exists():
        out += handed(rep)
        bench = m.pipelines[0].name if m.campaign else m.benchmark  # (a pre-training is one)
        use = f"farm run {shlex.quote(bench)} --weights {shlex.quote(str(weights_path.resolve()))}"
        out.append(command(use, "build a pipeline with them:"))
        record = run.read_best_weights_record()
        if record is None or not m.is_start_weights(record.weights_sha256 or ""):  # else no model
            out.append(command(
                f"farm models promote {shlex.quote(str(run.path.resolve()))}",
                "make them the current model of their class (every new run without "
                "--weights then starts from them):"))
    invocations = [i for i in m.invocations if isinstance(i, dict)]  # the manifest is data
    lines = []
    for n, inv in enumerate(invocations, 1):
        argv = list_or_empty(inv.get("argv"))
        line = shlex.join(["farm", *[str(a) for a in argv[1:]]])
        lines.append(f'<p class="meta">command{f" {n}" if len(invocations) > 1 else ""}'
                     f" ({escape(inv.get('at', '?'))}, in {escape(inv.get('cwd', '?'))}):"
                     f"</p><pre>{escape(line)}</pre>")
    out += lines[:1]
    if len(lines) > 1:  # the resumes
        out.append(f"<details><summary>{len(lines) - 1} more (resumes)</summary>"
                   + "".join(lines[1:]) + "</details>")
    out.append(f'<p class="meta">target {escape(m.target)}; device class '
               f'{escape(m.device_class or "-")}; batch {escape(m.batch_size)}, parallelism '
               f"{escape(m.parallelism)}, allocation {escape(m.allocation)}; start weights "
               f"{escape(m.start_weights_sha256[:12] or '-')}; run {escape(m.run_id)}, "
               f"{plural(len(rep.rows), 'sample')}</p>")
    devices = {d.get("id"): d for inv in invocations
               for d in list_or_empty(inv.get("devices")) if isinstance(d, dict)}
    if devices:
        out.append('<p class="meta">devices: ' + "; ".join(
            escape(f"{d.get('id')} ({d.get('kind', '?')}, {d.get('model', '?')}, node "
               f"{d.get('node', '?')})") for d in devices.values()) + "</p>")
    return [*out, "</div>"]


def decisions(rep: Report, h: str) -> list[str]:
    """Per round, what was decided about the weights and why, in words, and each candidate
    update's figures on the round's held-out schedules."""
    rows, details = [], []
    for r in rep.rounds:
        record = r["record"]
        acc = record.acceptance if record else None
        check = record.beam_check if record else None
        words = []
        if check is not None:
            words.append(f"beam check {'passed' if check.passed else 'failed'}"
                         + (f": {check.reason}" if check.reason else ""))
        if acc is not None:
            said = acc.reason and acc.decision in acc.reason  # the reason may say it already
            words.append(acc.reason if said else
                         acc.decision + (f": {acc.reason}" if acc.reason else ""))
        if not words:
            continue
        rows.append((str(r["round"]), "; ".join(words)))
        if acc is not None and acc.candidates:
            cands = [(c.name, fmt(c.accuracy, ".3f"), fmt(c.gain, "+.3f"),
                      fmt(c.gain_low, "+.3f"), fmt(c.train_loss, ".4g"),
                      fmt(c.train_rate, ".2f"), str(c.trained_on), f"{c.train_s:.1f}",
                      c.note or "") for c in acc.candidates]
            details.append(f"<details><summary>round {r['round']}: "
                           f"{plural(len(acc.candidates), 'candidate')} on "
                           f"{escape(acc.held_out or 'the held-out schedules')}"
                           f"{f', {acc.pairs} pairs' if acc.pairs else ''}</summary>"
                           + table(DECISION_HEADER, cands) + "</details>")
    if not rows:
        return []
    return [f"<{h}>Decisions</{h}>", table(("round", "decision and why"), rows, text_column=1),
            '<p class="note">Each round, candidate weights trained on the earlier rounds are '
            "judged on the round's own schedules (held out); one that ranks them better "
            "beyond the noise becomes provisional, and its beam search, re-timed against "
            "the start weights' the next round (the beam check), decides whether it plans "
            "the rounds after.</p>", *details]


def failures(rep: Report, h: str) -> list[str]:
    """The failed rows by cause (the commonest first), with the rounds they failed in and
    the first lines of the first one's error and log."""
    groups = failure_groups(rep.rows)
    if not groups:
        return []
    logs = _first_logs(rep.run, [members[0] for _, members in groups])
    counts = [(key, str(len(members)), _ranges(sorted({m["round"] for m in members})))
              for key, members in groups]
    out = [f"<{h}>Failures</{h}>", table(("cause", "rows", "rounds"), counts)]
    for key, members in groups:
        first = members[0]
        text = logs.get((first["round"], first["index"], first["benchmark"]), "")
        out.append(f"<details><summary>{escape(key)}: the first one (round {first['round']}, "
                   f"#{first['index']}, {escape(first['benchmark'])})</summary>"
                   f"<pre>{escape(text or '(no error text recorded)')}</pre></details>")
    return out


def _first_logs(run: RunDir, rows: list[dict]) -> dict[tuple, str]:
    """The error and the first lines of the log of each of `rows` (failed rows)."""
    import pyarrow.dataset as ds

    failed = ~ds.field("status").isin([OK, DUPLICATE])
    failed_rows = run.samples.read(["round", "index", "benchmark", "error", "log"],
                                   filter=failed)
    wanted = {(r["round"], r["index"], r["benchmark"]) for r in rows}
    out = {}
    for row in failed_rows.to_pylist():
        key = (row["round"], row["index"], row["benchmark"])
        if key in wanted:
            lines = "\n".join(t for t in (row["error"], row["log"]) if t).splitlines()
            out[key] = "\n".join(lines[:LOG_LINES])
    return out


def _ranges(rounds: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5"."""
    parts: list[str] = []
    for r in rounds:
        if parts and parts[-1].split("-")[-1] == str(r - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{r}"
        else:
            parts.append(str(r))
    return ", ".join(parts)


def samples(rep: Report, h: str, budget: int) -> list[str]:
    """The samples table (farm.report.samples_table), filled by the page's script."""
    shown = sample_table(rep.run, rep.pipeline, budget)
    if not shown.total:
        return []
    return [f"<{h}>Samples</{h}>", '<div class="samples">',
            f'<p class="note">{escape(shown.note)}. Click a header to sort (again to '
            "reverse), a row to see its schedule (a failed row: its error). Filter by words, or by "
            "column: <code>status:ok</code>, <code>planner:b1</code>.</p>",
            '<input class="samples-filter" type="search" placeholder="filter, e.g. '
            'status:ok round:3" aria-label="filter the samples">',
            '<p class="note samples-count"></p>',
            '<div class="scroll"><table><thead><tr></tr></thead><tbody></tbody></table></div>',
            '<pre class="samples-text">(click a row)</pre>',
            f'<script type="application/json" class="samples-data">{shown.json()}</script>',
            "</div>"]


def spread(times: list[float | None]) -> str:
    """A finalist's re-timings as min, quartiles and max ("-" without any)."""
    ok = sorted(t for t in times if t is not None)
    if not ok:
        return "-"
    q = statistics.quantiles(ok, n=4) if len(ok) > 1 else [ok[0]] * 3
    return ", ".join(f"{v:.3f}" for v in (ok[0], *q, ok[-1]))


def time_spent(rep: Report, h: str) -> list[str]:
    """Where each round's time went: compile CPU (summed over the candidates) against the
    devices' timing, and the retraining."""
    rows = []
    for r in rep.rounds:
        record = r["record"]
        if record is None:
            continue
        compile_s = record.autoschedule_s + record.codegen_s + record.link_s
        share = record.timing_s / (compile_s + record.timing_s) \
            if compile_s + record.timing_s > 0 else None
        rows.append((str(r["round"]), f"{record.wall_s:.0f}", f"{record.autoschedule_s:.0f}",
                     f"{record.codegen_s:.0f}", f"{record.link_s:.0f}",
                     f"{record.timing_s:.0f}", f"{record.retrain_s:.1f}",
                     "-" if share is None else f"{share:.0%}"))
    if not rows:
        return []
    saved = screening_saved(rep)
    return [f"<{h}>Where the time went</{h}>", table(TIME_HEADER, rows),
            '<p class="note">Compile seconds are CPU seconds summed over the round\'s '
            "candidates (several compile at once); timing seconds, the devices' time spent "
            "timing them; timing share: timing / (compile + timing).</p>",
            *([f"<p>{escape(saved)}</p>"] if saved else [])]
