"""Halide farm: autotune Halide's Adams2019 cost model on a farm of devices."""

__version__ = "0.1.0"
