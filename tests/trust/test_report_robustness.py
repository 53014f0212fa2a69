"""`farm report` on what a live or someone else's run directory holds: a campaign's
pipeline with no rows yet, and text with control characters, which reach the terminal
escaped."""

import io
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from farm import cli
from farm.report.output import pyplot, save_figure
from farm.report.progress import Progress

V1_RUN = Path(__file__).parents[1] / "data" / "v1-run"
ESC = "\x1b"


def _run(tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(V1_RUN, run)
    return run


def _live_campaign(tmp_path) -> Path:
    """A campaign whose second pipeline joined at round 2, which is still running: it has
    no rows yet."""
    run = _run(tmp_path)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest.update(campaign=True, benchmark="campaign", generator="campaign",
                    benchmark_sha256="", pipelines=[
                        {"name": "dilate3x3", "ref": "dilate3x3", "sha256": "0" * 64},
                        {"name": "blur3x3", "ref": "blur3x3", "sha256": "1" * 64,
                         "first_round": 2}])
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


@pytest.mark.parametrize("argv", [[], ["--pipeline", "blur3x3"], ["--html"]])
def test_a_report_of_a_live_campaign_shows_a_pipeline_with_no_rows_yet(tmp_path, capsys,
                                                                       argv):
    run = _live_campaign(tmp_path)
    assert cli.main(["report", str(run), *argv]) == 0
    out = capsys.readouterr().out
    plots = run / "report" / "blur3x3"  # a pipeline's plots, with --pipeline too
    assert (plots / "runtimes_per_round.png").is_file(), out
    if not argv:
        assert "blur3x3    2            0" in out


def _failed_row_saying(run: Path, error: str) -> None:
    rounds = run / "samples" / "round-000001.parquet"
    table = pq.read_table(rounds)
    for column, value in (("status", "compile_failed"), ("error", error)):
        values = table[column].to_pylist()
        values[0] = value
        table = table.set_column(table.schema.get_field_index(column), column,
                                 pa.array(values, table.schema.field(column).type))
    pq.write_table(table, rounds)


def test_a_report_prints_control_characters_of_the_run_escaped(tmp_path, capsys):
    run = _run(tmp_path)
    _failed_row_saying(run, f"{ESC}]0;owned{chr(7)}{ESC}[2J\u202eevil")
    assert cli.main(["report", str(run)]) == 0
    out = capsys.readouterr().out
    assert ESC not in out and chr(7) not in out and "\u202e" not in out
    assert "\\x1b]0;owned\\x07\\x1b[2J\\u202eevil" in out


def test_the_error_line_escapes_control_characters(tmp_path, capsys):
    run = _live_campaign(tmp_path)
    assert cli.main(["report", str(run), "--pipeline", f"x{ESC}[31m\nred"]) == 2
    err = capsys.readouterr().err
    assert ESC not in err and err.count("\n") == 1 and "x\\x1b[31m\\x0ared" in err


def test_progress_escapes_what_it_prints_and_reads_no_markup_in_it():
    stream = io.StringIO()
    Progress(stream, live=False).message(f"{ESC}[31mbox:label=[/]\nnext")
    assert stream.getvalue() == "\\x1b[31mbox:label=[/]\nnext\n"
    live = Progress(io.StringIO(), live=True)
    live.round_started(1, 1, 4)
    try:
        live.message("box:label=[/]")  # rich's markup would raise on a closing tag alone
    finally:
        live.round_finished("done")


def test_printable_keeps_text_and_escapes_what_controls_a_terminal():
    from farm.report.output import printable

    assert printable("median3x3: 1.2x faster [1.1, 1.3] é 名") == \
        "median3x3: 1.2x faster [1.1, 1.3] é 名"
    assert printable("a\tb\rc\0d\x7fe\x9bf\ud800") == \
        "a\\x09b\\x0dc\\x00d\\x7fe\\x9bf\\ud800"
    assert printable("one\ntwo", lines=True) == "one\ntwo"
    assert printable("one\ntwo") == "one\\x0atwo"


def test_a_dollar_sign_in_a_name_is_drawn_as_text_not_parsed_as_math(tmp_path):
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([1, 2], [1, 2], label="$\\nosuchcmd{$")
    ax.set_xticks([1, 2], ["a$b", "$\\frac{$"])
    ax.legend()
    save_figure(fig, tmp_path / "plot.png")  # mathtext would raise on these
    assert (tmp_path / "plot.png").stat().st_size > 0
