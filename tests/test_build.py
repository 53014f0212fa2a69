"""The compile step: schedules, featurizations, binaries, the Hexagon path."""

import os
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from farm.build import compiler
from farm.candidate import BEAM_SEARCH, RANDOM_PROBE
from farm.devices.host import local_host_device
from farm.devices.timing import TimingConfig
from farm.machine import targets
from farm.model import featurization
from farm.pipelines import catalog

DATA = Path(__file__).parent / "data"


def test_different_seeds_give_different_schedules(spec_for):
    keys = {featurization.schedule_key(compiler.autoschedule(
        spec_for("median3x3", seed=seed, **RANDOM_PROBE)).featurization) for seed in range(6)}
    assert len(keys) >= 5


def test_same_seed_gives_the_same_schedule(spec_for):
    a, b = (compiler.autoschedule(spec_for("gaussian5x5", seed=3, **RANDOM_PROBE))
            for _ in range(2))
    assert a.featurization == b.featurization


def test_pipeline_id_is_stable_and_per_pipeline(spec_for):
    ids = {name: {featurization.pipeline_id(compiler.autoschedule(
        spec_for(name, seed=s, **RANDOM_PROBE)).featurization) for s in (1, 2)}
        for name in ("median3x3", "sobel")}
    assert all(len(v) == 1 for v in ids.values())
    assert ids["median3x3"] != ids["sobel"]
    assert 0 not in ids["median3x3"] | ids["sobel"]


def test_build_gives_a_binary_that_times(spec_for):
    result, binary, library = compiler.build(spec_for("dilate3x3", seed=1, **RANDOM_PROBE))
    assert library.name == "dilate3x3" and "int dilate3x3(" in library.header
    assert result.ok, result.error
    assert result.schedule.source and result.codegen_s > 0 and result.link_s > 0
    m = local_host_device().run(binary, 2, TimingConfig(repeats=3, min_sample_ms=1))
    assert m.ok, m.error + m.log
    assert len(m.runtimes_ms) == 3 and all(t > 0 for t in m.runtimes_ms)


def test_a_failing_candidate_is_a_value_not_an_exception(spec_for, tmp_path):
    broken = tmp_path / "bad.py"
    broken.write_text(
        "import halide as hl\n"
        "@hl.generator(name='bad')\n"
        "class Bad:\n"
        "    input = hl.InputBuffer(hl.UInt(8), 2)\n"
        "    output = hl.OutputBuffer(hl.UInt(8), 2)\n"
        "    def generate(g):\n"
        "        x, y = hl.Var('x'), hl.Var('y')\n"
        "        g.output[x, y] = g.input[x, y]\n")  # no estimates: Adams2019 refuses
    spec = spec_for("median3x3", seed=1, **RANDOM_PROBE)
    result, binary, _ = compiler.build(replace(spec,
                                               benchmark=catalog.resolve(f"{broken}:bad")))
    assert result.status == "compile_error" and binary == b""
    assert "compile (autoschedule)" in result.error and "estimate" in result.error.lower()


def test_hvx_candidates_get_hvx_vectors_and_offload(spec_for):
    """The Hexagon trap: scheduling for arm-64-android-hvx itself gives 16-byte vectors."""
    hvx = targets.resolve("arm-64-android-hvx")
    spec = spec_for("median3x3", target=hvx, **BEAM_SEARCH)
    schedule = compiler.autoschedule(spec)
    assert _vector_widths(schedule.source) == {128}
    trap = replace(spec, target=targets.TargetInfo(hvx.compile, hvx.compile, "android"))
    assert max(_vector_widths(compiler.autoschedule(trap).source)) < 128
    host_features = compiler.autoschedule(spec_for("median3x3", **BEAM_SEARCH)).featurization
    assert featurization.stages(schedule.featurization).shape == \
        featurization.stages(host_features).shape
    assert not np.array_equal(featurization.stages(schedule.featurization),
                              featurization.stages(host_features))


@pytest.mark.slow
def test_hvx_candidate_compiles_for_android(spec_for, tmp_path):
    hvx = targets.resolve("arm-64-android-hvx")
    schedule = compiler.write_library(spec_for("median3x3", target=hvx, seed=5, **RANDOM_PROBE),
                                     tmp_path)
    assert (tmp_path / "median3x3.a").stat().st_size > 0
    assert schedule.featurization


def _vector_widths(schedule_source: str) -> set[int]:
    """The split factors of the vectorized loops in a .schedule.h."""
    pattern = r"\.split\(\w+, \w+, (\w+), (\d+)[^)]*\)\s*\.vectorize\(\1\)"
    return {int(m.group(2)) for m in re.finditer(pattern, schedule_source)}


@pytest.mark.slow  # builds a harness of its own (~20 s)
@pytest.mark.parametrize("fails", [False, True])
def test_the_hexagon_harness_times_in_turbo_with_hvx_on_and_restores_both(spec_for, tmp_path,
                                                                         fails):
    """The harness as built for HVX phones (FARM_HEXAGON), compiled here with the host's
    compiler against the wheel's HalideRuntimeHexagonHost.h and linked to a stand-in that
    logs the runtime's power calls: turbo and HVX on before the first timing; HVX off and
    the default mode after the last, also when the run fails."""
    import shutil
    import subprocess

    from farm.machine.toolchain import Toolchain

    cxx = shutil.which("c++") or shutil.which("g++")
    standin = tmp_path / "standin.o"
    subprocess.run([cxx, "-c", str(DATA / "hexagon_power_standin.cpp"), "-o", str(standin)],
                   check=True)
    spec = spec_for("dilate3x3", seed=1, **RANDOM_PROBE)
    instance, _ = compiler.schedule(spec)
    library = compiler.compile_library(spec, instance, tmp_path, runtime=False)
    tc = Toolchain(spec.target.compile, (cxx,), ("-DFARM_HEXAGON",),
                   ("-ldl", "-lpthread", str(standin)))
    tc.link(tmp_path / f"{library.name}.a", library.name, tmp_path / "bench")
    env = {**os.environ, "HL_NUM_THREADS": "2"}
    if fails:
        env["FARM_STANDIN_HVX_ON_FAILS"] = "1"
    proc = subprocess.run([str(tmp_path / "bench"), "--samples=3", "--min_sample_ms=1",
                           "--warmup_ms=1"], capture_output=True, text=True, env=env,
                          timeout=120)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(("HEXAGON", "FARM_"))]
    calls = [ln for ln in lines if ln.startswith("HEXAGON")]
    assert calls == ["HEXAGON set_performance_mode 2", "HEXAGON power_hvx_on",
                     "HEXAGON power_hvx_off", "HEXAGON set_performance_mode 3"], proc.stdout
    if fails:
        assert proc.returncode == 5 and "turbo with HVX on" in proc.stderr
        assert not any(ln.startswith("FARM_SAMPLE_MS") for ln in lines)
    else:
        assert proc.returncode == 0, proc.stderr
        first = next(i for i, ln in enumerate(lines) if ln.startswith("FARM_SAMPLE_MS"))
        assert lines.index("HEXAGON power_hvx_on") < first
        assert lines.index("FARM_DONE") < lines.index("HEXAGON power_hvx_off")


def test_a_cache_entry_a_killed_maker_left_half_made_is_made_again(tmp_path):
    """build_once: the killed maker's temporary file is removed, the entry made whole."""
    from farm.machine.cache import build_once

    path = tmp_path / "median3x3.generator"
    orphan = tmp_path / f".tmp{2**22 + 7}-{path.name}"  # a maker killed mid-way
    orphan.write_bytes(b"half")

    def make(tmp):
        tmp.write_bytes(b"whole")

    assert build_once(path, make).read_bytes() == b"whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        path.name, path.name + ".lock", path.name + ".sha256"]


def test_a_cache_entry_that_is_no_file_is_made_again_not_read(tmp_path, capsys, baseline,
                                                              monkeypatch):
    """Found by tests/perf/fuzz_stores.py: a FIFO as a cached weights file hung the compile
    that read it, a folder there gave a traceback."""
    from farm.machine import cache
    from farm.model import weights

    monkeypatch.setenv("FARM_CACHE_DIR", str(tmp_path / "cache"))
    path = weights.cached_file(baseline)
    for plant in (os.mkfifo, os.mkdir):
        path.unlink()
        plant(path)
        cache._checked.clear()
        assert weights.cached_file(baseline).read_bytes() == baseline.data
        assert "is not a regular file" in capsys.readouterr().err


def test_a_damaged_cache_entry_is_made_again_and_said(tmp_path, capsys, baseline,
                                                      monkeypatch):
    """Random bytes over a cached weights file were used unchecked (a schedule 12.8x slower
    than manual, rc 0)."""
    from farm.machine import cache
    from farm.model import weights

    monkeypatch.setenv("FARM_CACHE_DIR", str(tmp_path / "cache"))
    path = weights.cached_file(baseline)
    assert path.read_bytes() == baseline.data
    path.write_bytes(os.urandom(len(baseline.data)))
    cache._checked.clear()  # (another process, as a new compile worker is)
    assert weights.cached_file(baseline).read_bytes() == baseline.data
    assert "is not what was made there" in capsys.readouterr().err
    weights.cached_file(baseline)
    assert "is not what was made there" not in capsys.readouterr().err
