"""Records are checked where they are read: a malformed manifest, round or best record is a
one-line error naming the file and the field, and every command that reads a run ends with
exit 2 and that line, never a traceback nor a value it goes on with. Unknown keys and the
optional fields older releases lack still read.

The fuzz pass at the end mutates every field of each record (wrong types, names with
`../`, `/`, NUL and control characters, huge values) and runs each variant through
report, export, bench --run, evaluate, resume and the API."""

from __future__ import annotations

import json
import math

import pytest
from clitools import assert_user_error, farm_here
from crafted import (
    BAD_VALUES,
    MARKUP,
    StopBeforeWork,
    StopSession,
    add_best,
    campaign,
    edit_json,
    fields,
    files_under,
    plant,
    set_field,
    v1_run,
)

from farm import api
from farm.errors import FarmError, RunDirError
from farm.execution.cluster import Cluster
from farm.machine import targets
from farm.model import weights
from farm.pipelines import catalog
from farm.report import plots
from farm.store.records import PipelineRecord
from farm.store.rundir import RunDir
from farm.testing import ScriptedTrainer, SyntheticBuilder
from farm.tuning import loop
from farm.tuning.settings import TuneSettings
from farm.workflows import bench, evaluate

MANIFEST, ROUND, RUNTIME, BEST = ("manifest.json", "rounds/round-000001.json",
                                  "best/runtime.json", "weights/best.json")
# the commands (and API calls) that read each record
READERS = {MANIFEST: ("report", "export", "bench", "evaluate", "autotune", "api"),
           ROUND: ("report", "api"), RUNTIME: ("report", "bench", "api"), BEST: ("report",)}

CASES = [
    (MANIFEST, "batch_size", MARKUP), (MANIFEST, "batch_size", 0),
    (MANIFEST, "batch_size", 2.5), (MANIFEST, "batch_size", 10**30),
    (MANIFEST, "parallelism", -4), (MANIFEST, "parallelism", True),
    (MANIFEST, "generator", "../../victim"), (MANIFEST, "generator", "dilate3x3\x00"),
    (MANIFEST, "run_id", "a/b"), (MANIFEST, "target", "x86-64\x1b[2J"),
    (MANIFEST, "benchmark", 5), (MANIFEST, "run_id", None), (MANIFEST, "campaign", "yes"),
    (MANIFEST, "invocations", "many"), (MANIFEST, "pipelines", {"a": 1}),
    (MANIFEST, "pipelines[0]", {"name": "a\nb", "ref": "a", "sha256": ""}),
    (MANIFEST, "pipelines[0]", {"name": "../../victim", "ref": "a", "sha256": ""}),
    (MANIFEST, "pipelines[0]", {"name": "a", "ref": "a", "sha256": "", "first_round": 0}),
    (MANIFEST, "pipelines[0]", {"ref": "a", "sha256": ""}),
    (ROUND, "round", "1"), (ROUND, "beam_ms", "fast"), (ROUND, "beam_ms", -1.0),
    (ROUND, "best_ms", math.nan), (ROUND, "wall_s", math.inf), (ROUND, "statuses", {"ok": "8"}),
    (ROUND, "statuses", [1]), (ROUND, "pipelines", {"dilate3x3": 3}),
    (ROUND, "pipelines", {"dilate3x3": {"beam_ms": "x"}}), (ROUND, "steps", "batch"),
    (ROUND, "acceptance", {"accepted": "current",
                           "candidates": [{"name": "current", "accuracy": 7}]}),
    (ROUND, "acceptance", {"accepted": "current", "candidates": "all"}),
    (ROUND, "beam_check", {"passed": "yes"}),
    (ROUND, "beam_check", {"passed": True, "verdict": {"ratio": math.inf}}),
    (RUNTIME, "runtime_ms", "x"), (RUNTIME, "library", "../../../etc/passwd"),
    (RUNTIME, "weights_file", "/etc/passwd"), (RUNTIME, "weights_file", "../outside.weights"),
    (RUNTIME, "benchmark", "../../victim"), (RUNTIME, "seed", -1),
    (RUNTIME, "random_dropout", 101), (RUNTIME, "finalists", "all"),
    (RUNTIME, "finalists[0].retimes_ms", ["x"]), (RUNTIME, "finalists[0].vs_start", {"pairs": -1}),
    (RUNTIME, "finalists[0].label", None),
    (BEST, "weights", "../x.weights"), (BEST, "compared", 5), (BEST, "beam_ms", []),
    (BEST, "compared", {"x": {"median_ms": "slow"}}),
]


def _field_words(where: str, value) -> str:
    """The field the error must name: a whole nested record replaced names its own
    field inside, which the test does not spell out; the path up to it is enough."""
    return where.split("[")[0] if isinstance(value, (dict, list)) else where


@pytest.fixture
def base(tmp_path):
    run = v1_run(tmp_path / "run")
    add_best(run)
    return run


@pytest.fixture(autouse=True)
def no_devices(monkeypatch):
    monkeypatch.setattr(bench, "DeviceSession", StopSession)
    monkeypatch.setattr(evaluate, "DeviceSession", StopSession)

    class StopCluster(Cluster):
        def __enter__(self):
            raise StopBeforeWork("stopped before Ray: every check passed")

    monkeypatch.setattr(loop, "Cluster", StopCluster)


def _mutate(run: RunDir, record: str, where: str, value) -> None:
    def change(data):
        if where.startswith("pipelines[0]") and record == MANIFEST:
            data["pipelines"] = [{"name": "dilate3x3", "ref": "dilate3x3", "sha256": ""}]
        set_field(data, where, value)

    edit_json(run.path / record, change)


def _run(command: str, run: RunDir, capsys, tmp_path):
    """`farm COMMAND` on `run` in this process (the API: its calls); a CompletedProcess."""
    if command == "api":
        try:
            opened = api.open_run(run.path)
            opened.rounds()
            opened.best()
        except FarmError as e:
            print(f"farm api: error: {e}", file=__import__("sys").stderr)
            code = e.exit_code
        else:
            code = 0
        out, err = capsys.readouterr()
        return type("Proc", (), {"returncode": code, "stdout": out, "stderr": err})()
    args = {"report": ("report", run.path, "--out", tmp_path / "out-report"),
            "export": ("export", run.path, "--out", tmp_path / "out-export"),
            "bench": ("bench", "--run", run.path),
            "evaluate": ("evaluate", run.path, "--out", tmp_path / "out-evaluate"),
            "autotune": ("autotune", "dilate3x3", "--out", run.path, "--batch-size", "8")}
    return farm_here(capsys, *args[command])


@pytest.mark.parametrize(("record", "where", "value"), CASES,
                         ids=[f"{r.split('/')[-1]}:{w}={v!r:.20}" for r, w, v in CASES])
def test_a_malformed_record_is_one_line_naming_its_file_and_field(base, record, where, value,
                                                                   capsys, tmp_path):
    _mutate(base, record, where, value)
    read = {MANIFEST: base.read_manifest, ROUND: lambda: base.read_round(1),
            RUNTIME: base.read_retiming, BEST: base.read_best_weights_record}[record]
    with pytest.raises(RunDirError) as e:
        read()
    text = str(e.value)
    assert len(text.splitlines()) == 1 and str(base.path / record) in text
    assert _field_words(where, value) in text
    for command in READERS[record]:
        proc = _run(command, base, capsys, tmp_path)
        assert_user_error(proc, str(base.path / record), _field_words(where, value))


def test_a_campaign_round_whose_pipeline_figures_are_malformed_is_refused(tmp_path, capsys):
    """report.py read `record.pipelines[NAME]["beam_ms"]` with .get(): a list there was a
    traceback, a string a crash where it is formatted."""
    run = campaign(tmp_path / "run", [
        PipelineRecord("median3x3", "median3x3", catalog.resolve("median3x3").sha256),
        PipelineRecord("sobel", "sobel", catalog.resolve("sobel").sha256)])
    for bad in ([1, 2], {"beam_ms": "fast"}):
        run.round_record_path(1).parent.mkdir(exist_ok=True)
        run.round_record_path(1).write_text(json.dumps({"round": 1, "pipelines": {
            "median3x3": bad}}))
        assert_user_error(farm_here(capsys, "report", run.path, "--pipeline", "median3x3"),
                          "round-000001.json", "pipelines")


def test_an_empty_campaign_is_refused_by_evaluate_in_a_line(tmp_path, capsys):
    run = campaign(tmp_path / "run", [])
    assert_user_error(farm_here(capsys, "evaluate", run.path), "tunes no pipeline")


def test_a_record_nested_thousands_deep_or_huge_is_refused(base, tmp_path):
    base.manifest_path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(RunDirError, match="nested too deep"):
        base.read_manifest()
    with open(base.manifest_path, "wb") as f:
        f.truncate(17 * 2**20)  # sparse: over the 16 MB a record may hold
    with pytest.raises(RunDirError, match="over 16 MB"):
        base.read_manifest()


def test_unknown_keys_are_kept_and_older_files_missing_optional_fields_read(base):
    edit_json(base.manifest_path, lambda m: m.update(
        future={"a": 1}, pipelines=[{"name": "dilate3x3", "ref": "dilate3x3", "sha256": "",
                                     "colour": "blue"}]))
    manifest = base.read_manifest()
    assert manifest.extra == {"future": {"a": 1}}
    assert manifest.pipelines[0].extra == {"colour": "blue"}
    assert manifest.to_json()["pipelines"][0]["colour"] == "blue"
    edit_json(base.retiming_path(), lambda r: r["finalists"][0].update(power_w=2.0))
    assert base.read_retiming().finalists[0].extra == {"power_w": 2.0}
    # the fewest fields a record of an older release has
    base.manifest_path.write_text(json.dumps({
        "run_id": "x", "benchmark": "dilate3x3", "generator": "dilate3x3",
        "benchmark_sha256": "", "target": "host", "schedule_target": "host",
        "batch_size": 8, "parallelism": 32, "start_weights_sha256": "", "created_at": ""}))
    assert base.read_manifest().all_pipelines()[0].name == "dilate3x3"
    base.round_record_path(1).write_text('{"round": 1}')
    assert base.read_round(1).beam_ms is None


# fuzz ---------------------------------------------------------------------------------

def _fuzz_base(tmp_path, marker):
    """A run of dilate3x3 with best/ and a round holding every nested record, whose
    manifest lists a planted generator as a pipeline too (a name that must never run)."""
    run = v1_run(tmp_path / "run")
    add_best(run)
    path, sha = plant(tmp_path / "someone-else", marker)
    edit_json(run.manifest_path, lambda m: m.update(pipelines=[
        {"name": "dilate3x3", "ref": "dilate3x3", "sha256": m["benchmark_sha256"]},
        {"name": "planted", "ref": f"{path}:planted", "sha256": sha}]))
    verdict = {"ratio": 0.9, "low": 0.8, "high": 1.0, "pairs": 6, "verdict": "faster"}
    edit_json(run.round_record_path(1), lambda r: r.update(
        beam_check={"passed": True, "reason": "r", "verdict": verdict,
                    "pipelines": {"dilate3x3": verdict}},
        acceptance={"accepted": "current", "reason": "r", "pairs": 3, "candidates": [
            {"name": "current", "accuracy": 0.5, "gain": 0.0, "gain_low": 0.0,
             "train_loss": 1.0, "train_rate": 0.5, "train_s": 0.1, "trained_on": 8}]},
        pipelines={"dilate3x3": {"beam_ms": 0.3, "best_ms": 0.2, "best_so_far_ms": 0.2,
                                 "ok": 8}}, steps=["batch"], resumed=True))
    return run, path


@pytest.mark.parametrize("every", [False, pytest.param(True, marks=pytest.mark.slow)],
                         ids=["a third of the values per field", "every value"])
def test_fuzz_malformed_records_through_every_reader(tmp_path, capsys, monkeypatch, every):
    """Every field of the manifest, a round, best/runtime.json and weights/best.json set to
    BAD_VALUES (each field a third of them in turn, all of them in the slow run), each
    variant through report, export, bench --run, evaluate, resume and the API: no
    traceback, at most one line on stderr, an exit of 0 (a value that is fine there), 2
    (refused) or 99 (every check passed: stopped before devices or Ray), nothing written
    outside the run directory and the --outs, and the planted generator never run."""
    monkeypatch.setattr(plots, "write_plots", lambda rep, out: [])  # records, not plots
    marker = tmp_path / "marker"
    run, _ = _fuzz_base(tmp_path, marker)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    allowed = [run.path, *(tmp_path / f"out-{c}" for c in ("report", "export", "evaluate"))]
    before = {p for p in files_under(tmp_path) if not any(
        p == a or a in p.parents for a in allowed)}
    originals = {r: (run.path / r).read_text() for r in READERS}
    settings = TuneSettings(benchmarks=(catalog.resolve("dilate3x3"),),
                                  target=targets.resolve(None),
                                  start_weights=weights.baseline(), batch_size=8)
    variants = runs = 0
    outcomes: dict[int, int] = {}
    for record in READERS:
        for i, where in enumerate(fields(json.loads(originals[record]))):
            for value in BAD_VALUES if every else BAD_VALUES[i % 3::3]:
                (run.path / record).write_text(originals[record])
                edit_json(run.path / record, lambda d, w=where, v=value: set_field(d, w, v))
                variants += 1
                for command in READERS[record]:
                    if command == "autotune":  # resume, as the command does it, minus Ray
                        try:
                            loop.autotune(run.path, settings, cluster=StopSession(),
                                          builder=SyntheticBuilder(),
                                          trainer=ScriptedTrainer())
                            code = 0
                        except FarmError as e:
                            code = e.exit_code
                            assert len(str(e).splitlines()) == 1, (record, where, value, e)
                    else:
                        proc = _run(command, run, capsys, tmp_path)
                        code = proc.returncode
                        assert "Traceback" not in proc.stderr, (record, where, value)
                        assert len(proc.stderr.strip().splitlines()) <= 1, (
                            record, where, value, command, proc.stderr)
                    assert code in (0, 2, 99), (record, where, value, command, code)
                    outcomes[code] = outcomes.get(code, 0) + 1
                    runs += 1
        (run.path / record).write_text(originals[record])
    print(f"fuzz: {variants} variants of {len(READERS)} records, {runs} command runs, "
          f"exits {dict(sorted(outcomes.items()))}")
    assert variants > (2000 if every else 600) and outcomes.get(2, 0) > variants // 2
    assert not marker.exists(), "the planted generator ran"
    assert victim.read_text() == "precious"
    after = {p for p in files_under(tmp_path) if not any(
        p == a or a in p.parents for a in allowed)}
    assert after == before, sorted(str(p) for p in after ^ before)
