"""`farm report`'s plots of a run (or a campaign's pipeline): PNG files, one figure each.

Legible at a glance and on a phone: each plot is one figure; planners are told apart by
colour, marker and legend order (the one that found the fastest first), with the run's
overall best drawn beneath them as a wide pale band, so no planner's line hides under it;
log axes carry ticks at 1, 2 and 5 of each decade with plain numbers; a series with no
points has no legend entry.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

from farm.candidate import OK
from farm.report.output import pyplot, save_figure
from farm.report.text import Report

NAMES = ("best_so_far", "best_over_time", "runtimes_per_round", "ranking_accuracy",
         "predicted_vs_measured")
# a whole campaign's: its pipelines' runtimes do not share a scale, the model's figures do
CAMPAIGN_NAMES = ("ranking_accuracy", "predicted_vs_measured")
MARKERS = "os^Dv<>pPX*h"


def write_plots(rep: Report, out_dir: Path) -> list[Path]:
    """PNG plots: best so far against samples (per planner) and against wall time,
    runtimes per round, ranking accuracy, predicted against measured (NAMES, in that
    order); of a whole campaign, CAMPAIGN_NAMES only."""
    plt = pyplot()
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = sorted(rep.rows, key=lambda r: (r["round"], r["created_at"] or datetime.min,
                                           r["index"]))
    draw = {"best_so_far": lambda: _best_so_far(plt, rows),
            "best_over_time": lambda: _best_over_time(plt, rows),
            "runtimes_per_round": lambda: _runtimes_per_round(plt, rep),
            "ranking_accuracy": lambda: _ranking(plt, rep),
            "predicted_vs_measured": lambda: _predicted(plt, rows)}
    names = CAMPAIGN_NAMES if rep.manifest.campaign and not rep.pipeline else NAMES
    return [save_figure(draw[name](), out_dir / f"{name}.png") for name in names]


def _steps(rows: list[dict], planner: str | None = None) -> tuple[list[int], list[float]]:
    """(sample number, best so far) at each new best, of `planner`'s rows (None: all)."""
    xs, ys, best = [], [], None
    for i, row in enumerate(rows, 1):
        if row["status"] != OK or (planner is not None and row["planner"] != planner):
            continue
        if best is None or row["runtime_ms"] < best:
            best = row["runtime_ms"]
            xs.append(i)
            ys.append(best)
    return xs, ys


def _best_so_far(plt, rows: list[dict]):
    """The best runtime so far against samples: overall, and per planner."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    n = len(rows)
    xs, ys = _steps(rows)
    if xs:
        ax.step([*xs, n], [*ys, ys[-1]], where="post", color="#bbbbbb", lw=7, alpha=0.6,
                zorder=1, label="all planners (the run's best)")
    lines = []
    for planner in sorted({r["planner"] for r in rows if r["planner"]}):
        px, py = _steps(rows, planner)
        if px:
            lines.append((py[-1], planner, px, py))
    colors = plt.get_cmap("tab10" if len(lines) <= 10 else "tab20")
    for k, (_, planner, px, py) in enumerate(sorted(lines)):  # the fastest first
        ax.step([*px, n], [*py, py[-1]], where="post", lw=1.6, zorder=3,
                color=colors(k % colors.N), label=planner)
        ax.plot(px, py, MARKERS[k % len(MARKERS)], color=colors(k % colors.N), ms=5,
                zorder=4)
    if xs:
        ax.legend(fontsize=8, ncol=2 if len(lines) > 6 else 1)
        # log: a planner's first, slow best (17.5 ms) squashed the ones that matter (0.4-0.8)
        ax.set_yscale("log")
        _log_ticks(ax)
    ax.set(xlabel="samples", ylabel="best so far (ms, log scale)",
           title="best schedule so far, per planner (fastest first)")
    ax.grid(alpha=0.3, which="major")
    return fig


def _best_over_time(plt, rows: list[dict]):
    """The run's best runtime so far against wall time."""
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    start = rows[0]["created_at"] if rows and rows[0]["created_at"] else None
    ts, ys, best = [], [], None
    for row in rows:
        if row["status"] == OK and (best is None or row["runtime_ms"] < best):
            best = row["runtime_ms"]
        if best is not None and start is not None and row["created_at"] is not None:
            ts.append((row["created_at"] - start).total_seconds() / 60)
            ys.append(best)
    if ts:
        ax.step(ts, ys, where="post", color="tab:green", lw=1.8)
        ax.set_yscale("log")
        _log_ticks(ax)
    else:
        ax.text(0.5, 0.5, "no sample timed yet", ha="center", va="center",
                transform=ax.transAxes)
    ax.set(xlabel="minutes since the first sample", ylabel="best so far (ms, log scale)",
           title="best schedule over time")
    ax.grid(alpha=0.3, which="major")
    return fig


def _log_ticks(ax, axes: str = "y") -> None:
    """Ticks at 1, 2 and 5 of each decade, as plain numbers (0.2, 0.5, 1, 2, ...), on the
    y axis (and the x axis with axes="xy"); no minor labels to overlap them."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis in [ax.yaxis, ax.xaxis][:len(axes)]:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0), numticks=15))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())


def _runtimes_per_round(plt, rep: Report):
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(rep.rounds) + 3), 4.2))
    data = [r["runtimes"] or [float("nan")] for r in rep.rounds]
    if data:
        ax.boxplot(data, tick_labels=[str(r["round"]) for r in rep.rounds], showfliers=True)
    else:  # a campaign's pipeline with no rows yet (a live run, one that joined late)
        ax.text(0.5, 0.5, "no rounds yet", ha="center", va="center", transform=ax.transAxes)
    beams = [r["beam_ms"] for r in rep.rounds]
    if any(beams):
        ax.plot(range(1, len(beams) + 1), [b if b else float("nan") for b in beams], "r^",
                label="beam search (candidate 0)")
        ax.legend(fontsize=8)
    ax.set_yscale("log")
    _log_ticks(ax)
    ax.set(xlabel="round", ylabel="runtime (ms, log scale)", title="runtimes per round")
    ax.grid(alpha=0.3, which="major")
    return fig


def _ranking(plt, rep: Report):
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    rounds = [r["round"] for r in rep.rounds]
    series = (("held_out", "o-", "held-out rank of the weights that planned the round"),
              ("best_candidate", "s--", "held-out rank of the best candidate"),
              ("train_rate", "x:", "trainer rate (on its training data)"))
    drawn = 0
    for key, style, label in series:
        values = [r[key] for r in rep.rounds]
        if any(v is not None for v in values):  # no legend entry without a point
            ax.plot(rounds, [v if v is not None else float("nan") for v in values], style,
                    label=label)
            drawn += 1
    ax.axhline(0.5, color="gray", lw=0.8, ls=":")
    ax.set_xticks(rounds)
    ax.set(xlabel="round", ylabel="share ordered right", ylim=(0, 1.05),
           title="cost-model ranking accuracy")
    if drawn:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no round judged yet", ha="center", va="center",
                transform=ax.transAxes)
    ax.grid(alpha=0.3)
    return fig


def _predicted(plt, rows: list[dict]):
    """Each round's measured runtimes against the predictions of the weights that planned
    the round (recorded at its commit), log-log, a colour per round with its rank
    correlation: how well the model that chose the candidates knew them."""
    from scipy.stats import spearmanr

    fig, ax = plt.subplots(figsize=(6.5, 4.6))
    pts = [r for r in rows if r["status"] == OK and r.get("predicted") and r["predicted"] > 0]
    rounds = sorted({r["round"] for r in pts})
    cmap = plt.get_cmap("viridis")
    for k, rnd in enumerate(rounds):
        mine = [r for r in pts if r["round"] == rnd]
        rho = float("nan")
        if len(mine) > 2:
            rho = spearmanr([r["predicted"] for r in mine],
                            [r["runtime_ms"] for r in mine]).statistic
        label = f"round {rnd}" + ("" if math.isnan(rho) else f" (rank corr. {rho:.2f})")
        ax.scatter([r["predicted"] for r in mine], [r["runtime_ms"] for r in mine], s=14,
                   alpha=0.75, marker=MARKERS[k % len(MARKERS)],
                   color=cmap(k / max(1, len(rounds) - 1)),
                   label=label if len(rounds) <= 12 or k in (0, len(rounds) - 1) else None)
    if pts:
        ax.set_xscale("log")
        ax.set_yscale("log")
        _log_ticks(ax, "xy")
        ax.legend(fontsize=7, ncol=2 if len(rounds) > 6 else 1)
    else:
        ax.text(0.5, 0.5, "no predictions recorded (rounds written before the farm recorded "
                "them, or no schedule timed)", ha="center", va="center", wrap=True,
                transform=ax.transAxes, fontsize=9)
    ax.set(xlabel="predicted by the weights that planned the round (model units, log)",
           ylabel="measured (ms, log)", title="predicted against measured")
    ax.grid(alpha=0.3, which="major")
    return fig
