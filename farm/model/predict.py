"""Per-schedule predictions of the Adams2019 cost model, from Halide's own compiled model.

Halide's trainer prints only aggregates (a loss, an ordering rate against the
fastest schedule), so it cannot say how well weights rank schedules they were
not trained on, nor with what uncertainty. The autoscheduler plugin exports the
cost model it searches with as an ahead-of-time compiled Halide pipeline,
`cost_model` (see `cost_model_generator.cpp` and `DefaultCostModel.cpp` in
Halide's repository); this module calls it through ctypes with the same buffers
`DefaultCostModel::evaluate_costs` passes, so a prediction here is exactly the
cost beam search would see for that complete schedule.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

from farm.errors import MissingPrerequisite
from farm.machine.halide_env import halide_env
from farm.model.featurization import SCHEDULE_FEATURES, STAGE_FLOATS, stages
from farm.model.weights import SHAPES, Weights, buffers

HEAD1_W, HEAD1_H = 40, 7  # pipeline features used per stage (the first 7 are a type mask)


class _Dim(ctypes.Structure):
    _fields_ = [("min", ctypes.c_int32), ("extent", ctypes.c_int32),
                ("stride", ctypes.c_int32), ("flags", ctypes.c_uint32)]


class _Type(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _Buffer(ctypes.Structure):
    """halide_buffer_t (HalideRuntime.h)."""

    _fields_ = [("device", ctypes.c_uint64), ("device_interface", ctypes.c_void_p),
                ("host", ctypes.c_void_p), ("flags", ctypes.c_uint64), ("type", _Type),
                ("dimensions", ctypes.c_int32), ("dim", ctypes.POINTER(_Dim)),
                ("padding", ctypes.c_void_p)]


def _buffer(array: np.ndarray, keep: list) -> ctypes._Pointer[_Buffer]:
    """A halide_buffer_t over a C-contiguous float32 array; Halide's dim 0 is numpy's last."""
    assert array.dtype == np.float32 and array.flags.c_contiguous
    shape = array.shape[::-1]
    # dense strides from the shape, not numpy's: numpy may give a dimension of extent 1 any
    # stride (one schedule: n = 1), and Halide's cost model aborts the process unless dim 0's
    # stride is 1
    strides = [int(np.prod(shape[:i])) for i in range(len(shape))]
    dims = (_Dim * max(1, len(shape)))(*[_Dim(0, e, s, 0) for e, s in zip(shape, strides,
                                                                            strict=True)])
    buf = _Buffer(0, None, array.ctypes.data, 0, _Type(2, 32, 1), len(shape), dims, None)
    keep += [array, dims, buf]
    return ctypes.pointer(buf)


@functools.cache
def _cost_model():
    env = halide_env()
    try:
        ctypes.CDLL(str(env.lib_dir / "libHalide.so"), mode=ctypes.RTLD_GLOBAL)
        lib = ctypes.CDLL(str(env.plugin))
        fn = lib.cost_model
    except (OSError, AttributeError) as e:
        raise MissingPrerequisite(f"cannot load the cost model from {env.plugin} ({e}); "
                                  "reinstall halide: pip install --force-reinstall "
                                  "'halide>=21,<22'") from None
    P = ctypes.POINTER(_Buffer)
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, *[P] * 8, ctypes.c_float,
                   ctypes.c_int, ctypes.c_int, P, P, P]
    fn.restype = ctypes.c_int
    return fn


def _weight_arrays(weights: Weights) -> list[np.ndarray]:
    """The six weight buffers, each as a float32 array in Halide's layout."""
    return [np.frombuffer(weights.data, "<f4", n, offset).reshape(shape[::-1]).copy()
            for (offset, n), shape in zip(buffers(weights), SHAPES, strict=True)]


def predict(weights: Weights, featurizations: list[bytes], num_cores: int) -> np.ndarray:
    """Predicted runtimes (the cost model's units) of complete schedules of ONE pipeline.

    `num_cores` must be the parallelism the schedules were searched with, as the trainer's
    --num_cores: the model's pipeline features depend on it.
    """
    if not featurizations:
        return np.empty(0)
    per = [stages(f) for f in featurizations]
    n_stages = per[0].shape[0]
    if any(p.shape[0] != n_stages for p in per):
        raise ValueError("predict() takes schedules of one pipeline (equal stage counts)")
    first = per[0]
    # pipeline_features(x, y, stage) = stage block[39 + (x + 1) * 7 + y], as the trainer reads it
    pipe = first[:, SCHEDULE_FEATURES + HEAD1_H:STAGE_FLOATS].reshape(n_stages, HEAD1_W, HEAD1_H)
    pipe = np.ascontiguousarray(pipe.transpose(0, 2, 1), dtype=np.float32)  # (stage, y, x)
    sched = np.stack([p[:, :SCHEDULE_FEATURES] for p in per])  # (n, stage, feature)
    sched = np.ascontiguousarray(sched.transpose(1, 2, 0), dtype=np.float32)  # (stage, f, n)
    n = len(per)
    keep: list = []
    out = np.zeros(n, dtype=np.float32)
    loss = np.zeros((), dtype=np.float32)
    truth = np.ones(n, dtype=np.float32)  # unused without training; the call wants a buffer
    bufs = [_buffer(a, keep) for a in _weight_arrays(weights)]
    rc = _cost_model()(n_stages, n, num_cores, _buffer(pipe, keep), _buffer(sched, keep), *bufs,
                       0.0, 0, 0, _buffer(truth, keep), _buffer(out, keep), _buffer(loss, keep))
    if rc != 0:
        raise RuntimeError(f"Halide's cost_model returned {rc}")
    return out.astype(np.float64)
