"""A name becomes a path through farm.paths.path_name only: no pipeline's, group's or device
class's name takes a write out of the run directory, or crashes the end of a campaign."""

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from farm import cli
from farm.paths import path_name

V1_RUN = Path(__file__).parents[1] / "data" / "v1-run"
# legitimate labels: a generator's string parameter may hold any printable text
CLIMBING = "box:path=../../../victim"
SLASHED = "box:path=a/b"


def campaign_of(tmp_path, names) -> Path:
    """A copy of tests/data/v1-run made a campaign of pipelines `names`, its rows dealt out
    among them in turn."""
    run = tmp_path / "lab" / "run"
    shutil.copytree(V1_RUN, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(campaign=True, benchmark="campaign", generator="campaign",
                    benchmark_sha256="",
                    pipelines=[{"name": n, "ref": n, "sha256": "0" * 64, "first_round": 1}
                               for n in names])
    (run / "manifest.json").write_text(json.dumps(manifest))
    rounds = run / "samples" / "round-000001.parquet"
    table = pq.read_table(rounds)
    dealt = [names[i % len(names)] for i in range(table.num_rows)]
    table = table.set_column(table.schema.get_field_index("benchmark"), "benchmark",
                             pa.array(dealt))
    pq.write_table(table, rounds)
    return run


def files_outside(tmp_path, run) -> set[Path]:
    """What is under tmp_path but neither the run directory, in it nor a folder of it."""
    return {p for p in tmp_path.rglob("*")
            if p != run and run not in p.parents and p not in run.parents}


# --- path_name ------------------------------------------------------------------------

def test_a_safe_name_is_its_own_path_name():
    for name in ("median3x3", "box:radius=2", "conv3x3a16+conv3x3a32", "loo-a+b",
                 "gen:a=1,b=x_y", "cpu@vm", "host-amd-epyc (x86-64-linux-avx2-fma)",
                 "box:label=hello world"):
        assert path_name(name) == name


@pytest.mark.parametrize("name", ["../../victim", "..", ".", "", ".hidden", SLASHED,
                                  "a\0b", "tab\there", "\x1b[31mred", "é", "x" * 300,
                                  "/abs/olute"])
def test_any_other_name_becomes_one_safe_file_name(name):
    safe = path_name(name)
    assert safe and safe == path_name(safe)  # itself safe
    assert "/" not in safe and "\0" not in safe and not safe.startswith(".")
    assert safe.isascii() and safe.isprintable() and len(safe) <= 100


def test_names_that_slug_alike_stay_apart():
    assert len({path_name(n) for n in ("box:path=a/b", "box:path=a_b", "box:path=a b",
                                       "box:path=a\nb")}) == 4


# --- farm report ----------------------------------------------------------------------

def test_a_report_writes_each_pipelines_plots_inside_the_run(tmp_path, capsys):
    run = campaign_of(tmp_path, ["dilate3x3", CLIMBING, SLASHED])
    assert cli.main(["report", str(run)]) == 0
    assert files_outside(tmp_path, run) == set()
    for name in (CLIMBING, SLASHED):
        assert (run / "report" / path_name(name) / "best_so_far.png").is_file()
