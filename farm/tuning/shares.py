"""Each campaign round's shares of candidates per pipeline (farm.search.allocation), from
the committed rounds' records."""

from __future__ import annotations

from farm.search.allocation import History, Share, allocate
from farm.store.rundir import RunDir
from farm.tuning.context import RunContext
from farm.tuning.state import RunState
from farm.tuning.training_data import campaign_names, held_out_pipeline, training_table


def histories(run: RunDir, state: RunState, batch_size: int, before: int) -> list[History]:
    """Each pipeline's History over the rounds before round `before`: its first round's
    beam search, and per round since its best so far and candidates (rounds recorded
    before shares were: the batch size)."""
    records = [run.read_round(r) for r in range(1, before)]
    out = []
    for t in state.tracks:
        figures = [(rec.pipelines or {}).get(t.name) for rec in records if rec is not None]
        mine = [f for f in figures if f]
        out.append(History(
            t.name, mine[0].get("beam_ms") if mine else None,
            [f.get("best_so_far_ms") for f in mine],
            [f.get("candidates") or batch_size for f in mine]))
    return out


def round_shares(ctx: RunContext, round_no: int) -> list[Share]:
    """The shares of round `round_no`, one per track, in their order."""
    run, s, state = ctx.run, ctx.s, ctx.state
    if s.allocation != "gain" or len(state.tracks) < 2:
        return [Share(t.name, s.batch_size, why="equal shares") for t in state.tracks]
    names = sorted(set(campaign_names(training_table(run, s.also_train_on, ["benchmark"])))
                   | {t.scope for t in state.tracks})
    held = held_out_pipeline(names, round_no)
    scope_to_name = {t.scope: t.name for t in state.tracks}
    return allocate(histories(run, state, s.batch_size, round_no), s.batch_size, round_no,
                    s.allocation, held_out=scope_to_name.get(held or ""),
                    weights=dict(s.pipeline_weights))
