"""Versions of the farm and what it runs on, for --version and the run manifest."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def versions() -> dict[str, str]:
    def v(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    return {"farm": v("halide-farm"), "halide": v("halide"), "ray": v("ray"),
            "pyarrow": v("pyarrow")}
