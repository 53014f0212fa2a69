"""`farm models train --class C`: a class model from the class's real work, judged
leave-family-out, registered with its evidence; `farm models promote` refusing a model
whose evidence shows it slower on an unseen pipeline.

Fast tests check what needs no device (the sources, the training tables, seeds and the
soup, the choice, the registry); one test runs the command with the real Halide trainer,
compiler and an embedded local Ray."""

import json

import pyarrow.parquet as pq
import pytest
from clitools import farm
from test_evaluate import RecordingTrainer, _campaign, _feats

from farm.errors import BadInput
from farm.model import weights
from farm.stats import verdict
from farm.store.registry import ModelRecord, Registry, now_iso
from farm.workflows import class_model, models

HOST = "host-test"


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("FARM_MODELS_DIR", str(tmp_path / "models"))
    return Registry(tmp_path / "models")


def _run(tmp_path, name, benches, device_class=f"{HOST} (x86-64-linux)"):
    return _campaign(tmp_path / name, {b: _feats(b, 10) for b in benches},
                     device_class=device_class)


def test_a_class_without_real_work_is_refused(registry):
    with pytest.raises(BadInput, match="no run of real work"):
        class_model.gather(HOST, registry=registry)


def test_another_classs_run_is_refused(tmp_path, registry):
    run = _run(tmp_path, "other", ("median3x3", "conv3x3a16"), device_class="phone (arm)")
    with pytest.raises(BadInput, match="device class phone"):
        class_model.gather(HOST, [run.path], registry=registry)


def test_registered_runs_and_named_ones_are_pooled_and_pretrainings_left_out(tmp_path,
                                                                               registry):
    named = _run(tmp_path, "named", ("median3x3",))
    kept = _run(tmp_path, "kept", ("conv3x3a16", "conv3x3a32"))
    registry.promote(weights.perturbed(weights.baseline(), 1, 0.01), ModelRecord(
        device_class=HOST, sha256=weights.perturbed(weights.baseline(), 1, 0.01).sha256,
        source=str(kept.path), promoted_at=now_iso(), kind="campaign"))
    work = class_model.gather(HOST, [named.path], seeds=2, registry=registry)
    assert set(work.sources) == {named.path.resolve(), kept.path.resolve()}
    assert work.pipelines == ("conv3x3a16", "conv3x3a32", "median3x3")
    assert work.table.num_rows == 30  # usable rows only: the failed ones are not
    assert [g.members for g in work.groups] == [("conv3x3a16", "conv3x3a32"), ("median3x3",)]
    assert work.candidates == ["seed-0", "seed-1", "soup"]


def test_each_held_out_model_never_sees_its_group_and_seeds_draw_rows(tmp_path, registry):
    run = _run(tmp_path, "run", ("median3x3", "conv3x3a16", "conv3x3a32"))
    work = class_model.gather(HOST, [run.path], seeds=3, registry=registry)
    trainer = RecordingTrainer()
    out = tmp_path / "out"
    made = class_model.train_candidates(work, out, [*work.groups, None], trainer,
                                        progress=lambda line: None)
    by_table = {}
    for benches, rows, steps, rate in trainer.tables:
        by_table.setdefault(tuple(benches), []).append(rows)
        assert (steps, rate) == (work.steps, work.rate)
    # without the twins: median3x3 only; without median3x3: the twins; and every row
    assert by_table[("median3x3",)] == [10, 8, 8]  # seed 0 every row, seeds 1, 2: 80%
    assert by_table[("conv3x3a16", "conv3x3a32")] == [20, 16, 16]
    assert by_table[("conv3x3a16", "conv3x3a32", "median3x3")] == [30, 24, 24]
    soup = made.weights[("soup", "median3x3")]
    seeds = [made.weights[(f"seed-{s}", "median3x3")] for s in range(3)]
    assert soup.sha256 == weights.averaged(seeds, "").sha256  # the mean of the seeds'
    assert weights.load(out / "weights" / "soup-without-median3x3.weights").sha256 == \
        soup.sha256
    # seeds draw different rows, the same ones each time
    from farm.model import retrain

    drawn = {s: retrain.bagged(work.table, s)["sample_id"].to_pylist() for s in (1, 2)}
    assert drawn[1] != drawn[2]
    assert retrain.bagged(work.table, 1)["sample_id"].to_pylist() == drawn[1]
    # trained again into the same folder: read back, nothing trained
    again = RecordingTrainer()
    same = class_model.train_candidates(work, out, [*work.groups, None], again,
                                        progress=lambda line: None)
    assert again.tables == []
    assert {k: w.sha256 for k, w in same.weights.items()} == \
        {k: w.sha256 for k, w in made.weights.items()}
    # another recipe (or other rows) into the same folder: trained again, not read back
    from dataclasses import replace

    other = RecordingTrainer()
    class_model.train_candidates(replace(work, steps=work.steps + 1), out, [None], other,
                                 progress=lambda line: None)
    assert len(other.tables) == 3


def _row(bench, variant, ratio, word):
    return {"benchmark": bench, "variant": variant, "vs_baseline": ratio, "verdict": word}


def test_the_winner_is_slower_on_fewest_then_fastest():
    rows = [_row("a", "seed-0", 0.7, verdict.FASTER), _row("b", "seed-0", 1.3, verdict.SLOWER),
            _row("a", "seed-1", 0.9, verdict.SAME), _row("b", "seed-1", 0.95, verdict.SAME),
            _row("a", "soup", 0.8, verdict.FASTER), _row("b", "soup", 1.0, verdict.SAME)]
    found = [class_model.evidence(rows, c) for c in ("seed-0", "seed-1", "soup")]
    assert found[0].slower == ("b",) and found[0].worst == ("b", 1.3)
    best = class_model.winner(found)
    assert best.candidate == "soup" and best.faster == ("a",)
    assert "geometric mean 0.89x the baseline's time (1.12x faster) over 2" in best.line()


def _trained_out(tmp_path, slower):
    out = tmp_path / "trained"
    (out / "weights").mkdir(parents=True)
    w = weights.perturbed(weights.baseline(), 5, 0.01)
    weights.write(w, out / "weights" / "best.weights")
    record = ModelRecord(device_class=HOST, sha256=w.sha256, source=str(out),
                         promoted_at=now_iso(), kind=class_model.KIND,
                         pipelines=["median3x3"], extra={"evidence": {
                             "candidate": "soup", "geometric_mean": 1.1, "slower": slower,
                             "faster": [], "worst": ["sobel", 1.4], "validated_on": 2}})
    (out / "evidence.json").write_text(json.dumps({"record": record.to_json()}))
    return out, w


def test_promote_refuses_a_trained_model_slower_on_an_unseen_pipeline_unless_forced(
        tmp_path, registry):
    out, w = _trained_out(tmp_path, ["sobel"])
    with pytest.raises(BadInput, match="significantly slower than the baseline on sobel"):
        models.promote(out, registry=registry)
    assert registry.current(HOST) is None
    model = models.promote(out, registry=registry, force=True)
    assert model.current and registry.current(HOST).record.sha256 == w.sha256
    clean, w2 = _trained_out(tmp_path / "clean", [])
    assert models.promote(clean, registry=registry).record.sha256 == w2.sha256


def test_promote_refuses_a_run_whose_evaluation_shows_its_weights_slower(tmp_path, registry):
    from test_evaluate import _handed

    from farm.report import comparison
    from farm.workflows import evaluate

    run = _run(tmp_path, "run", ("median3x3", "conv3x3a16"))
    handed = _handed(run)

    (run.path / "evaluate").mkdir()
    rows = [{"benchmark": "sobel", "variant": "handed-over", "weights_sha256": handed.sha256,
             "verdict": verdict.SLOWER, "vs_baseline": 1.4}]
    comparison.write_rows(rows, evaluate.SCHEMA, run.path / "evaluate" / "evaluate.parquet")
    with pytest.raises(BadInput, match="slower than the baseline on sobel"):
        models.promote(run.path, registry=registry)
    assert models.promote(run.path, registry=registry, force=True).current


def test_models_train_end_to_end(tmp_path):
    """Two groups of built-ins with real featurizations and synthetic runtimes; the real
    trainer, compiles and timings (2 re-timings: too few for verdicts, enough for the
    plumbing), then `farm models` shows the evidence."""
    from samples import probes

    from farm.devices.registry import discover_local

    host_class = str(discover_local()[0][0].device_class)
    run = _campaign(tmp_path / "run", {b: list(probes(b, 10)) for b in
                                       ("median3x3", "conv3x3a16")}, device_class=host_class)
    env = {"FARM_MODELS_DIR": str(tmp_path / "models")}
    name = host_class.split(" (")[0]
    out = tmp_path / "class"
    proc = farm("models", "train", "--class", name, "--from", run.path, "--seeds", "2",
                "--retimes", "2", "--out", out, timeout=900, check=0, env=env)
    text = proc.stdout
    assert "training seed-0 without median3x3: 10 rows" in text
    assert "training seed-1 on every row: 16 rows" in text
    assert "median3x3: building beam-32 with baseline, seed-0, seed-1, soup" in text
    assert "it is the class's current model" in text, text
    rows = pq.read_table(out / "validation.parquet").to_pylist()
    assert {(r["benchmark"], r["variant"]) for r in rows} == {
        (b, v) for b in ("median3x3", "conv3x3a16")
        for v in ("baseline", "seed-0", "seed-1", "soup")}
    assert all(r["median_ms"] and len(r["retimes_ms"]) == 2 for r in rows
               if r["variant"] == "baseline")
    record = json.loads((out / "evidence.json").read_text())
    assert record["chosen"]["validated_on"] == 0  # two re-timings: no ratio
    assert weights.load(out / "weights" / "best.weights").sha256 == \
        record["record"]["sha256"]
    listing = farm("models", env=env, check=0).stdout
    assert "class-model" in listing and "slower on 0 of 0; trained on 2" in listing
    again = farm("models", "train", "--class", name, "--from", run.path, "--seeds", "2",
                 "--retimes", "2", "--out", out, timeout=900, check=0, env=env).stdout
    assert again.count("judged by an earlier run") == 2 and "training" not in again
