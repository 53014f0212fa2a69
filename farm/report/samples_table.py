"""The report page's samples: a table of the run's rows, sortable and filterable by the
plain script below (no library, nothing fetched), with the schedule text of a chosen row.

A page stays small enough to mail: when every row's schedule text would not fit
SCHEDULE_BUDGET, the table holds the best rows, the failed ones and an even sample of the
rest, and says so, and how to query them all.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from farm.candidate import DUPLICATE, OK
from farm.store.rundir import RunDir

# what the table shows, in this order; the schedule text is shown for the chosen row
COLUMNS = ("round", "index", "benchmark", "planner", "status", "cause", "runtime_ms",
           "compile_s", "device_id", "schedule_key")
HEADER = ("round", "#", "pipeline", "planner", "status", "cause", "runtime ms", "compile s",
          "device", "schedule key")
SCHEDULE_BUDGET = 3_000_000  # bytes of schedule text a page may hold (the page: < 5 MB)
BEST_KEPT = 50  # the fastest rows always shown
FAILED_KEPT = 200  # failed rows always shown (their errors explain the failures section)
ERROR_CHARS = 2_000  # of a failed row's error and log tail, shown in place of a schedule


@dataclass(frozen=True)
class SampleTable:
    rows: list[list]  # cells in COLUMNS' order, then the text shown for the row
    total: int  # rows in the run (of the pipeline)
    note: str  # what is shown, and where the rest is

    def json(self) -> str:
        """The rows as JSON safe inside <script>: no "<" at all, so nothing a row holds
        can close the element or read as markup."""
        return json.dumps({"header": HEADER, "rows": self.rows},
                          separators=(",", ":")).replace("<", "\\u003c")


def sample_table(run: RunDir, pipeline: str = "", budget: int | None = None) -> SampleTable:
    """The rows the page shows of `run` (of one campaign `pipeline`), with at most
    `budget` bytes of schedule text (default SCHEDULE_BUDGET) beyond the rows always
    shown."""
    budget = SCHEDULE_BUDGET if budget is None else budget
    table = run.samples.read([*COLUMNS, "schedule_source", "error", "log"])
    if pipeline:
        table = table.filter(pc.equal(table["benchmark"], pipeline))
    total = table.num_rows
    text_bytes = sum(len(t or "") for t in table["schedule_source"].to_pylist())
    keep = list(range(total)) if text_bytes <= budget else _chosen(table, budget)
    keep.sort(key=lambda i: (table["round"][i].as_py(), table["index"][i].as_py()))
    rows = [_cells(table, i) for i in keep]
    where = (f"every row: farm.api.open_run(\"{run.path}\").samples(), or DuckDB: "
             f"SELECT * FROM '{run.samples.dir}/*.parquet'")
    note = (f"all {total} rows" if len(keep) == total else
            f"{len(keep)} of {total} rows: the {BEST_KEPT} fastest, up to {FAILED_KEPT} "
            "failed and an even sample of the rest, to keep the page small") + f"; {where}"
    return SampleTable(rows, total, note)


def _chosen(table: pa.Table, budget: int) -> list[int]:
    """The fastest rows, the failed ones, then every k-th other row, within the budget."""
    status = table["status"].to_pylist()
    ms = table["runtime_ms"].to_pylist()
    ok = sorted((i for i, s in enumerate(status) if s == OK), key=lambda i: ms[i])
    failed = [i for i, s in enumerate(status) if s not in (OK, DUPLICATE)][:FAILED_KEPT]
    keep = set(ok[:BEST_KEPT]) | set(failed)
    sizes = [len(t or "") for t in table["schedule_source"].to_pylist()]
    used = sum(sizes[i] for i in keep)
    rest = [i for i in range(table.num_rows) if i not in keep]
    mean = max(1.0, sum(sizes[i] for i in rest) / max(1, len(rest)))
    room = max(0, int((budget - used) / mean))
    step = max(1, math.ceil(len(rest) / room)) if room else len(rest) + 1
    return sorted(keep | set(rest[::step][:room]))


def _cells(table: pa.Table, i: int) -> list:
    row = {c: table[c][i].as_py() for c in table.column_names}
    cells: list = [row[c] for c in COLUMNS]
    cells[COLUMNS.index("runtime_ms")] = (round(row["runtime_ms"], 4)
                                          if row["runtime_ms"] is not None else None)
    cells[COLUMNS.index("compile_s")] = (round(row["compile_s"], 1)
                                         if row["compile_s"] is not None else None)
    if row["status"] in (OK, DUPLICATE):
        text = row["schedule_source"] or "(no schedule text recorded)"
    else:
        text = "\n".join(t for t in (row["error"], row["log"]) if t)[:ERROR_CHARS]
    return [*cells, text]


# The tables' script: sort by a header's click (numbers as numbers, again to reverse),
# filter by words (every word must appear in the row; "status:ok" matches one column), and
# show the chosen row's schedule text (a failed row's error). Plain DOM, so the page works
# from a file or a mail; each box of class "samples" holds its own data.
SCRIPT = """
document.querySelectorAll(".samples").forEach(box => {
  const data = JSON.parse(box.querySelector(".samples-data").textContent);
  const body = box.querySelector("tbody"), head = box.querySelector("thead tr");
  const filter = box.querySelector(".samples-filter");
  const count = box.querySelector(".samples-count");
  const shown = box.querySelector(".samples-text");
  const cols = data.header.length, rows = data.rows;
  let key = -1, dir = 1;
  data.header.forEach((h, c) => {
    const th = document.createElement("th");
    th.textContent = h; th.dataset.col = c; th.title = "click (or Enter) to sort";
    th.tabIndex = 0; th.setAttribute("aria-sort", "none");  // reachable by keyboard
    const sort = () => { dir = key === c ? -dir : 1; key = c; draw(); };
    th.addEventListener("click", sort);
    th.addEventListener("keydown", e => {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); } });
    head.appendChild(th);
  });
  const cmp = (a, b) => {
    if (a === b) return 0;
    if (a === null) return 1;
    if (b === null) return -1;
    return (typeof a === "number" && typeof b === "number") ? a - b :
      String(a).localeCompare(String(b));
  };
  const matches = (row, words) => words.every(w => {
    const cut = w.indexOf(":");
    const c = cut > 0 ? data.header.findIndex(h => h.toLowerCase() === w.slice(0, cut)) : -1;
    const value = c >= 0 ? w.slice(cut + 1) : w;
    const cells = c >= 0 ? [row[c]] : row.slice(0, cols);
    return cells.some(v => String(v ?? "-").toLowerCase().includes(value));
  });
  function draw() {
    const words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    let out = rows.filter(r => matches(r, words));
    if (key >= 0) out = out.slice().sort((a, b) => dir * cmp(a[key], b[key]));
    body.replaceChildren(...out.map(r => {
      const tr = document.createElement("tr");
      r.slice(0, cols).forEach(v => {
        const td = document.createElement("td");
        td.textContent = v === null ? "-" : String(v);
        tr.appendChild(td);
      });
      tr.addEventListener("click", () => {
        body.querySelectorAll("tr.chosen").forEach(t => t.classList.remove("chosen"));
        tr.classList.add("chosen");
        shown.textContent = r[cols];
      });
      return tr;
    }));
    head.querySelectorAll("th").forEach(th => {
      const mine = Number(th.dataset.col) === key;
      th.dataset.sorted = mine ? (dir > 0 ? "up" : "down") : "";
      th.setAttribute("aria-sort", mine ? (dir > 0 ? "ascending" : "descending") : "none");
    });
    count.textContent = `${out.length} of ${rows.length} rows shown`;
  }
  filter.addEventListener("input", draw);
  draw();
});
document.querySelectorAll("button.copy").forEach(b => b.addEventListener("click", () => {
  // select the command first: whatever the browser allows, Ctrl-C copies it then
  const code = document.getElementById(b.dataset.copy);
  const range = document.createRange();
  range.selectNodeContents(code);
  getSelection().removeAllRanges(); getSelection().addRange(range);
  const old = () => document.execCommand && document.execCommand("copy");
  const said = ok => { b.textContent = ok ? "copied" : "selected: Ctrl-C copies it"; };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(code.textContent).then(() => said(true),
                                                         () => said(old()));
  } else {
    said(old());
  }
}));
"""
