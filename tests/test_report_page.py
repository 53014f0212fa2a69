"""farm report --html: the page of a small real run, checked as HTML and in headless
Chromium (Debian's package; .ci/run installs it) at 1280 px and 400 px."""

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from clitools import farm

from farm.report.plots import NAMES
from farm.store.samples import SampleStore

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# FARM_SCREENSHOTS=DIR keeps the screenshots, to look at them
SHOTS = os.environ.get("FARM_SCREENSHOTS")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    base = tmp_path_factory.mktemp("page")
    run = base / "run"
    farm("autotune", "dilate3x3", "--rounds", "2", "--batch-size", "6", "--out", run, check=0)
    out = farm("report", run, "--html", check=0).stdout
    path = run / "report" / "index.html"
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
    assert "<script" not in text and "<link" not in text
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
    assert final[0] == ["finalist", "median ms", "ms timed during its round",
                        "vs start weights' beam search, 95% interval", "verdict"]
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


def test_a_page_made_while_the_run_tunes_says_so(page, tmp_path):
    """Read while tuning: the run's lock is held (as the tuning driver holds it)."""
    from farm.report.page import write_page
    from farm.store.rundir import RunDir

    run, _ = page
    held = RunDir(run)
    held.open()
    try:
        text = write_page(run, tmp_path / "live.html").read_text()
    finally:
        held.close()
    assert re.search(r'<p class="live">In progress \(pid \d+ on .* since .*\): this page '
                     r"shows the committed rounds 1-2; round 3 is under way", text), text[:3000]
