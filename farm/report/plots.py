"""`farm report`'s plots of a run (or a campaign's pipeline): PNG files, one per figure."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from farm.candidate import OK
from farm.report.output import pyplot, save_figure
from farm.report.text import Report


def write_plots(rep: Report, out_dir: Path) -> list[Path]:
    """PNG plots: best-so-far against samples and wall time, runtimes per round, ranking."""
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    return [save_figure(_best_so_far(plt, rep), out_dir / "best_so_far.png"),
            save_figure(_runtimes_per_round(plt, rep), out_dir / "runtimes_per_round.png"),
            save_figure(_ranking(plt, rep), out_dir / "ranking_accuracy.png")]


def _best_so_far(plt, rep: Report):
    """The best runtime so far against samples (overall and per planner) and against
    wall time."""
    rows = sorted(rep.rows, key=lambda r: (r["round"], r["created_at"] or datetime.min, r["index"]))
    best, xs, ys, ts = None, [], [], []
    start = rows[0]["created_at"] if rows else None
    for i, row in enumerate(rows, 1):
        if row["status"] == OK:
            best = row["runtime_ms"] if best is None else min(best, row["runtime_ms"])
        if best is not None:
            xs.append(i)
            ys.append(best)
            ts.append((row["created_at"] - start).total_seconds() / 60 if start else 0)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].step(xs, ys, where="post", label="all", color="black", lw=2)
    for planner in sorted({r["planner"] for r in rows if r["planner"]}):
        px, py, pbest = [], [], None
        for i, row in enumerate(rows, 1):
            if row["planner"] == planner and row["status"] == OK:
                pbest = row["runtime_ms"] if pbest is None else min(pbest, row["runtime_ms"])
                px.append(i)
                py.append(pbest)
        if px:
            axes[0].step([*px, len(rows)], [*py, py[-1]], where="post", label=planner, lw=1)
    axes[0].legend(fontsize=7)
    axes[0].set(xlabel="samples", ylabel="best so far (ms)",
                title="best schedule so far, per planner")
    axes[1].step(ts, ys, where="post", color="tab:green")
    axes[1].set(xlabel="minutes since the first sample",
                ylabel="best so far (ms)", title="best schedule over time")
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig


def _runtimes_per_round(plt, rep: Report):
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(rep.rounds) + 3), 4))
    data = [r["runtimes"] or [float("nan")] for r in rep.rounds]
    if data:
        ax.boxplot(data, tick_labels=[str(r["round"]) for r in rep.rounds], showfliers=True)
    else:  # a campaign's pipeline with no rows yet (a live run, one that joined late)
        ax.text(0.5, 0.5, "no rounds yet", ha="center", va="center", transform=ax.transAxes)
    beams = [r["beam_ms"] for r in rep.rounds]
    ax.plot(range(1, len(beams) + 1), [b if b else float("nan") for b in beams], "r^",
            label="beam search (candidate 0)")
    ax.set_yscale("log")
    ax.set(xlabel="round", ylabel="runtime (ms, log)", title="runtimes per round")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def _ranking(plt, rep: Report):
    fig, ax = plt.subplots(figsize=(6, 4))
    rounds = [r["round"] for r in rep.rounds]
    ax.plot(rounds, [r["held_out"] for r in rep.rounds], "o-",
            label="held-out rank of the weights that planned the round")
    ax.plot(rounds, [r["best_candidate"] for r in rep.rounds], "s--",
            label="held-out rank of the best candidate")
    ax.plot(rounds, [r["train_rate"] for r in rep.rounds], "x:",
            label="trainer rate (on its training data)")
    ax.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax.set_xticks(rounds)
    ax.set(xlabel="round", ylabel="share ordered right", ylim=(0, 1.05),
           title="cost-model ranking accuracy")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
