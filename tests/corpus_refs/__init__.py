"""NumPy references for the corpus (benchmarks/corpus/): one module per family, each with
`CASES`, a dict from generator name to a Case. Arrays are indexed in numpy order, the
reverse of Halide's: a Halide buffer (x, y, c) is a numpy array [c, y, x]."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Case:
    # rng -> {input name: numpy array}; small inputs (a test realizes each pipeline a few
    # times, autoscheduled, on the host)
    inputs: Callable[[np.random.Generator], dict[str, np.ndarray]]
    # the inputs as keywords -> the expected output; its shape and dtype are the
    # output's (the test realizes the pipeline over reversed(shape))
    reference: Callable[..., np.ndarray]
    # generator parameters to set (name -> value as text), for a variant of a generator
    params: dict[str, str] = field(default_factory=dict)
    # largest absolute difference allowed (0: bit-exact, as integer pipelines are)
    atol: float = 0
