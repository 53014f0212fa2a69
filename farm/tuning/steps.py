"""The steps after a round's commit: check the provisional weights, keep them aside, train
and judge new candidates, write the round's record.

Each step's result is on disk before the next starts (the round's part record,
RunDir.round_part_path, lists the steps done), so a run resumed after a crash anywhere
in them redoes only what is missing."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import replace
from enum import StrEnum
from pathlib import Path

from farm import atomic
from farm.candidate import DUPLICATE, OK
from farm.errors import RunDirError, WeightsError
from farm.model import acceptance, weights
from farm.model.trainer import Trainer
from farm.model.weights import Weights
from farm.store.records import AcceptanceRecord, RoundRecord
from farm.store.rundir import now_iso
from farm.tuning.beam_check import BeamChecker, Live, ds_field
from farm.tuning.context import RunContext
from farm.tuning.shares import round_shares
from farm.tuning.state import Track
from farm.tuning.training_data import campaign_names, training_table


class RoundStep(StrEnum):
    """A step of a round after its commit, as the part record lists it."""

    BATCH = "batch"  # the round's figures, from its rows
    BEAM_CHECK = "beam_check"  # the provisional weights' beam search re-timed
    PROVISIONAL_KEPT = "provisional_kept"  # provisional.weights moved under the round


class RoundSteps:
    def __init__(self, ctx: RunContext, trainer: Trainer, checker: BeamChecker,
                 held_out: Callable[[list[str], int], str | None]):
        """`held_out(names, round_no)`: the pipeline the round's candidate models are
        judged on (None: the round's rows), the round loop's hook."""
        self.ctx, self.trainer, self.checker, self.held_out = ctx, trainer, checker, held_out

    def finish(self, round_no: int, live: Live | None = None) -> RoundRecord:
        """Check the provisional weights round `round_no` planned with, train and judge new
        candidates, and write the round's record. A resumed run (`live` None) validates
        what the last round left and redoes the steps that are missing or broken."""
        run = self.ctx.run
        record, whole = self._last_record(round_no) if live is None else (None, False)
        if whole:
            assert record is not None
            return record
        part = self._part(round_no, record, live)
        steps = list(part.steps or [RoundStep.BATCH])
        run.write_round_part(replace(part, steps=steps))
        if RoundStep.BEAM_CHECK not in steps:
            steps.append(RoundStep.BEAM_CHECK)
            part = replace(part, beam_check=self.checker.check_provisional(round_no, live),
                           steps=steps)
            run.write_round_part(part)
        current = weights.load(run.weights_path(round_no - 1))
        if part.beam_check is not None:
            part = self._keep_provisional(round_no, part, steps)
            if part.beam_check is not None and part.beam_check.passed:
                current = weights.load(run.provisional_used(round_no))
        train_start = time.monotonic()
        part = replace(part, acceptance=self._accept(round_no, current),
                       retrain_s=time.monotonic() - train_start, steps=None,
                       finished_at=now_iso(),
                       wall_s=time.monotonic() - live.started if live else part.wall_s)
        run.write_round(part)
        run.drop_round_part(round_no)
        return part

    def _part(self, round_no: int, record: RoundRecord | None,
              live: Live | None) -> RoundRecord:
        """Where the round's steps start: its part record, or its batch's figures."""
        if record is not None:  # its weights broke after it was written: decide them again
            part = replace(record, steps=[RoundStep.BATCH, RoundStep.BEAM_CHECK])
        else:
            part = (self.ctx.run.read_round_part(round_no) if live is None else None) or \
                self._batch_record(round_no, live)
        if live is None:
            self.ctx.progress.message(f"round {round_no} was committed but not finished "
                                  f"({', '.join(part.steps or ['its commit'])} done): "
                                  "finishing it")
            part = replace(part, resumed=True)
        return part

    def _keep_provisional(self, round_no: int, part: RoundRecord,
                          steps: list[str]) -> RoundRecord:
        """Keep the provisional weights under the round it planned a candidate in, so that
        sample can be rebuilt; once, as a step: a crash after the acceptance wrote the next
        provisional weights must not move those."""
        run = self.ctx.run
        if RoundStep.PROVISIONAL_KEPT in steps:
            return part
        if run.provisional_weights.exists() and not run.provisional_used(round_no).exists():
            os.replace(run.provisional_weights, run.provisional_used(round_no))
            atomic.fsync_dir(run.provisional_weights.parent)  # before it is a step
        steps.append(RoundStep.PROVISIONAL_KEPT)
        part = replace(part, steps=steps)
        run.write_round_part(part)
        return part

    def _last_record(self, round_no: int) -> tuple[RoundRecord | None, bool]:
        """Round `round_no`'s record (None when missing or unreadable), and whether it and
        the weights it decided are whole; when they are, latest.weights is made to match."""
        run = self.ctx.run
        try:
            record = run.read_round(round_no)
        except RunDirError as e:
            self.ctx.progress.message(f"round {round_no}: {e}; finishing it again")
            record = None
        broken = False
        try:
            if run.provisional_weights.exists():
                weights.load(run.provisional_weights)
        except WeightsError as e:  # unusable: as if it were not there
            self.ctx.progress.message(f"{e}; dropping it")
            run.provisional_weights.unlink()
            broken = True  # if the round's acceptance made it, that is done again
        try:
            decided = weights.load(run.weights_path(round_no))
        except WeightsError as e:
            if record is not None:  # the round was done: only its weights are decided again
                self.ctx.progress.message(f"round {round_no}: {e}; deciding its weights again")
            return record, False
        if record is None or broken:
            return record, False
        if _bytes_of(run.latest_weights) != decided.data:
            weights.write(decided, run.latest_weights)  # a crash between the two writes
        run.drop_round_part(round_no)
        return record, True

    def _batch_record(self, round_no: int, live: Live | None) -> RoundRecord:
        """The round's figures, from its committed rows (and, live, from its outcomes)."""
        rows = self.ctx.run.samples.read(filter=ds_field("round") == round_no).to_pylist()
        rows.sort(key=lambda r: (r["benchmark"] or "", r["index"]))
        tracks = self.ctx.state.tracks
        shares = {x.name: x for x in self.ctx.state.shares.get(round_no) or round_shares(
            self.ctx, round_no)}
        per_pipeline = {}
        for t in tracks:
            trows = [r for r in rows if not t.scope or r["benchmark"] == t.scope]
            if not trows:
                continue
            best = min((r["runtime_ms"] for r in trows if r["status"] == OK), default=None)
            share = shares.get(t.name)
            per_pipeline[t.name] = {"beam_ms": self._beam_ms(t, trows[0]), "best_ms": best,
                                    "best_so_far_ms": t.best_ms,
                                    "ok": sum(r["status"] == OK for r in trows),
                                    "candidates": len(trows),
                                    "estimate": share.estimate if share else None,
                                    "why": share.why if share else ""}
        one = per_pipeline.get(tracks[0].name, {}) if len(tracks) == 1 else {}
        used = weights.load(self.ctx.run.weights_path(round_no - 1))
        return RoundRecord(
            round=round_no, started_at=live.started_at if live else "", candidates=len(rows),
            weights_sha256=used.sha256, **round_figures(rows, live.outcomes if live else []),
            beam_ms=one.get("beam_ms"), best_ms=one.get("best_ms"),
            best_so_far_ms=one.get("best_so_far_ms"),
            wall_s=time.monotonic() - live.started if live else 0.0,
            pipelines=per_pipeline if self.ctx.state.manifest.campaign else None,
            screening=live.screening if live else None, steps=[RoundStep.BATCH])

    def _beam_ms(self, track: Track, row: dict) -> float | None:
        """Candidate 0's runtime: its own, or its twin's when it repeated a schedule."""
        if row["status"] == OK:
            return row["runtime_ms"]
        if row["status"] == DUPLICATE and row["duplicate_of"] is not None:
            where = ds_field("schedule_id") == row["duplicate_of"]
            if track.scope:
                where = where & (ds_field("benchmark") == track.scope)
            twin = self.ctx.run.samples.read(["status", "runtime_ms"], filter=where)
            ok = [r["runtime_ms"] for r in twin.to_pylist() if r["status"] == OK]
            return ok[0] if ok else None
        return None

    def _accept(self, round_no: int, current: Weights) -> AcceptanceRecord:
        """Write `current` as the weights that plan the next round; train candidates on the
        rest and judge them on a held-out unit: the round `round_no` in a run of one
        pipeline; in a campaign one pipeline, in turn (the model must carry to a pipeline
        it was not trained on). A winner becomes provisional."""
        s, run = self.ctx.s, self.ctx.run
        weights.write(current, run.weights_path(round_no))
        weights.write(current, run.latest_weights)
        table = training_table(run, s.also_train_on)
        name = self.held_out(campaign_names(table), round_no)
        unit, held_out = ("benchmark", name) if name is not None else ("round", round_no)
        settings = [replace(x, steps=s.train_steps) for x in acceptance.SETTINGS]
        decision = self.trainer.decide(
            table, unit, held_out, current, s.start_weights, run.sample_files,
            num_cores=s.parallelism, settings=settings, seed=round_no,
            log_dir=run.training_dir(round_no))
        if decision.accepted == "current":  # one a crashed try of this step wrote goes
            run.provisional_weights.unlink(missing_ok=True)
        else:
            weights.write(decision.weights, run.provisional_weights)
            self.ctx.progress.message(f"round {round_no}: {decision.accepted} is provisional "
                                  f"(its beam search is checked next round): {decision.reason}")
        return AcceptanceRecord.from_json(decision.record())


def round_figures(rows: list[dict], outcomes) -> dict:
    statuses: dict[str, int] = {}
    for r in rows:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1

    def total(column):
        return round(sum(r[column] or 0.0 for r in rows), 3)

    return {"statuses": statuses, "autoschedule_s": total("autoschedule_s"),
            "precheck_s": round(sum(o.precheck_s for o in outcomes), 3),
            "codegen_s": total("codegen_s"), "link_s": total("link_s"),
            "timing_s": total("run_s"),
            # a schedule is distinct within its pipeline: twins can share schedule features
            "distinct_ok": len({(r["benchmark"], r["schedule_key"]) for r in rows
                                if r["status"] == OK})}


def _bytes_of(path: Path) -> bytes | None:
    """The weights at `path`, None when missing or not a weights file (to be rewritten)."""
    try:
        return weights.load(path).data
    except WeightsError:
        return None
