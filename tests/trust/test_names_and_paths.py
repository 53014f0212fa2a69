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
from farm.store.records import RetimingRecord
from farm.store.rundir import RunDir, class_dir
from farm.store.samples import SampleStore
from farm.testing import ScriptedTrainer
from farm.workflows.evaluate import train_one
from farm.workflows.evaluation import Evaluation, Group

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


# --- the run directory ----------------------------------------------------------------

def test_every_path_the_run_directory_makes_of_a_name_stays_inside_it(tmp_path):
    run = RunDir(tmp_path / "run")
    for name in ("../../victim", "../x", CLIMBING, SLASHED):
        for path in (run.best_path(name), run.generator_copy(name),
                     run.generator_copy(name, python=False), run.best_schedule(name, name),
                     class_dir(run.path, name) / "x"):
            assert run.path.resolve() in path.resolve().parents, (name, path)
        assert run.best_path(name).parent == run.path / "best"


def test_existing_folders_keep_their_names(tmp_path):
    """A campaign written before path_name keeps best/NAME/ under the name itself."""
    run = RunDir(tmp_path / "run")
    assert run.best_path("box:radius=2") == run.path / "best" / "box:radius=2"
    assert run.best_path("box:label=hello world") == run.path / "best" / "box:label=hello world"
    assert class_dir(run.path, "host-amd-epyc (x86-64-linux-avx2)").name == \
        "host-amd-epyc (x86-64-linux-avx2)"
    legacy = run.path / "best" / "box:label=grüße"
    legacy.mkdir(parents=True)
    assert run.best_path("box:label=grüße") == legacy
    assert run.best_path("box:label=tschüss").parent == run.path / "best"
    assert run.best_path("box:label=tschüss").name != "box:label=tschüss"


def _record(name):
    return RetimingRecord(benchmark=name, runtime_ms=1.0, finalist="sample x")


def test_a_pipeline_with_a_slash_in_its_label_publishes_its_best(tmp_path):
    """A string parameter with a `/` crashed the campaign at its end (best.staging)."""
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    for name in (SLASHED, CLIMBING):
        staged = run.best.staging(name)
        assert staged.parent == run.path
        (staged / "box.schedule.h").write_text("// schedule")
        run.best.publish(staged, _record(name), name)
        assert run.read_retiming(name).benchmark == name
        assert run.best_schedule("box", name).read_text() == "// schedule"
    assert sorted(p.name for p in (run.path / "best").iterdir()) == sorted(
        path_name(n) for n in (SLASHED, CLIMBING))
    assert files_outside(tmp_path, run.path) == set()


# --- farm evaluate --------------------------------------------------------------------

def test_a_leave_one_out_model_is_written_inside_the_evaluation_folder(tmp_path, baseline):
    run = campaign_of(tmp_path, ["dilate3x3", CLIMBING])
    out = run / "evaluate" / "weights"
    manifest = RunDir(run).read_manifest()
    plan = Evaluation(RunDir(run), manifest, tuple(manifest.pipelines), {}, (), baseline, {},
                SampleStore(run / "samples").read(), None)
    group = Group((CLIMBING,))
    model = train_one(plan, group.model, group.members, out, ScriptedTrainer(),
                      progress=lambda text: None)
    assert model.path == out / f"{path_name(group.model)}.weights" and model.path.is_file()
    assert files_outside(tmp_path, run) == set()


# --- the end of a campaign, on the doubles --------------------------------------------

@pytest.fixture
def local_ray():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield
    ray.shutdown()


# a generator with a string parameter, as a user's may have
LABELLED = """
import halide as hl


@hl.generator(name="labelled")
class Labelled:
    label = hl.GeneratorParam("none")

    input = hl.InputBuffer(hl.UInt(8), 2)
    output = hl.OutputBuffer(hl.UInt(8), 2)

    def generate(g):
        x, y = hl.Var("x"), hl.Var("y")
        g.output[x, y] = g.input[x, y] + 1
        g.input.set_estimates([(0, 64), (0, 64)])
        g.output.set_estimates([(0, 64), (0, 64)])
"""


def test_a_campaign_of_a_label_with_a_slash_reaches_its_end(tmp_path, baseline, local_ray):
    """On the doubles of farm.testing: a string parameter with a `/` in it crashed the end
    of the campaign (best.staging); each pipeline's best/ is a folder of best/."""
    from farm.devices.timing import TimingConfig
    from farm.execution.pool import DevicePool
    from farm.machine import targets
    from farm.pipelines import catalog
    from farm.testing import FakeCluster, SyntheticBuilder, open_synthetic, synthetic_infos
    from farm.tuning.loop import autotune
    from farm.tuning.settings import TuneSettings

    source = tmp_path / "labelled.py"
    source.write_text(LABELLED)
    plain = catalog.resolve(f"{source}:labelled")
    slashed = catalog.resolve(f"{source}:labelled:label=a/b")
    infos = synthetic_infos(2, seconds=0.01)
    pool = DevicePool.create(infos, SyntheticBuilder(0.01), compile_slots=4,
                             opener=open_synthetic)
    s = TuneSettings((plain, slashed), targets.resolve(None), baseline, rounds=1,
                     batch_size=4, timing=TimingConfig(), retimes=3)
    run = tmp_path / "run"
    before = files_outside(tmp_path, run)
    try:
        autotune(run, s, cluster=FakeCluster(infos), pool=pool, trainer=ScriptedTrainer())
    finally:
        pool.shutdown()
    assert RunDir(run).read_retiming(slashed.label).benchmark == slashed.label
    assert sorted(p.name for p in (run / "best").iterdir()) == sorted(
        ["labelled", path_name("labelled:label=a/b")])
    assert files_outside(tmp_path, run) == before
