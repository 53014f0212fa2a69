"""The model registry (farm.store.registry): promotions, the current model per device class,
and the start weights the commands take from it."""

from __future__ import annotations

import json
import threading

import pytest
import ray
from clitools import assert_user_error, farm

from farm.devices.host import host_info
from farm.devices.timing import TimingConfig
from farm.errors import BadInput, WeightsError
from farm.machine import targets
from farm.model import weights
from farm.pipelines import catalog
from farm.store.registry import ModelRecord, Registry, class_start, now_iso
from farm.store.rundir import RunDir
from farm.testing import autotune_on_doubles, synthetic_infos
from farm.tuning.settings import TuneSettings
from farm.workflows.models import promote

INFOS = synthetic_infos(2, seconds=0.01)
CLASS = INFOS[0].device_class.name


@pytest.fixture
def registry(tmp_path, monkeypatch):
    monkeypatch.setenv("FARM_MODELS_DIR", str(tmp_path / "models"))
    return Registry()


def _record(w, device_class=CLASS, source="somewhere"):
    return ModelRecord(device_class=device_class, sha256=w.sha256, source=source,
                       promoted_at=now_iso(), kind="run", rounds=2, samples=10)


def test_a_promotion_becomes_the_current_model_and_the_older_ones_stay(registry, baseline):
    w1, w2 = (weights.perturbed(baseline, seed, 0.1) for seed in (1, 2))
    registry.promote(w1, _record(w1))
    assert registry.current(CLASS).load().data == w1.data
    registry.promote(w2, _record(w2))
    models = registry.models(CLASS)
    assert [m.record.sha256 for m in models] == [w1.sha256, w2.sha256]
    assert [m.current for m in models] == [False, True]
    assert registry.classes() == [CLASS] and registry.current("other") is None
    log = (registry.root / CLASS / "promotions.log").read_text().splitlines()
    assert [json.loads(line)["sha256"] for line in log] == [w1.sha256, w2.sha256]


def test_concurrent_promotions_each_land_whole(registry, baseline):
    many = [weights.perturbed(baseline, seed, 0.1) for seed in range(8)]
    threads = [threading.Thread(target=registry.promote, args=(w, _record(w))) for w in many]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    models = registry.models(CLASS)
    assert len(models) == 8 and sum(m.current for m in models) == 1
    for m in models:  # every model's weights are the ones it records
        assert m.load().sha256 == m.record.sha256
    assert not [p for p in registry.root.rglob("*") if ".tmp" in p.name]


def test_a_model_whose_file_was_changed_is_refused(registry, baseline):
    w = weights.perturbed(baseline, 1, 0.1)
    model = registry.promote(w, _record(w))
    weights.write(weights.perturbed(baseline, 2, 0.1), model.weights_path)
    with pytest.raises(Exception, match="not the weights it promoted"):
        class_start(CLASS)


def test_weights_baseline_means_halides_unless_a_file_is_named_so(tmp_path, monkeypatch,
                                                                   baseline):
    monkeypatch.chdir(tmp_path)
    assert weights.resolve("baseline") == baseline
    (tmp_path / "baseline").write_bytes(baseline.data)
    with pytest.raises(WeightsError, match=r"ambiguous.*\./baseline"):
        weights.resolve("baseline")
    assert weights.resolve("./baseline").data == baseline.data


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


def _as_if_tuned(run, baseline):
    """The doubles' runs hand over their start weights, which promote refuses: a hand-over
    of tuned weights in their stead, as best.json records one."""
    rd = RunDir(run)
    tuned = weights.perturbed(baseline, 3, 0.1)
    weights.write(tuned, rd.best_weights)
    record = json.loads(rd.best_weights_record.read_text())
    record["weights_sha256"] = tuned.sha256
    rd.best_weights_record.write_text(json.dumps(record))


def _tune(run, baseline, rounds=1, **settings):
    return autotune_on_doubles(run, TuneSettings(
        (catalog.resolve("median3x3"),), targets.resolve(None), baseline, rounds=rounds,
        batch_size=6, timing=TimingConfig(), retimes=3, **settings), infos=INFOS)


def test_a_new_run_starts_from_its_classs_model_and_a_resumed_one_keeps_its_own(
        local_ray, registry, baseline, tmp_path, capsys):
    w1, w2 = (weights.perturbed(baseline, seed, 0.1) for seed in (1, 2))
    registry.promote(w1, _record(w1))
    run = tmp_path / "run"
    _tune(run, baseline, from_registry=True)
    assert RunDir(run).read_manifest().start_weights_sha256 == w1.sha256
    assert weights.load(RunDir(run).weights_path(0)).data == w1.data
    assert f"start weights: the current model of class {CLASS}" in capsys.readouterr().out
    registry.promote(w2, _record(w2))  # promoted since: the resumed run keeps w1
    _tune(run, baseline, rounds=2, from_registry=True)
    assert RunDir(run).read_manifest().start_weights_sha256 == w1.sha256
    assert "start weights: those the run began with" in capsys.readouterr().out
    # --weights given: the registry is not asked
    other = tmp_path / "other"
    _tune(other, baseline)
    assert RunDir(other).read_manifest().start_weights_sha256 == baseline.sha256

    # the run's handed-over weights promoted: they become the current model, with its story
    _as_if_tuned(run, baseline)
    model = promote(run, registry=registry)
    handed = weights.load(RunDir(run).best_weights)
    assert registry.current(CLASS).record.sha256 == handed.sha256 == model.record.sha256
    assert model.record.rounds == 2 and model.record.samples > 0
    assert model.record.source == str(run.resolve()) and model.record.verdicts
    with pytest.raises(BadInput, match=r"trained on device class .* not host-other"):
        promote(run, "host-other", registry)
    with pytest.raises(BadInput, match="not handed weights over"):
        RunDir(run).best_weights.unlink()
        promote(run, registry=registry)


def test_farm_models_lists_and_refuses_with_one_line(tmp_path, baseline):
    env = {"FARM_MODELS_DIR": str(tmp_path / "models")}
    assert "no model promoted yet" in farm("models", env=env).stdout
    w = weights.perturbed(baseline, 1, 0.1)
    Registry(tmp_path / "models").promote(w, _record(w, source="/runs/a"))
    listed = farm("models", env=env).stdout
    assert CLASS in listed and w.sha256[:16] in listed and "/runs/a" in listed
    assert_user_error(farm("models", "promote", tmp_path / "nothing", env=env),
                      "is not a run directory")


def test_farm_models_prints_a_records_control_characters_escaped(tmp_path, baseline):
    """A record comes from a run directory anyone may have written: its text must not
    retitle, clear or recolour the terminal of whoever lists the models."""
    env = {"FARM_MODELS_DIR": str(tmp_path / "models")}
    w = weights.perturbed(baseline, 1, 0.1)
    record = _record(w)
    record.verdicts = ["\x1b]0;PWNED\x07 1.2x faster"]  # (a run's best.json gives them)
    Registry(tmp_path / "models").promote(w, record)
    listed = farm("models", env=env).stdout
    assert "PWNED" in listed and "\x1b" not in listed and "\\x1b]0;PWNED\\x07" in listed


def test_farm_run_starts_from_the_hosts_current_model(tmp_path, baseline):
    """Real Halide and Ray: after a promotion for this host's class, `farm run` without
    --weights autoschedules with that model, and says so first."""
    w = weights.perturbed(baseline, 3, 0.05)
    host_class = host_info().device_class.name
    Registry(tmp_path / "models").promote(w, _record(w, host_class, "/runs/host"))
    env = {"FARM_MODELS_DIR": str(tmp_path / "models")}
    out = farm("run", "median3x3", "--no-manual", "--out", tmp_path / "o", env=env).stdout
    first, second = out.splitlines()[:2]
    assert f"({w.sha256[:8]})" in first
    assert f"start weights: the current model of class {host_class}" in second
    forced = farm("run", "median3x3", "--no-manual", "--weights", "baseline", "--out",
                  tmp_path / "o", env=env).stdout
    assert f"({baseline.sha256[:8]})" in forced.splitlines()[0]


def test_a_promotion_whose_log_cannot_be_written_is_not_made(registry, baseline, tmp_path):
    """promotions.log as a link: refused, and current.json had already switched."""
    w1, w2 = (weights.perturbed(baseline, seed, 0.1) for seed in (1, 2))
    registry.promote(w1, _record(w1))
    log = registry.root / CLASS / "promotions.log"
    log.rename(tmp_path / "elsewhere.log")
    log.symlink_to(tmp_path / "elsewhere.log")
    with pytest.raises(Exception, match="cannot be written"):
        registry.promote(w2, _record(w2))
    assert registry.current(CLASS).record.sha256 == w1.sha256
    assert [m.record.sha256 for m in registry.models(CLASS)] == [w1.sha256]


def test_a_class_folder_that_is_a_link_is_refused_before_anything_is_made(registry,
                                                                          baseline, tmp_path):
    target = tmp_path / "target"
    target.mkdir()
    registry.root.mkdir(parents=True)
    (registry.root / CLASS).symlink_to(target)
    w = weights.perturbed(baseline, 1, 0.1)
    with pytest.raises(BadInput, match="symbolic link"):
        registry.promote(w, _record(w))
    assert not list(target.iterdir())


def test_blank_weights_are_not_weights(tmp_path, baseline):
    blank = bytearray(baseline.data)
    for offset, count in weights.buffers(baseline):
        blank[offset:offset + 4 * count] = bytes(4 * count)
    (tmp_path / "zero.weights").write_bytes(bytes(blank))
    with pytest.raises(WeightsError, match="every weight is zero"):
        weights.load(tmp_path / "zero.weights")


def test_promote_checks_what_it_publishes(local_ray, registry, baseline, tmp_path):
    run = tmp_path / "run"
    _tune(run, baseline, rounds=2)
    rd = RunDir(run)
    if weights.load(rd.best_weights).sha256 == baseline.sha256:  # its start weights
        with pytest.raises(BadInput, match="handed over its start weights"):
            promote(run, registry=registry)
    _as_if_tuned(run, baseline)
    model = promote(run, registry=registry)
    assert all(v.startswith(("the run's claim: ", "farm evaluate: "))
               for v in model.record.verdicts)
    # best.weights that is not the file best.json records
    weights.write(weights.perturbed(baseline, 4, 0.1), rd.best_weights)
    with pytest.raises(BadInput, match=r"is not the file best\.json records"):
        promote(run, registry=registry)


def test_a_promotion_without_evidence_is_judged_first_on_unseen_corpus_pipelines(
        local_ray, registry, baseline, tmp_path):
    """`farm models promote` judges a run's handed-over weights on pipelines of the class
    it never trained on before they become the class's model, unless the run has such
    evidence already (its `farm evaluate --on` rows of those weights)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from farm.workflows.models import CONFIRM_ON, to_confirm

    run = tmp_path / "run"
    autotune_on_doubles(run, TuneSettings(
        (catalog.resolve("box_blur"), catalog.resolve("median3x3")), targets.resolve(None),
        baseline, batch_size=6, timing=TimingConfig(), retimes=3), infos=INFOS)
    assert to_confirm(run) is None  # it handed over its start weights: promote refuses
    _as_if_tuned(run, baseline)
    where, names = to_confirm(run)
    assert where == RunDir(run).path and len(names) == CONFIRM_ON
    families = [catalog.family_of(n) for n in names]
    assert "box_blur" not in names and len(set(families)) == CONFIRM_ON
    assert "filters" not in families  # families it tuned come last
    assert to_confirm(run, on=["sobel"]) == (RunDir(run).path, ["sobel"])
    handed = weights.load(RunDir(run).best_weights)
    (run / "evaluate").mkdir()
    pq.write_table(pa.table({"weights_sha256": [handed.sha256], "verdict": ["faster"]}),
                   run / "evaluate" / "evaluate.parquet")
    assert to_confirm(run) is None  # its evidence stands
