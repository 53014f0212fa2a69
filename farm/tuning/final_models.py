"""The final candidate models of a run, trained at its end on every round, and which trained
model the weights handed over (best.weights) are, in words."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from farm.model import acceptance, retrain, weights
from farm.store.records import BestWeightsRecord
from farm.store.rundir import RunDir
from farm.store.samples import TRAIN_COLUMNS
from farm.tuning.training_data import training_table

if TYPE_CHECKING:
    from farm.tuning.final_inputs import FinalInputs

# Final candidate models, trained on every round: their beam search is judged by re-timing,
# not by held-out ranking, so a more aggressive setting is safe to try here.
FINAL_SETTINGS = (acceptance.Setting("final-chain-fast", "current", 1e-3),
                  acceptance.Setting("final-fresh-long", "start", 1e-3,
                                     4 * retrain.DEFAULT_STEPS),
                  acceptance.Setting("final-fresh-longer", "start", 1e-3,
                                     16 * retrain.DEFAULT_STEPS))


def final_weights(inputs: FinalInputs, trainer) -> list[tuple[str, Path]]:
    """Final candidate models trained on every round, written as weights/NAME.weights."""
    run, s = inputs.run, inputs.settings
    table = retrain.capped(training_table(run, s.also_train_on, TRAIN_COLUMNS),
                           seed=inputs.committed)
    latest = weights.load(run.latest_weights)
    out = []
    for setting in FINAL_SETTINGS:
        initial = latest if setting.start_from == "current" else s.start_weights
        steps = setting.steps * s.train_steps // retrain.DEFAULT_STEPS
        result = trainer.train(run.sample_files, table, initial, steps=steps,
                               rate=setting.rate, num_cores=s.parallelism,
                               log_path=run.final_training_log(setting.name))
        if result.weights is None:
            continue
        path = run.final_weights(setting.name)
        weights.write(result.weights, path)
        out.append((setting.name, path))
    return out


def handed_model(run: RunDir, record: BestWeightsRecord | None) -> str:
    """Which trained model best.weights are, in words: a final model by its name and recipe
    ("final-fresh-long, a final model: ..."), the start weights, or the weights the rounds
    accepted. Without a record (no final re-timing yet): latest.weights, the accepted ones."""
    if record is None:
        return "latest.weights, the weights the rounds accepted (no final re-timing chose)"
    start = run.weights_path(0)
    if record.weights == start.name or (
            record.weights_sha256 and start.exists()
            and weights.load(start).sha256 == record.weights_sha256):
        return "the start weights"
    name = Path(record.weights).stem if record.weights else ""
    setting = next((x for x in FINAL_SETTINGS if x.name == name), None)
    if setting is not None:
        origin = "the weights the rounds accepted" if setting.start_from == "current" \
            else "the start weights"
        times = setting.steps // retrain.DEFAULT_STEPS
        steps = "as many steps as" if times <= 1 else f"{times}x the steps of"
        return (f"{name}, a final model trained on every round's samples from {origin} "
                f"({steps} a round's training)")
    if name == "latest":
        return "latest.weights, the weights the rounds accepted"
    if name.startswith("round-"):
        return f"the weights accepted after round {int(name[6:])}"
    return record.weights or "(weights of an unnamed file)"
