"""Where the halide wheel keeps what the farm needs, and the host's target.

The wheel splits its files over lib64/, bin/, include/ and share/tools/;
everything else in the farm asks this module for a path instead of guessing.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from farm.errors import MissingPrerequisite

# Features the host target drops by default, as Halide's own autotune loop does:
# the cost model was not trained for them.
HOST_FEATURES_DROPPED = ("avx512", "avx512_knl", "avx512_skylake", "avx512_cannonlake",
                         "avx512_sapphirerapids", "avx512_zen4", "avx512_zen5", "avx10_1")


@dataclass(frozen=True)
class HalideEnv:
    root: Path
    version: str

    @property
    def lib_dir(self) -> Path:
        return self.root / "lib64"

    @property
    def plugin(self) -> Path:
        return self.lib_dir / "libautoschedule_adams2019.so"

    @property
    def include_dir(self) -> Path:
        return self.root / "include"

    @property
    def tools_dir(self) -> Path:
        """share/tools: RunGen.h, RunGenMain.cpp, the autotune loop script."""
        return self.root / "share" / "tools"

    def tool(self, name: str) -> Path:
        """A program from the wheel's bin/, e.g. adams2019_retrain_cost_model."""
        path = self.root / "bin" / name
        if not path.exists():
            raise MissingPrerequisite(
                f"{path} is missing from the halide wheel; reinstall it: "
                "pip install --force-reinstall 'halide>=21,<22'")
        if not os.access(path, os.X_OK):
            raise MissingPrerequisite(f"{path} is not executable; chmod +x it or reinstall halide")
        return path


@functools.cache
def halide_env() -> HalideEnv:
    try:
        import halide
    except ImportError as e:  # pragma: no cover - halide is a dependency
        raise MissingPrerequisite(f"cannot import halide ({e}); pip install 'halide>=21,<22'") \
            from e
    from importlib.metadata import version

    env = HalideEnv(root=Path(halide.__file__).parent, version=version("halide"))
    for needed in (env.plugin, env.include_dir / "Halide.h", env.tools_dir / "RunGen.h"):
        if not needed.exists():
            raise MissingPrerequisite(
                f"{needed} is missing from the halide wheel at {env.root}; reinstall it: "
                "pip install --force-reinstall 'halide>=21,<22'")
    return env


_plugin_loaded = False


def load_autoscheduler() -> None:
    """Load the Adams2019 plugin into this process (once)."""
    global _plugin_loaded
    if not _plugin_loaded:
        import halide as hl

        hl.load_plugin(str(halide_env().plugin))
        _plugin_loaded = True


def host_target() -> str:
    """This machine's Halide target without the features the cost model ignores."""
    import halide as hl

    target = hl.get_host_target()
    for name in HOST_FEATURES_DROPPED:
        feature = _feature(name)
        if feature is not None and target.has_feature(feature):
            target = target.without_feature(feature)
    return str(target)


def _feature(name: str):
    import halide as hl

    for attr in dir(hl.TargetFeature):
        if attr.lower() == name:
            return getattr(hl.TargetFeature, attr)
    return None
