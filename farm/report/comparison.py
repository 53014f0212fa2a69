"""A comparison's result, written the same way by `farm bench`, `farm evaluate` and `farm
models train`: a row per variant with the same timing and verdict columns (`row`), one table
(`format_table`, cells by `versus`), and the rows as Parquet beside a plot
(`write_results`). The comparison itself is farm.execution.compare's."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from farm import atomic
from farm.execution.compare import Compared
from farm.report.output import columns
from farm.stats import verdict

Rows = Mapping[str, dict]  # one group's rows by variant


def row(c: Compared, v: verdict.Verdict | None, weights_sha256: str | None) -> dict:
    """The columns a compared variant's row has in every result table: its timings, verdict
    `v` against the reference (vs_baseline*), its error, its weights, when."""
    return {"median_ms": c.median_ms, "min_ms": c.min_ms, "retimes_ms": c.ok_ms,
            "vs_baseline": v.ratio if v else None, "vs_baseline_low": v.low if v else None,
            "vs_baseline_high": v.high if v else None, "verdict": v.word if v else None,
            "error": c.error or None, "weights_sha256": weights_sha256,
            "created_at": datetime.now(UTC)}


def versus(r: Mapping | None, own: Collection[str] = ()) -> str:
    """A row's cell against its reference: the farm's wording of its ratio with the
    interval (verdict.wording); a verdict of the caller's `own` words as it is; without a
    ratio, its error or its verdict ("-": none)."""
    if r is None:
        return "-"
    if r["verdict"] in own:
        return r["verdict"]
    if r["vs_baseline"] is None:
        return r["error"] or r["verdict"] or "-"
    return verdict.wording(r["vs_baseline"], r["vs_baseline_low"], r["vs_baseline_high"],
                           r["verdict"])


def present(rows: Iterable[dict], variants: Sequence[str]) -> list[str]:
    """Those of `variants` that some row is of, in their order."""
    seen = {r["variant"] for r in rows}
    return [v for v in variants if v in seen]


def grouped(rows: Iterable[dict], key: Callable[[dict], tuple]) -> dict[tuple, dict[str, dict]]:
    """Rows by `key` (in the order they first come), each group's by variant."""
    out: dict[tuple, dict[str, dict]] = {}
    for r in rows:
        out.setdefault(key(r), {})[r["variant"]] = r
    return out


def format_table(lead: Sequence[str], groups: Iterable[tuple[Sequence[str], Rows]],
                 shown: Sequence[str], against: Sequence[tuple[str, str]],
                 cell: Callable[[Rows, str], str] | None = None) -> str:
    """A line per group: its `lead` cells, the median ms of each `shown` variant, then per
    (heading, variant) of `against` the variant's cell against the reference (`cell`,
    default versus)."""
    cell = cell or (lambda mine, v: versus(mine.get(v)))
    table = [[*lead, *(f"{v} ms" for v in shown), *(heading for heading, _ in against)]]
    for cells, mine in groups:
        table.append([*cells, *(_ms(mine.get(v)) for v in shown),
                      *(cell(mine, v) for _, v in against)])
    return columns(table)


def _ms(r: dict | None) -> str:
    return "-" if r is None or r["median_ms"] is None else f"{r['median_ms']:.3f}"


def write_results(rows: list[dict], schema: pa.Schema, parquet_path: Path, png_path: Path,
                  plot: Callable[[list[dict], Path], Path]) -> tuple[Path, Path]:
    """The rows as Parquet at `parquet_path` (`schema`'s columns) and `plot` of them at
    `png_path`; both paths."""
    write_rows(rows, schema, parquet_path)
    return parquet_path, plot(rows, png_path)


def write_rows(rows: list[dict], schema: pa.Schema, path: Path) -> None:
    """The rows as Parquet at `path` (`schema`'s columns): whole or not at all, and a link
    planted at the path replaced, not written through."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(rows, schema=schema)
    atomic.write_with(path, lambda tmp: pq.write_table(table, tmp))
