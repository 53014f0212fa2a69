"""`farm report --html`: a run as one self-contained web page, to open in a browser or mail.

Everything is in the one file: the plots are embedded PNG data, the style is inline, and
nothing is fetched from the network. Its title names the benchmark(s), the device
class(es) and the run id. The tables are HTML tables: the rounds, the final re-timing with
each finalist's ratio to the start weights' beam search, its 95% interval and verdict,
and for a campaign its pipelines, then a section per pipeline; a run of several device
classes has a section per class. Tables scroll inside their own box and plots shrink to
the window, so the page fits a 1280 px screen and a 400 px phone alike. Under every plot
a line says what it shows.

Each run's section starts with what was found (the best schedule against the start
weights' beam search and the manual schedule, the weights handed over and the command
that uses them, the command line, settings and devices), then the rounds, the decisions
on the weights in words, the failures by cause, the final re-timing, the plots and the
samples as a table that sorts and filters (farm.report.samples_table: plain script in the
page, nothing fetched).

A page made while the run is still going says so, and which committed rounds it shows;
made with a refresh period (`farm report --html --watch`), it reloads itself.
"""

from __future__ import annotations

import base64
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from farm import atomic
from farm.report.markup import escape, table
from farm.report.plots import write_plots
from farm.report.samples_table import SCHEDULE_BUDGET, SCRIPT
from farm.report.sections import (
    allocation,
    decisions,
    failures,
    found,
    handed,
    samples,
    spread,
    time_spent,
)
from farm.report.text import (
    MAX_PIPELINE_SECTIONS,
    PIPELINE_HEADER,
    ROUND_HEADER,
    Report,
    build_report,
    finalist_rows,
    pipeline_rows,
    pipeline_sections,
    round_rows,
)
from farm.stats import verdict
from farm.store.records import RunKind
from farm.store.rundir import RunDir, class_dirs

CAPTIONS = {
    "best_so_far": "The fastest runtime measured so far, against the samples taken: a line "
                   "per planner (what each way of drawing candidates found; the fastest "
                   "first), over the run's best as a pale band. Each step down is a new best "
                   "schedule.",
    "best_over_time": "The run's fastest runtime so far against wall time.",
    "runtimes_per_round": "Every runtime measured in each round (boxes, log scale) and the "
                          "round's beam search (red triangles): how widely the probes explore, "
                          "and whether the weights' own choice gets faster.",
    "predicted_vs_measured": "Each round's measured runtimes against what the weights that "
                             "planned the round predicted for them (recorded when the round "
                             "was committed; the model's own units), a colour per round with "
                             "its rank correlation: 1 is a model that orders them perfectly.",
    "ranking_accuracy": "How well the cost model orders each round's schedules: the weights "
                        "that planned the round (on schedules they were not trained on), the "
                        "best candidate trained on the earlier rounds, and the trainer's own "
                        "figure on its training data. 0.5 is chance.",
}
TITLE_NAMES = 6  # pipelines a title names; a bigger campaign's says how many
PAGE_LIMIT = 4_900_000  # bytes: a page stays under 5 MB, to mail and to open on a phone
# what a reader on a phone needs first (the verdict), then the figures behind it
FINALIST_HEADER = ("finalist", "verdict", "vs start weights' beam search, 95% interval",
                   "median ms", "ms timed during its round",
                   "re-timings ms: min, quartiles, max")
STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1b1f24;
       max-width: 1180px; margin: 0 auto; padding: 12px 16px; }
h1 { font-size: 1.45em; margin: 0.4em 0; } h2 { font-size: 1.2em; margin-top: 1.6em; }
h3 { font-size: 1.05em; margin-top: 1.3em; }
.meta, .caption, .note { color: #57606a; font-size: 0.92em; }
.live { background: #fff8c5; border: 1px solid #d4a72c; padding: 8px 10px; border-radius: 6px; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; font-size: 0.88em; margin: 6px 0; }
th, td { border-bottom: 1px solid #d0d7de; padding: 3px 8px; text-align: right;
         white-space: nowrap; }
th { background: #f6f8fa; white-space: normal; vertical-align: bottom; }
td:first-child, th:first-child { text-align: left; }
td:first-child { white-space: normal; min-width: 9em; }
td.text, th.text { text-align: left; white-space: normal; min-width: 14em; }
tr.best td { font-weight: 600; background: #dafbe1; }
td.faster { color: #1a7f37; } td.slower { color: #cf222e; }
figure { margin: 12px 0 20px; } figure img { max-width: 100%; height: auto; display: block; }
.found { background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px;
         padding: 4px 14px; }
.cmd { display: flex; gap: 8px; align-items: flex-start; margin: 6px 0; }
.cmd code { flex: 1; overflow-x: auto; white-space: pre; background: #fff;
            border: 1px solid #d0d7de; border-radius: 4px; padding: 4px 6px; }
code, pre { font: 0.86em/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; }
pre { overflow: auto; max-height: 24em; background: #f6f8fa; padding: 6px 8px;
      border-radius: 4px; }
.samples .scroll, .scroll.tall { max-height: 28em; overflow: auto; }
.scroll.tall thead th { position: sticky; top: 0; }
.samples thead th { position: sticky; top: 0; cursor: pointer; }
.samples th[data-sorted="up"]::after { content: " \\25B2"; }
.samples th[data-sorted="down"]::after { content: " \\25BC"; }
.samples tbody tr { cursor: pointer; } .samples tr.chosen td { background: #ddf4ff; }
.samples-filter { width: 100%; max-width: 32em; padding: 4px 6px; font: inherit; }
@media (max-width: 600px) { body { font-size: 14px; padding: 8px; }
  table { font-size: 0.8em; } th, td { padding: 2px 4px; }
  td, td:first-child, td.text { white-space: normal; min-width: 0; } }
"""


@dataclass
class Section:
    heading: str
    report: Report
    plots: list[Path] = field(default_factory=list)
    parts: list[Section] = field(default_factory=list)  # a campaign's pipelines


def _utf8(page: str) -> str:
    """`page` as UTF-8 can hold it: a lone surrogate (from a manifest's argv or working
    folder, as Python reads undecodable bytes) written as its escape, not a traceback."""
    return page.encode("utf-8", "backslashreplace").decode("utf-8")


def write_page(run_dir: str | Path, out: Path, pipeline: str | None = None,
               refresh_s: int | None = None) -> Path:
    """The run's page (one class's or every class's; a campaign's `pipeline` only, when
    given) as `out`. With `refresh_s`, a page of a run still going reloads itself that
    often (its writer promises to rewrite it after every committed round)."""
    root = Path(run_dir)
    dirs = class_dirs(root) or [root]
    with tempfile.TemporaryDirectory(prefix="farm-report-") as tmp:
        sections = [_section(d, pipeline, Path(tmp) / str(i)) for i, d in enumerate(dirs)]
        budget = SCHEDULE_BUDGET // len(sections)
        page = _utf8(_page(root, sections, refresh_s, budget))
        for _ in range(3):  # plots of many pipelines: fewer sample rows, to stay small
            over = len(page.encode()) - PAGE_LIMIT
            if over <= 0 or budget == 0:
                break
            budget = max(0, budget - over // len(sections) - 1)
            page = _utf8(_page(root, sections, refresh_s, budget))
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out, page)  # a browser open on the old page never sees half of one
    return out


def _section(run_dir: Path, pipeline: str | None, scratch: Path) -> Section:
    rep = build_report(run_dir, pipeline)
    cls = rep.manifest.device_class or "unknown class"
    section = Section(cls, rep, write_plots(rep, scratch))
    if not pipeline:
        for i, name in enumerate(pipeline_sections(rep.manifest)):
            part = build_report(run_dir, name)
            section.parts.append(Section(name, part, write_plots(part, scratch / str(i))))
    return section


def page_title(sections: list[Section]) -> str:
    """`farm report: BENCH(ES) on CLASS(ES), run ID(S)`."""
    names: list[str] = []
    for s in sections:
        m = s.report.manifest
        for n in ([p.name for p in m.pipelines] if m.campaign else [m.generator]):
            if n not in names:
                names.append(n)
    if sections[0].report.pipeline:
        names = [sections[0].report.pipeline]
    classes = ", ".join(s.heading for s in sections)
    runs = ", ".join(s.report.manifest.run_id for s in sections)
    m = sections[0].report.manifest
    if m.kind is RunKind.PRETRAINING and not sections[0].report.pipeline:
        what = f"pre-training on {m.benchmark}, {len(names)} pipelines"
    elif len(names) > TITLE_NAMES:
        what = f"campaign of {len(names)} pipelines ({', '.join(names[:TITLE_NAMES])}, ...)"
    else:
        what = names[0] if len(names) == 1 else f"campaign of {', '.join(names)}"
    return f"farm report: {what} on {classes}, run {runs}"


def _page(root: Path, sections: list[Section], refresh_s: int | None = None,
          budget: int = SCHEDULE_BUDGET) -> str:
    title = page_title(sections)
    live = refresh_s if any(s.report.run.holder() for s in sections) else None
    body = [f"<h1>{escape(title)}</h1>", f'<p class="meta">{escape(str(root.resolve()))}</p>']
    if len(sections) > 1:
        body += ["<h2>Device classes</h2>", table(CLASS_HEADER, _class_rows(sections),
                                                  text_column=6)]
    for s in sections:
        if len(sections) > 1:
            body.append(f"<h2>Device class {escape(s.heading)}</h2>")
        body += _run(s, 3 if len(sections) > 1 else 2, live, budget)
    reload = f'<meta http-equiv="refresh" content="{live}">\n' if live else ""
    return (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n{reload}'
            f"<title>{escape(title)}</title>\n<style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + f"\n<script>{SCRIPT}</script>\n</body></html>\n")


CLASS_HEADER = ("device class", "run", "pipelines", "rounds", "samples", "ok",
                "weights handed over")


def _class_rows(sections: list[Section]) -> list[tuple[str, ...]]:
    """A run of several device classes: a row per class, one model each."""
    rows: list[tuple[str, ...]] = []
    for s in sections:
        rep = s.report
        ok = sum(r["status"] == "ok" for r in rep.rows)
        handed = (f"{rep.handed.weights}: {rep.handed.reason}" if rep.handed
                  else "none yet")
        rows.append((s.heading, rep.manifest.run_id, str(len(rep.manifest.pipelines)),
                     str(len(rep.rounds)), str(len(rep.rows)), str(ok), handed))
    return rows


def _run(s: Section, level: int, refresh_s: int | None = None,
         budget: int = SCHEDULE_BUDGET) -> list[str]:
    rep, h = s.report, f"h{level}"
    out = [_live(rep.run, rep, refresh_s), *found(rep, [p.report for p in s.parts], h)]
    if not (rep.manifest.campaign and not rep.pipeline):
        out += _rounds(rep, h) + decisions(rep, h) + failures(rep, h) + time_spent(rep, h)
        return out + _results(s, level) + samples(rep, h, budget)
    many = len(rep.manifest.pipelines) - len(s.parts)
    out += [f"<{h}>Pipelines</{h}>",
            table(PIPELINE_HEADER, pipeline_rows(rep.run, rep.manifest, rep.rows), tall=True),
            '<p class="note">best/NAME/ holds each pipeline\'s best schedule' + (
                "; its rounds and final re-timing follow below.</p>" if not many else
                f". Sections per pipeline are drawn for campaigns of at most "
                f"{MAX_PIPELINE_SECTIONS} pipelines (and not for a pre-training): "
                "<code>farm report RUN_DIR --pipeline NAME --html</code> shows one.</p>"),
            *allocation(rep, h)]
    out += _rounds(rep, h) + decisions(rep, h) + failures(rep, h) + time_spent(rep, h)
    out += _plots(s, h)  # the model's, over every pipeline
    sub = f"h{level + 1}"
    for part in s.parts:  # its own rounds, failures, re-timing and plots; one model:
        out.append(f"<{h}>Pipeline {escape(part.heading)}</{h}>")  # decided above
        out += _rounds(part.report, sub, note=False) + failures(part.report, sub)
        out += _results(part, level + 1, with_handed=False)
    return out + samples(rep, h, budget)


def _rounds(rep: Report, h: str, note: bool = True) -> list[str]:
    out = [f"<{h}>Rounds</{h}>", table(ROUND_HEADER, round_rows(rep))]
    if note:
        out.append('<p class="note">held-out rank: the share of the round\'s schedule pairs '
                   "(one 1.2x slower than the other) that the weights which planned it order "
                   "right, on schedules they were not trained on; provisional: a candidate "
                   "that beat them, checked by its beam search next round (beam check: its "
                   "ratio to the start weights' beam search). best ms, median ms, beam ms: "
                   "as timed during the round.</p>")
    return out




def _results(s: Section, level: int, with_handed: bool = True) -> list[str]:
    rep, h = s.report, f"h{level}"
    out = []
    if rep.best is not None:
        rows = [(name, word, versus, median, timed, spread(f.retimes_ms))
                for (name, median, timed, versus, word), f in zip(
                    finalist_rows(rep.best), rep.best.finalists, strict=True)]
        out += [f"<{h}>Final re-timing</{h}>",
                table(FINALIST_HEADER, rows, best=lambda r: r[0].endswith(" (best/)"),
                       verdict_column=1),
                '<p class="note">Medians of interleaved re-timings on one device; each '
                "is against beam search with the start weights, with a 95% bootstrap "
                "interval: faster or slower only when the interval says so "
                f"(docs/autotuning.md: how ratios read). {escape(verdict.TWO_TIMINGS)}</p>",
                *(handed(rep) if with_handed else [])]
    elif rep.rows:
        out.append('<p class="note">No final re-timing yet: it comes at the end of the '
                   "run.</p>")
    return out + _plots(s, h)


def _plots(s: Section, h: str) -> list[str]:
    out = [f"<{h}>Plots</{h}>"] if s.plots else []
    for plot in s.plots:
        data = base64.b64encode(plot.read_bytes()).decode()
        out.append(f'<figure><img src="data:image/png;base64,{data}" '
                   f'alt="{escape(plot.stem.replace("_", " "))}">'
                   f'<figcaption class="caption">{escape(CAPTIONS.get(plot.stem, ""))}'
                   "</figcaption></figure>")
    return out


def _live(run: RunDir, rep: Report, refresh_s: int | None = None) -> str:
    holder = run.holder()
    rounds = [r["round"] for r in rep.rounds]
    shown = f"rounds {rounds[0]}-{rounds[-1]}" if len(rounds) > 1 else (
        f"round {rounds[0]}" if rounds else "no round yet")
    if holder is None:
        return f'<p class="meta">The run is not running; this page shows {shown}.</p>'
    again = (f"Live: the page is rewritten after every committed round and reloads itself "
             f"every {refresh_s} s." if refresh_s else
             "Make the page again for more (or `farm report --html --watch`: live).")
    return (f'<p class="live">In progress ({escape(holder)}): this page shows the committed '
            f"{shown}; round {(rounds[-1] if rounds else 0) + 1} is under way. "
            f"{escape(again)}</p>")
