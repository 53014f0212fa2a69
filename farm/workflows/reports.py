"""`farm report` and `farm export`: a run's text, plots and page, and its samples as Halide's
.sample files, written where the user asks (by default inside the run, through no link)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from farm.errors import FarmError
from farm.store.rundir import RunDir, class_dirs

REFRESH_S = 30  # how often a live page reloads itself, by default


@dataclass(frozen=True)
class ReportOutput:
    """`farm report` of one device class's run: its text and the plots written."""

    run_dir: Path
    text: str
    plots: list[tuple[str, list[Path]]]  # (pipeline, or "" for the run's own; the images)


def report(run_dir: str | Path, pipeline: str | None = None,
           out: str | Path | None = None) -> Iterator[ReportOutput]:
    """`farm report RUN_DIR`: per device class's run (the run itself when it has one
    class), its text and its plots, written to `out` (default RUN_DIR/report; with several
    classes OUT/CLASS), a campaign's own and per pipeline in OUT/PIPELINE
    (farm.report.text.pipeline_sections). With `pipeline` and no `out`, that pipeline's
    plots go to its own RUN_DIR/report/PIPELINE, never over the campaign's."""
    from farm.report.plots import write_plots
    from farm.report.text import build_report, pipeline_sections

    dirs = class_dirs(run_dir) or [Path(run_dir)]
    for run in dirs:
        text = build_report(run, pipeline)
        folder = _report_dir(out, run)
        if len(dirs) > 1 and out:
            folder = _inside(folder, run.name)
        if pipeline and not out:
            folder = _inside(folder, pipeline)
        parts = [(text, folder)]
        if not pipeline:  # a campaign's own plots, then each pipeline's
            parts += [(build_report(run, name), _inside(folder, name))
                      for name in pipeline_sections(text.manifest)]
        plots = [(part.pipeline or "", write_plots(part, where)) for part, where in parts]
        yield ReportOutput(run, text.text, plots)


def report_page(run_dir: str | Path, pipeline: str | None = None,
                out: str | Path | None = None, refresh_s: int | None = None) -> Path:
    """`farm report RUN_DIR --html`: the whole report as one self-contained web page,
    OUT/index.html (default RUN_DIR/report/index.html). With `refresh_s`, the page of a run
    still going reloads itself that often."""
    from farm.report.page import write_page

    folder = _report_dir(out, Path(run_dir))
    if pipeline and not out:  # beside its plots, never over the campaign's page
        folder = _inside(folder, pipeline)
    return write_page(Path(run_dir), folder / "index.html", pipeline, refresh_s)


def watch_page(run_dir: str | Path, pipeline: str | None = None,
               out: str | Path | None = None, refresh_s: int = REFRESH_S,
               progress: Callable[[str], None] = print, poll_s: float = 2.0,
               wait_start_s: float = 0.0) -> Path:
    """`farm report RUN_DIR --html --watch`: rewrite the page after every committed round
    while the run is going (the page reloads itself every `refresh_s`), then once more, as
    the finished run's. Waits up to `wait_start_s` for a run that has not started yet
    (`farm autotune --html` starts its watcher with the run).

    Drawing plots is CPU work: each page is written as compile work of the host's gate
    (farm.devices.gate), so a host device of this machine never times beside it."""
    from farm.devices import gate

    def runs() -> list[RunDir]:
        return [RunDir(d) for d in (class_dirs(run_dir) or [Path(run_dir)])]

    def live() -> bool:
        return any(r.holder() for r in runs())

    started = time.monotonic()
    while not live() and time.monotonic() - started < wait_start_s:
        time.sleep(poll_s)
    seen: tuple | None = None
    while live():
        now = tuple(tuple(r.samples.committed_rounds()) for r in runs())
        if now != seen and all(r.read_manifest() is not None for r in runs()):
            try:
                with gate.compiling():
                    page = report_page(run_dir, pipeline, out, refresh_s)
            except FarmError as e:  # e.g. a round file replaced as it was read: next time
                progress(f"warning: the page was not rewritten: {e}")
                time.sleep(poll_s)
                continue
            progress(f"page:  {page} (live: rewritten after every committed round, reloads "
                     f"itself every {refresh_s} s)" if seen is None else
                     f"page rewritten: rounds {', '.join(str(max(c, default=0)) for c in now)}"
                     " committed")
            seen = now
        time.sleep(poll_s)
    with gate.compiling():
        page = report_page(run_dir, pipeline, out)
    progress(f"page:  {page} (the run is not running: written once more, without reload)")
    return page


def export(run_dir: str | Path, out: str | Path) -> tuple[int, Path]:
    """`farm export`: the run's samples as Halide .sample files with their .schedule.h,
    in `out` (created if needed): how many, and where."""
    from farm.atomic import writable_dir
    from farm.errors import RunDirError
    from farm.store.loop_samples import export_samples

    run = RunDir(run_dir)
    if run.read_manifest() is None:
        raise RunDirError(f"{run_dir} is not a run directory (no manifest.json)")
    folder = writable_dir(str(out))
    return export_samples(run.samples, folder), folder


def _report_dir(out: str | Path | None, run_dir: Path) -> Path:
    """`out`, or RUN_DIR/report: a folder of the run, which no link may take elsewhere."""
    from farm.atomic import real_dir, writable_dir

    if out:
        return writable_dir(str(out))
    run = RunDir(run_dir)
    return writable_dir(str(real_dir(run.report_dir, run.path)))


def _inside(out: Path, name: str) -> Path:
    """OUT/NAME for a pipeline's or a device class's plots: NAME made a safe folder name
    (farm.paths), the folder no link."""
    from farm.atomic import real_dir, writable_dir
    from farm.paths import path_name

    return writable_dir(str(real_dir(out / path_name(name), out)))
