"""farm report --html: the page of a small real run, checked as HTML and in headless
Chromium (Debian's package; .ci/run installs it) at 1280 px and 400 px."""

import html
import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from clitools import assert_user_error, farm, farm_here

from farm.report import samples_table
from farm.report.page import write_page
from farm.report.plots import CAMPAIGN_NAMES, NAMES
from farm.store.samples import SampleStore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# FARM_SCREENSHOTS=DIR keeps the screenshots, to look at them
SHOTS = os.environ.get("FARM_SCREENSHOTS")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    base = tmp_path_factory.mktemp("page")
    run = base / "run"
    tuned = farm("autotune", "dilate3x3", "--rounds", "2", "--batch-size", "6", "--out", run,
                 "--html", check=0).stdout
    path = run / "report" / "index.html"
    assert f"page:  {path}" in tuned  # autotune --html: written live, and once at the end
    assert "The run is not running" in path.read_text()
    out = farm("report", run, "--html", check=0).stdout
    assert f"page:  {path}" in out
    return run, path


class Tables(HTMLParser):
    """Every <table> of a page as lists of cell texts, after the heading before it."""

    def __init__(self):
        super().__init__()
        self.tables, self.heading, self._cell, self._text = [], "", None, []
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        if tag in ("h2", "h3", "h4"):
            self._in_heading, self._text = True, []
        elif tag == "table":
            self.tables.append((self.heading, []))
        elif tag == "tr" and self.tables:
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("h2", "h3", "h4"):
            self._in_heading, self.heading = False, "".join(self._text).strip()
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1][1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._in_heading:
            self._text.append(data)


def test_the_page_is_self_contained_and_its_numbers_are_the_runs(page):
    run, path = page
    text = path.read_text()
    manifest = json.loads((run / "manifest.json").read_text())
    title = re.search(r"<title>(.*?)</title>", text).group(1)
    assert title == (f"farm report: dilate3x3 on {manifest['device_class']}, run "
                     f"{manifest['run_id']}")
    # nothing fetched: no external source, style or script; every image is embedded
    assert not re.search(r'(src|href)="(https?:|//)', text)
    assert not re.search(r"<script[^>]*\bsrc=", text) and "<link" not in text
    images = re.findall(r'<img src="([^"]+)"', text)
    assert len(images) == len(NAMES)
    assert all(i.startswith("data:image/png;base64,") for i in images)
    assert len(re.findall(r"<figcaption", text)) == len(NAMES)
    parser = Tables()
    parser.feed(text)
    tables = dict(parser.tables)
    rounds = tables["Rounds"]
    header, body = rounds[0], rounds[1:]
    rows = SampleStore(run / "samples").read().to_pylist()
    assert [r[0] for r in body] == ["1", "2"]
    for cells in body:
        mine = [r for r in rows if r["round"] == int(cells[0])]
        ok = [r["runtime_ms"] for r in mine if r["status"] == "ok"]
        got = dict(zip(header, cells, strict=True))
        assert int(got["cand"]) == len(mine) and int(got["ok"]) == len(ok)
        assert got["best ms"] == f"{min(ok):.3f}"
    final = tables["Final re-timing"]
    assert final[0] == ["finalist", "verdict", "vs start weights' beam search, 95% interval",
                        "median ms", "ms timed during its round",
                        "re-timings ms: min, quartiles, max"]
    final = [[c[0], c[3], c[4], c[2], c[1], c[5]] for c in final]  # as the checks read it
    # every comparison in the one wording (farm.stats.verdict.wording), its word beside it
    two = r"\d+\.\d\d"
    for cells in final[1:]:
        assert cells[3] == "-" or re.fullmatch(
            rf"{two}x (faster|slower) \[{two}, {two}\]|indistinguishable \({two}x \[{two}, "
            rf"{two}\]\)", cells[3]), cells
        assert cells[3] == "-" or cells[3].startswith(cells[4]) or cells[4] in cells[3]
    assert any(re.fullmatch(r"\d+\.\d{3} \(round \d+\)", c[2]) for c in final[1:]), final
    assert "timed during the round" in text
    retiming = json.loads((run / "best" / "runtime.json").read_text())
    winner = next(c for c in final[1:] if c[0].endswith("(best/)"))
    assert winner[1] == f"{retiming['runtime_ms']:.3f}"
    spread = [float(v) for v in winner[5].split(", ")]  # min, quartiles, max of its re-timings
    mine = next(f for f in retiming["finalists"] if f["label"] == retiming["finalist"])
    times = [t for t in mine["retimes_ms"] if t is not None]
    assert len(spread) == 5 and spread == sorted(spread)
    assert spread[0] == round(min(times), 3) and spread[-1] == round(max(times), 3)
    assert spread[2] == pytest.approx(mine["median_ms"], abs=1e-3)
    # where the time went, per round
    assert [c[0] for c in tables["Where the time went"][1:]] == ["1", "2"]
    labels = " | ".join(c[0] for c in final[1:])  # a schedule's other labels: "(= ...)"
    for f in retiming["finalists"]:
        assert f["label"] in labels
    assert "manual schedule" in labels and "beam search with start weights" in labels
    assert "The run is not running; this page shows rounds 1-2." in text


CHECK = """<script>
window.addEventListener("load", () => {
  const imgs = [...document.images];
  const r = {width: innerWidth, scroll: document.documentElement.scrollWidth,
             images: imgs.length,
             loaded: imgs.filter(i => i.complete && i.naturalWidth > 0).length,
             wide: imgs.filter(i => i.getBoundingClientRect().right > innerWidth + 1).length};
  parent.postMessage(JSON.stringify(r), "*");
});
</script>"""
# Headless Chromium's window is at least 500 px wide: the page is shown in an iframe of
# the width under test, which reports to its host page
HOST = """<!doctype html><body style="margin:0">
<iframe src="{src}" style="width:{width}px;height:{height}px;border:0"></iframe>
<pre id="farm-check"></pre>
<script>addEventListener("message", e => {{
  document.getElementById("farm-check").textContent = e.data; }});</script></body>"""


def _chromium(url: str, width: int, tmp: Path, *action: str) -> str:
    argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", "--allow-file-access-from-files",
            f"--user-data-dir={tmp / 'profile'}", f"--window-size={max(width, 500)},1400",
            "--virtual-time-budget=5000", *action, url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it: "
                    "apt install chromium)")
@pytest.mark.parametrize("width", [1280, 400])
def test_the_page_fits_the_window_and_its_images_load_in_chromium(page, tmp_path, width):
    _, path = page
    probe = tmp_path / "probe.html"
    probe.write_text(path.read_text().replace("</body>", CHECK + "</body>"))
    host = tmp_path / "host.html"
    host.write_text(HOST.format(src=probe.name, width=width, height=900))
    dom = _chromium(host.as_uri(), width, tmp_path, "--dump-dom")
    found = re.search(r'<pre id="farm-check">(\{.*?\})</pre>', dom)
    assert found, dom[-2000:]
    check = json.loads(found.group(1))
    assert check["width"] == width
    assert check["scroll"] <= width, check  # no horizontal overflow
    assert check["images"] == check["loaded"] == len(NAMES) and check["wide"] == 0, check
    shot = Path(SHOTS or tmp_path) / f"report-{width}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    view = tmp_path / "view.html"
    shutil.copy(path, tmp_path / "page.html")
    view.write_text(HOST.format(src="page.html", width=width, height=1400))
    _chromium(view.as_uri(), width, tmp_path, f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _written_while_tuning(run: Path, out: Path, **kw) -> str:
    """The page of `run` written while its lock is held, as the tuning driver holds it."""
    from farm.store.rundir import RunDir

    held = RunDir(run)
    held.open()
    try:
        return write_page(run, out, **kw).read_text()
    finally:
        held.close()


def test_a_page_made_while_the_run_tunes_says_so(page, tmp_path):
    """Read while tuning: the run's lock is held (as the tuning driver holds it)."""
    run, _ = page
    text = _written_while_tuning(run, tmp_path / "live.html")
    assert re.search(r'<p class="live">In progress \(pid \d+ on .* since .*\): this page '
                     r"shows the committed rounds 1-2; round 3 is under way", text), text[:3000]


def _between(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0]


def test_what_was_found_heads_the_page_with_the_command_that_uses_the_weights(page):
    run, path = page
    text = path.read_text()
    assert text.index("<h2>What was found</h2>") < text.index("<h2>Rounds</h2>")
    found = _between(text, "<h2>What was found</h2>", "<h2>Rounds</h2>")
    retiming = json.loads((run / "best" / "runtime.json").read_text())
    assert re.search(rf"best schedule {retiming['runtime_ms']:.3f} ms vs beam-32 with the "
                     r"start weights \d+\.\d{3} ms: ", found), found
    assert "vs the manual schedule" in found
    weights = (run / "weights" / "best.weights").resolve()
    use = re.search(r'<code id="(cmd-[^"]+)">(farm run dilate3x3 --weights [^<]+)</code>'
                    r'<button class="copy" data-copy="\1"', found)
    assert use and use.group(2).endswith(str(weights)), found
    handed = json.loads((run / "weights" / "best.json").read_text())["weights_sha256"]
    start = json.loads((run / "manifest.json").read_text())["start_weights_sha256"]
    # offered only for a model the run trained: its start weights are no new model
    assert (f"farm models promote {run.resolve()}" in found) == (handed != start)
    # the command line that made the run, and the best schedule's own text
    assert re.search(r"<pre>farm autotune dilate3x3 --rounds 2 --batch-size 6 --out \S+ "
                     r"--html</pre>", found), found
    schedule = next((run / "best").glob("*.schedule.h")).read_text()
    assert html.escape(schedule) in found


def test_decisions_say_per_round_what_was_decided_and_why(page):
    run, path = page
    parser = Tables()
    parser.feed(path.read_text())
    decisions = next(t for heading, t in parser.tables if heading == "Decisions")
    assert decisions[0] == ["round", "decision and why"]
    for cells in decisions[1:]:
        record = json.loads((run / "rounds" / f"round-{int(cells[0]):06d}.json").read_text())
        acc = record["acceptance"]
        assert ("kept the current weights" if acc["accepted"] == "current" else
                f"switched to {acc['accepted']}") in cells[1]
        if acc.get("reason"):
            assert acc["reason"] in cells[1]
    assert [c[0] for c in decisions[1:]] == ["1", "2"]


def test_each_candidate_updates_figures_are_on_the_page(page, tmp_path):
    run, _ = page
    copy = tmp_path / "judged"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".lock", "report"))
    path = copy / "rounds" / "round-000002.json"
    record = json.loads(path.read_text())
    record["acceptance"]["candidates"] = [
        {"name": "current", "accuracy": 0.61, "trained_on": 0},
        {"name": "chain-fast", "accuracy": 0.74, "gain": 0.13, "gain_low": 0.02,
         "train_loss": 0.0123, "train_rate": 0.81, "train_s": 2.5, "trained_on": 12}]
    record["acceptance"]["accepted"] = "chain-fast"
    record["acceptance"]["reason"] = "chain-fast ranks the round better beyond the noise"
    path.write_text(json.dumps(record))
    parser = Tables()
    parser.feed(write_page(copy, tmp_path / "page.html").read_text())
    decisions = next(t for heading, t in parser.tables if heading == "Decisions")
    assert decisions[2] == ["2", "switched to chain-fast (provisional: its beam search is "
                            "checked next round): chain-fast ranks the round better beyond "
                            "the noise"]
    judged = [t for _, t in parser.tables if t and t[0] and t[0][0] == "candidate"]
    assert judged == [[["candidate", "held-out rank", "gain", "gain low", "train loss",
                        "trainer rate", "trained on", "train s", "note"],
                       ["current", "0.610", "-", "-", "-", "-", "0", "0.0", ""],
                       ["chain-fast", "0.740", "+0.130", "+0.020", "0.0123", "0.81", "12",
                        "2.5", ""]]]


def test_the_samples_table_holds_every_row_with_its_schedule(page):
    run, path = page
    text = path.read_text()
    data = json.loads(re.search(r'<script type="application/json" class="samples-data">'
                                r"(.*?)</script>", text, re.S).group(1))
    rows = SampleStore(run / "samples").read().to_pylist()
    assert data["header"] == list(samples_table.HEADER)
    assert len(data["rows"]) == len(rows)
    by_key = {(r["round"], r["index"]): r for r in rows}
    for cells in data["rows"]:
        row = by_key[(cells[0], cells[1])]
        assert cells[4] == row["status"]
        if row["status"] == "ok":
            assert cells[6] == round(row["runtime_ms"], 4)
            assert cells[-1] == row["schedule_source"]
    assert f"all {len(rows)} rows" in text


def _with_failures(run: Path, tmp_path: Path) -> Path:
    """A copy of `run` whose round-1 rows 2 and 3 failed to compile (with an error and log)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    copy = tmp_path / "failed-run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(".lock", "report"))
    file = copy / "samples" / "round-000001.parquet"
    table = pq.read_table(file)
    rows = table.to_pylist()
    for row in rows:
        if row["index"] in (2, 3):
            row.update(status="compile_error", cause="compile_error:codegen",
                       error="Error: boom <b>\nsecond line", runtime_ms=None,
                       log="\n".join(f"log line {i}" for i in range(30)))
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), file)
    return copy


def test_failures_are_counted_by_cause_with_the_first_ones_log(page, tmp_path):
    run, _ = page
    copy = _with_failures(run, tmp_path)
    text = write_page(copy, tmp_path / "page.html").read_text()
    parser = Tables()
    parser.feed(text)
    failures = dict(parser.tables)["Failures"]
    assert failures == [["cause", "rows", "rounds"], ["compile_error:codegen", "2", "1"]]
    shown = _between(text, "compile_error:codegen: the first one (round 1, #2", "</details>")
    assert "Error: boom &lt;b&gt;\nsecond line\nlog line 0" in shown
    assert "log line 9" in shown and "log line 10" not in shown  # its first lines only


def test_a_big_run_shows_its_best_and_failed_rows_and_says_where_the_rest_are(
        page, tmp_path, monkeypatch):
    run, _ = page
    copy = _with_failures(run, tmp_path)
    from farm.store.rundir import RunDir

    monkeypatch.setattr(samples_table, "SCHEDULE_BUDGET", 1)
    monkeypatch.setattr(samples_table, "BEST_KEPT", 3)
    table = samples_table.sample_table(RunDir(copy))
    rows = SampleStore(copy / "samples").read().to_pylist()
    fastest = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["runtime_ms"])
    shown = {(c[0], c[1]) for c in table.rows}
    assert {(r["round"], r["index"]) for r in fastest[:3]} <= shown
    assert {(1, 2), (1, 3)} <= shown  # the failed rows
    assert len(shown) < len(rows) and table.total == len(rows)
    assert f"{len(table.rows)} of {len(rows)} rows" in table.note
    assert "open_run" in table.note and "DuckDB" in table.note


def test_watch_needs_html(page, capsys):
    run, _ = page
    assert_user_error(farm_here(capsys, "report", run, "--watch"), "--watch", "--html")


def test_the_commands_state_the_library_reload_period():
    from farm.commands import autotune, report
    from farm.workflows.reports import REFRESH_S

    assert report.DEFAULT_REFRESH_S == autotune.DEFAULT_REFRESH_S == REFRESH_S


def test_watch_rewrites_a_live_page_that_reloads_itself_until_the_run_stops(page, tmp_path):
    import threading
    import time

    from farm.store.rundir import RunDir
    from farm.workflows.reports import watch_page

    run, _ = page
    held = RunDir(run)
    held.open()
    said: list[str] = []
    out = tmp_path / "watched"
    watcher = threading.Thread(target=watch_page, args=(run, None, out, 7),
                               kwargs={"progress": said.append, "poll_s": 0.05})
    try:
        watcher.start()
        deadline = time.monotonic() + 60
        while not said and time.monotonic() < deadline:
            time.sleep(0.05)
        live = (out / "index.html").read_text()
        assert '<meta http-equiv="refresh" content="7">' in live
        assert "reloads itself every 7 s" in live
    finally:
        held.close()
    watcher.join(60)
    assert not watcher.is_alive()
    final = (out / "index.html").read_text()
    assert "http-equiv" not in final and "The run is not running" in final
    assert "without reload" in said[-1]


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it: "
                    "apt install chromium)")
def test_an_open_live_page_reloads_itself_until_the_run_stops(page, tmp_path):
    """Served over HTTP, as a shared folder's page is: Chromium fetches the live page again by
    itself, each time as rewritten after one more round, until the page the watcher writes
    when the run stops, which does not reload."""
    import http.server
    import threading

    run, final = page
    live = _written_while_tuning(run, tmp_path / "live.html", refresh_s=1)
    assert '<meta http-equiv="refresh" content="1">' in live
    versions = [live.replace("<body>", f'<body><p id="version">{n}</p>', 1) for n in (1, 2)]
    versions.append(final.read_text().replace("<body>", '<body><p id="version">3</p>', 1))
    served: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != "/index.html":
                self.send_error(404)
                return
            served.append(self.path)
            data = versions[min(len(served), len(versions)) - 1].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        dom = _chromium(f"http://127.0.0.1:{server.server_port}/index.html", 1280, tmp_path,
                        "--dump-dom")
    finally:
        server.shutdown()
    assert len(served) == len(versions), served  # reloaded twice, then stopped reloading
    assert '<p id="version">3</p>' in dom and "The run is not running" in dom


SORT_AND_FILTER = """<script>
window.addEventListener("load", () => {
  const box = document.querySelector(".samples");
  const body = () => [...box.querySelectorAll("tbody tr")];
  const col = name => [...box.querySelectorAll("thead th")].findIndex(
    th => th.textContent === name);
  const cells = c => body().map(tr => tr.children[c].textContent);
  const r = {all: body().length};
  const filter = box.querySelector(".samples-filter");
  filter.value = "status:ok"; filter.dispatchEvent(new Event("input"));
  r.ok = body().length;
  r.statuses = [...new Set(cells(col("status")))];
  const ms = box.querySelectorAll("thead th")[col("runtime ms")];
  ms.click(); r.up = cells(col("runtime ms")).map(Number);
  ms.click(); r.down = cells(col("runtime ms")).map(Number);
  r.count = box.querySelector(".samples-count").textContent;
  body()[0].click();
  r.text = box.querySelector(".samples-text").textContent;
  r.chosen = box.querySelectorAll("tr.chosen").length;
  filter.value = "nothing-matches-this"; filter.dispatchEvent(new Event("input"));
  r.none = body().length;
  const copy = document.querySelector("button.copy");
  copy.click();
  r.selected = getSelection().toString();
  r.command = document.getElementById(copy.dataset.copy).textContent;
  setTimeout(() => {  // the clipboard answers later
    r.button = copy.textContent;
    document.getElementById("farm-check").textContent = JSON.stringify(r);
  }, 500);
});
</script><pre id="farm-check"></pre>"""


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it: "
                    "apt install chromium)")
def test_the_samples_table_sorts_filters_and_shows_a_schedule_in_chromium(page, tmp_path):
    run, path = page
    probe = tmp_path / "probe.html"
    probe.write_text(path.read_text().replace("</body>", SORT_AND_FILTER + "</body>"))
    dom = _chromium(probe.as_uri(), 1280, tmp_path, "--dump-dom")
    found = re.search(r'<pre id="farm-check">(\{.*?\})</pre>', dom, re.S)
    assert found, dom[-2000:]
    r = json.loads(html.unescape(found.group(1)))
    rows = SampleStore(run / "samples").read().to_pylist()
    ok = [x for x in rows if x["status"] == "ok"]
    assert r["all"] == len(rows) and r["ok"] == len(ok) and r["statuses"] == ["ok"]
    assert r["up"] == sorted(r["up"]) and r["down"] == sorted(r["up"], reverse=True)
    assert r["up"][0] == round(min(x["runtime_ms"] for x in ok), 4)
    assert r["count"] == f"{len(ok)} of {len(rows)} rows shown"
    slowest = max(ok, key=lambda x: x["runtime_ms"])
    assert r["text"] == slowest["schedule_source"] and r["chosen"] == 1
    assert r["none"] == 0
    # the copy button selects its command (and copies it, where the browser lets it)
    assert r["selected"] == r["command"] and r["command"].startswith("farm run dilate3x3 ")
    assert r["button"] in ("copied", "selected: Ctrl-C copies it")


@pytest.fixture(scope="module")
def campaign_page(tmp_path_factory):
    run = tmp_path_factory.mktemp("campaign") / "run"
    farm("autotune", "dilate3x3", "sobel", "--rounds", "2", "--batch-size", "6", "--out", run,
         check=0)
    farm("report", run, "--html", check=0)
    return run, run / "report" / "index.html"


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it: "
                    "apt install chromium)")
@pytest.mark.parametrize("width", [1280, 400])
def test_a_campaigns_page_has_a_part_per_pipeline_and_fits_the_window(campaign_page, tmp_path,
                                                                      width):
    _, path = campaign_page
    text = path.read_text()
    parser = Tables()
    parser.feed(text)
    tables = dict(parser.tables)
    assert [c[0] for c in tables["Pipelines"][1:]] == ["dilate3x3", "sobel"]
    for name in ("dilate3x3", "sobel"):
        assert f"<h2>Pipeline {name}</h2>" in text
        assert f"{name}: the best schedule (best/{name}/" in text
    data = json.loads(re.search(r'class="samples-data">(.*?)</script>', text, re.S).group(1))
    assert {c[2] for c in data["rows"]} == {"dilate3x3", "sobel"}
    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", CHECK + "</body>"))
    host = tmp_path / "host.html"
    host.write_text(HOST.format(src=probe.name, width=width, height=900))
    dom = _chromium(host.as_uri(), width, tmp_path, "--dump-dom")
    check = json.loads(re.search(r'<pre id="farm-check">(\{.*?\})</pre>', dom).group(1))
    assert check["scroll"] <= width and check["wide"] == 0, check
    # each pipeline's plots, and the campaign's own (the model's, over both)
    assert check["images"] == check["loaded"] == 2 * len(NAMES) + len(CAMPAIGN_NAMES), check
    shot = Path(SHOTS or tmp_path) / f"campaign-{width}.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, tmp_path / "page.html")
    view = tmp_path / "view.html"
    view.write_text(HOST.format(src="page.html", width=width, height=2400))
    _chromium(view.as_uri(), width, tmp_path, f"--screenshot={shot}")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
