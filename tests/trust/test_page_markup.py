"""Nothing a run directory says reaches the report page as markup."""

import json
import shutil
from pathlib import Path

import pytest

from farm.errors import FarmError
from farm.report.page import write_page

V1_RUN = Path(__file__).parent.parent / "data" / "v1-run"
MARKUP = "<img src=x onerror=alert(1)>"


@pytest.mark.parametrize("field", ["batch_size", "parallelism", "target", "device_class",
                                   "run_id", "generator"])
def test_markup_in_a_manifest_field_is_escaped_or_refused(tmp_path, field):
    run = tmp_path / "run"
    shutil.copytree(V1_RUN, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest[field] = MARKUP
    (run / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "page"
    try:
        page = write_page(run, out)
    except FarmError:  # a field of the wrong type is refused where it is read: fine too
        assert not out.exists() or not list(out.glob("*.html"))
        return
    text = page.read_text()
    assert MARKUP not in text and "<img src=x" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
