"""What a run directory (or the shared model registry) holds where a file belongs is read
only if it is a regular file of a sane size: a FIFO would block a reader forever, a link
to /dev/zero fill its memory, a link to a private file reach the page meant to be mailed.
And a sample file's columns are what the farm writes, in type and in presence."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from crafted import add_best, v1_run

from farm.errors import DatasetError, RunDirError, WeightsError
from farm.model import weights
from farm.report.page import write_page
from farm.store.registry import ModelRecord, _read
from farm.store.samples import SampleStore

V1_RUN = Path(__file__).parents[1] / "data" / "v1-run"


def _quick(call):
    """What `call()` returns or raises, which must come at once: a reader blocked on what it
    opened fails the test instead of hanging it."""
    result: dict = {}

    def run():
        try:
            result["value"] = call()
        except Exception as e:  # the error is the answer
            result["value"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "the reader blocked on what it opened"
    return result["value"]


def test_a_fifo_or_an_endless_file_where_weights_belong_is_refused_at_once(tmp_path):
    fifo = tmp_path / "best.weights"
    os.mkfifo(fifo)
    assert isinstance(_quick(lambda: weights.load(fifo)), WeightsError)
    endless = tmp_path / "zero.weights"
    endless.symlink_to("/dev/zero")
    error = _quick(lambda: weights.load(endless))
    assert isinstance(error, WeightsError) and "not a regular file" in str(error)
    folder = tmp_path / "folder.weights"
    folder.mkdir()
    assert "not a regular file" in str(_quick(lambda: weights.load(folder)))


def test_a_fifo_where_the_manifest_belongs_is_refused_at_once(tmp_path):
    run = v1_run(tmp_path / "run")
    run.manifest_path.unlink()
    os.mkfifo(run.manifest_path)
    error = _quick(run.read_manifest)
    assert isinstance(error, RunDirError) and "not a regular file" in str(error)


def test_a_fifo_where_the_runs_lock_belongs_neither_hangs_a_reader_nor_a_resume(tmp_path):
    """`farm report --html` hung on it; a resume was refused only after 52 s, "cannot be
    written (None)"."""
    run = v1_run(tmp_path / "run")
    (run.path / ".lock").unlink(missing_ok=True)
    os.mkfifo(run.path / ".lock")
    assert _quick(run.holder) is None
    error = _quick(run.open)
    assert isinstance(error, RunDirError) and "not a regular file" in str(error)


def test_a_registry_record_that_is_a_fifo_or_nested_deep_is_skipped(tmp_path):
    fifo = tmp_path / "model.json"
    os.mkfifo(fifo)
    assert _quick(lambda: _read(fifo, ModelRecord)) is None
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    assert _read(deep, ModelRecord) is None


def test_the_page_shows_no_file_a_best_schedule_links_to(tmp_path):
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY MATERIAL")
    run = v1_run(tmp_path / "run")
    add_best(run)
    schedule = run.best_schedule("dilate3x3", "", "dilate3x3.a")
    schedule.unlink(missing_ok=True)
    schedule.symlink_to(secret)
    page = write_page(run.path, tmp_path / "page" / "index.html").read_text()
    assert "PRIVATE KEY MATERIAL" not in page
    assert "not shown" in page


def test_a_lone_surrogate_in_a_manifests_argv_or_cwd_is_shown_escaped(tmp_path):
    """Python reads undecodable bytes of argv and paths as lone surrogates: a manifest that
    recorded one was a traceback in the page (UnicodeEncodeError)."""
    import json

    run = v1_run(tmp_path / "run")
    data = json.loads(run.manifest_path.read_text())
    data["invocations"] = [{"argv": ["farm", "autotune", "x\udcff"], "cwd": "/tmp/\udcfe",
                            "at": "2026-12-07T00:00:00+00:00", "host": "h", "versions": {},
                            "devices": [], "started": 0.0}]
    run.manifest_path.write_text(json.dumps(data))  # (JSON escapes the surrogates)
    page = write_page(run.path, tmp_path / "page" / "index.html").read_text()
    assert "<html" in page.lower()


def _sample_file(run: Path) -> Path:
    return next((run / "samples").glob("*.parquet"))


def test_a_sample_column_of_another_type_is_a_dataset_error(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(V1_RUN, run)
    path = _sample_file(run)
    table = pq.read_table(path)
    i = table.schema.get_field_index("runtime_ms")
    wrong = pa.array([[v] for v in table["runtime_ms"].to_pylist()], pa.list_(pa.float64()))
    pq.write_table(table.set_column(i, "runtime_ms", wrong), path)
    with pytest.raises(DatasetError, match="cannot read the sample dataset"):
        SampleStore(run / "samples").read()


@pytest.mark.parametrize("column, status_ok", [("round", False), ("sample_id", False),
                                               ("runtime_ms", True)])
def test_rows_without_what_every_row_has_are_a_dataset_error_naming_the_file(
        tmp_path, column, status_ok):
    run = tmp_path / "run"
    shutil.copytree(V1_RUN, run)
    path = _sample_file(run)
    table = pq.read_table(path)
    ok = [s == "ok" for s in table["status"].to_pylist()]
    assert any(ok)
    i = table.schema.get_field_index(column)
    values = table[column].to_pylist()
    first = ok.index(True) if status_ok else 0
    values[first] = None
    pq.write_table(table.set_column(i, table.schema.field(i), pa.array(
        values, table.schema.field(i).type)), path)
    with pytest.raises(DatasetError, match=f"{path.name} has rows without {column}"):
        SampleStore(run / "samples").read()


def test_a_fifo_or_a_link_where_a_sample_file_belongs_is_a_dataset_error(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(V1_RUN, run)
    path = _sample_file(run)
    kept = tmp_path / "kept.parquet"
    path.rename(kept)
    path.symlink_to(kept)
    assert "not a regular file" in str(_quick(lambda: SampleStore(run / "samples").read()))
    path.unlink()
    os.mkfifo(path)
    error = _quick(lambda: SampleStore(run / "samples").read())
    assert isinstance(error, DatasetError) and "not a regular file" in str(error)
