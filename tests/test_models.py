"""The model registry (farm.model.registry): promotions, the current model per device class,
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
from farm.model.registry import ModelRecord, Registry, class_start, now_iso
from farm.pipelines import catalog
from farm.store.rundir import RunDir
from farm.testing import autotune_on_doubles, synthetic_infos
from farm.tuning.loop import TuneSettings
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
