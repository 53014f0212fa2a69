"""Model updates that are accepted, not assumed.

After a round, a few candidate weights are trained on every held-out unit but
one (by default the unit is the round, and the one left out is the newest), and
each is judged on that held-out unit beside the current weights: how many pairs
of its schedules (clearly apart in runtime) does the model put in the right
order? Halide's trainer cannot say; the predictions come from the plugin's own
compiled model (farm.model.predict).

One round is a few dozen noisy samples, and picking the best of several
candidates by a hair picks noise. So a candidate replaces the current weights
only when a paired bootstrap over the held-out schedules puts its gain above
zero at a level corrected for the number of candidates (Bonferroni). Otherwise
the current weights stay. A campaign pools many pipelines and will hold out a
pipeline instead of a round: `unit` is a column name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from farm.model import retrain
from farm.model.predict import predict
from farm.model.weights import Weights

CLEAR_RATIO = 1.2  # two schedules count as a pair when one is this much slower
MIN_PAIRS = 20  # fewer clear pairs held out than this: no decision, keep the weights
ALPHA = 0.05
BOOTSTRAP = 2000


@dataclass(frozen=True)
class Setting:
    """How one candidate is trained."""

    name: str
    start_from: str  # "current" (chained from the accepted weights) or "start"
    rate: float
    steps: int = retrain.DEFAULT_STEPS


SETTINGS = (Setting("chain", "current", 1e-4), Setting("chain-fast", "current", 1e-3),
            Setting("fresh-fast", "start", 1e-3))


@dataclass(frozen=True)
class Judged:
    """A candidate's (or the current weights') figures on the held-out unit."""

    name: str
    weights_sha256: str | None
    accuracy: float | None = None  # held-out pairwise ranking accuracy
    gain: float | None = None  # accuracy minus the current weights'
    gain_low: float | None = None  # its corrected lower confidence bound
    train_loss: float | None = None
    train_rate: float | None = None  # the trainer's ordering rate on its training data
    train_s: float = 0.0
    trained_on: int = 0  # samples
    note: str = ""


class TrainedFigures(TypedDict, total=False):
    """Judged's figures from a candidate's training, passed as **figures."""

    train_loss: float | None
    train_rate: float | None
    train_s: float
    trained_on: int


@dataclass(frozen=True)
class Decision:
    accepted: str  # "current" or the winning setting's name
    weights: Weights
    reason: str
    unit: str
    held_out: str
    pairs: int
    candidates: tuple[Judged, ...] = field(default=())

    def record(self) -> dict:
        return {"accepted": self.accepted, "weights_sha256": self.weights.sha256,
                "reason": self.reason, "unit": self.unit, "held_out": self.held_out,
                "pairs": self.pairs, "candidates": [asdict(c) for c in self.candidates]}


@dataclass
class Evidence:
    """Held-out schedules (one per distinct schedule, its fastest runtime) and their pairs."""

    featurizations: list[bytes]
    runtimes: np.ndarray
    pipelines: np.ndarray
    pairs: np.ndarray  # (n, n) 1 where i is clearly faster than j, same pipeline

    @classmethod
    def of(cls, table: pa.Table) -> Evidence:
        rows = retrain.usable(table).to_pylist()
        best: dict[str, dict] = {}
        for r in rows:
            if r["schedule_key"] not in best or r["runtime_ms"] < best[r["schedule_key"]][
                    "runtime_ms"]:
                best[r["schedule_key"]] = r
        chosen = list(best.values())
        runtimes = np.array([r["runtime_ms"] for r in chosen], dtype=float)
        pipes = np.array([r["pipeline_id"] for r in chosen])
        same = pipes[:, None] == pipes[None, :]
        clear = runtimes[None, :] >= CLEAR_RATIO * runtimes[:, None]
        return cls([r["featurization"] for r in chosen], runtimes, pipes,
                   (same & clear).astype(float))

    @property
    def n_pairs(self) -> int:
        return int(self.pairs.sum())

    def concordant(self, weights: Weights, num_cores: int) -> np.ndarray:
        """(n, n) 1 where the model predicts the clearly faster one of a pair faster."""
        pred = np.empty(len(self.runtimes))
        for pipe in np.unique(self.pipelines):
            idx = np.flatnonzero(self.pipelines == pipe)
            pred[idx] = predict(weights, [self.featurizations[i] for i in idx], num_cores)
        return self.pairs * (pred[:, None] < pred[None, :])

    def accuracy(self, concordant: np.ndarray, counts: np.ndarray | None = None):
        """Share of pairs in the right order; with `counts` (resamples x n), per resample."""
        if counts is None:
            return float(concordant.sum() / self.pairs.sum())
        num = np.einsum("bi,ij,bj->b", counts, concordant, counts)
        den = np.einsum("bi,ij,bj->b", counts, self.pairs, counts)
        return num / np.maximum(den, 1e-12)


def judge(evidence: Evidence, current: Weights, candidates: list[tuple[str, Weights | None,
          retrain.TrainResult | None]], num_cores: int, seed: int = 0) -> list[Judged]:
    """The current weights and each candidate on `evidence`, with bootstrap bounds on gains."""
    base = evidence.concordant(current, num_cores)
    n = len(evidence.runtimes)
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=BOOTSTRAP)
    base_acc = evidence.accuracy(base)
    base_boot = evidence.accuracy(base, counts)
    level = ALPHA / max(1, sum(w is not None for _, w, _ in candidates))
    out = [Judged("current", current.sha256, base_acc)]
    for name, weights, trained in candidates:
        figures: TrainedFigures = {} if trained is None else {
            "train_loss": trained.loss, "train_rate": trained.train_rate,
            "train_s": round(trained.seconds, 3), "trained_on": trained.samples}
        if weights is None:
            note = trained.skipped if trained and trained.skipped else "the current weights"
            out.append(Judged(name, None, note=note, **figures))
            continue
        cand = evidence.concordant(weights, num_cores)
        gains = evidence.accuracy(cand, counts) - base_boot
        acc = evidence.accuracy(cand)
        out.append(Judged(name, weights.sha256, acc, acc - base_acc,
                          float(np.quantile(gains, level)), **figures))
    return out


def decide(table: pa.Table, unit: str, held_out, current: Weights, start: Weights,
           files: retrain.SampleFiles, num_cores: int, settings=SETTINGS, seed: int = 0,
           log_dir: Path | None = None, extra: tuple[tuple[str, Weights], ...] = (),
           train: Callable[..., retrain.TrainResult] | None = None) -> Decision:
    """Train a candidate per setting on the rows whose `unit` is not `held_out`, judge them
    on those whose `unit` is, and accept the best only if it beats the current weights
    beyond the noise. `train` trains one candidate (a Trainer's train: Halide's by
    default); `extra` adds ready-made candidates (e.g. for tests)."""
    train = train or retrain.train  # (looked up now: a test may stand in for it)
    column = table[unit]
    held = table.filter(pc.equal(column, held_out))
    rows = retrain.capped(table.filter(pc.not_equal(column, held_out)), seed=seed)
    evidence = Evidence.of(held)
    label = f"{unit} {held_out}"
    if evidence.n_pairs < MIN_PAIRS:
        return Decision("current", current, f"only {evidence.n_pairs} clear pairs in {label} "
                        f"(need {MIN_PAIRS}): kept the current weights", unit, label,
                        evidence.n_pairs)
    candidates: list[tuple[str, Weights | None, retrain.TrainResult | None]] = []
    seen = {current.sha256}
    tried: set[tuple] = set()
    for s in settings:
        initial = current if s.start_from == "current" else start
        if (initial.sha256, s.rate, s.steps) in tried:
            continue  # with nothing accepted yet, "current" is the start weights
        tried.add((initial.sha256, s.rate, s.steps))
        log = log_dir / f"{s.name}.log" if log_dir else None
        result = train(files, rows, initial, steps=s.steps, rate=s.rate,
                       num_cores=num_cores, log_path=log)
        candidates.append((s.name, result.weights, result))
    for name, weights in extra:
        candidates.append((name, weights, None))
    candidates = [(n, w if w is None or w.sha256 not in seen else None, r)
                  for n, w, r in candidates]
    judged = judge(evidence, current, candidates, num_cores, seed)
    contenders = [(j.gain_low, j) for j in judged[1:] if j.gain_low is not None]
    weights_of = {n: w for n, w, _ in candidates if w is not None}
    cur = judged[0]
    if not contenders:
        reason = "no candidate could be trained: kept the current weights"
        return Decision("current", current, reason, unit, label, evidence.n_pairs,
                        tuple(judged))
    gain_low, best = max(contenders, key=lambda c: c[0])
    if gain_low > 0:
        reason = (f"{best.name} ranks {best.accuracy:.3f} of {evidence.n_pairs} held-out "
                  f"pairs right vs {cur.accuracy:.3f}; gain {best.gain:+.3f}, lower bound "
                  f"{gain_low:+.3f} > 0")
        return Decision(best.name, weights_of[best.name], reason, unit, label,
                        evidence.n_pairs, tuple(judged))
    reason = (f"no candidate beats the current weights ({cur.accuracy:.3f} of "
              f"{evidence.n_pairs} held-out pairs) beyond the noise; best {best.name} "
              f"{best.accuracy:.3f}, lower bound {gain_low:+.3f}")
    return Decision("current", current, reason, unit, label, evidence.n_pairs, tuple(judged))
