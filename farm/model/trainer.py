"""The trainer interface: what turns a run's samples into candidate weights.

The round loop asks it to decide on an update (train candidates on some rows,
judge them on the held-out rest: farm.model.acceptance) and the end of a run asks it
to train final models. Its one implementation runs Halide's own trainer; a
double (farm.testing.ScriptedTrainer) decides as a test tells it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import pyarrow as pa

from farm.model import acceptance, retrain
from farm.model.weights import Weights


class Trainer(ABC):
    """A trainer implements `train`; the acceptance test around it (train a candidate per
    setting, judge them on held-out rows, keep one only beyond the noise) is the farm's,
    the same for every trainer."""

    def decide(self, table: pa.Table, unit: str, held_out, current: Weights, start: Weights,
               files: retrain.SampleFiles, *, num_cores: int, settings, seed: int,
               log_dir: Path | None) -> acceptance.Decision:
        """An update of `current` judged on the rows whose `unit` is `held_out`."""
        return acceptance.decide(table, unit, held_out, current, start, files,
                                 num_cores=num_cores, settings=settings, seed=seed,
                                 log_dir=log_dir, train=self.train)

    @abstractmethod
    def train(self, files: retrain.SampleFiles, table: pa.Table, initial: Weights, *,
              steps: int, rate: float, num_cores: int,
              log_path: Path | None = None) -> retrain.TrainResult:
        """Weights trained from `initial` on `table`'s usable rows."""


class HalideTrainer(Trainer):
    """adams2019_retrain_cost_model from the halide wheel (farm.model.retrain)."""

    def train(self, files, table, initial, *, steps, rate, num_cores, log_path=None):
        return retrain.train(files, table, initial, steps=steps, rate=rate,
                             num_cores=num_cores, log_path=log_path)
