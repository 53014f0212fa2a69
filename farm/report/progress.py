"""Progress on the terminal: a live line on a TTY, plain lines otherwise (ray job logs)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from farm.report.output import printable

if TYPE_CHECKING:
    import rich.progress

    from farm.execution.scheduler import Counts

PLAIN_EVERY_S = 15.0


def format_ms(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.3f} ms"


def plural(n: int, noun: str, many: str | None = None) -> str:
    """`n` and its noun, singular for one: "1 round", "3 rounds", "2 classes"
    (`many`: the plural when adding "s" is wrong)."""
    return f"{n} {noun if n == 1 else many or noun + 's'}"


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Reports rounds and candidates; `live` decides between a rich bar and plain lines."""

    def __init__(self, stream=None, live: bool | None = None, label: str = ""):
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.label = label  # prefixes every line: several device classes tune at once
        self.pipelines = 1  # a campaign's: a best runtime across pipelines means nothing
        self._bar: rich.progress.Progress | None = None
        self._last_plain = 0.0
        self.best_ms: float | None = None  # best of the run so far
        self.round_s: float | None = None  # average wall time of a round so far
        self.round_no = self.rounds = 0  # the round under way, of how many
        self.started = 0.0  # when it started (time.monotonic())
        self._task: rich.progress.TaskID | None = None  # its bar's task, on a TTY

    def message(self, text: str) -> None:
        """A line (or lines) on the terminal, its control characters escaped (it may name
        pipelines of a run directory) and no `[...]` of it taken for rich's markup."""
        if self.label:
            text = f"[{self.label}] {text}"
        text = printable(text, lines=True)
        if self._bar is not None:
            self._bar.console.print(text, highlight=False, markup=False)
        else:
            print(text, file=self.stream, flush=True)

    def round_started(self, round_no: int, rounds: int, batch: int) -> None:
        self.round_no, self.rounds = round_no, rounds
        self.started = time.monotonic()
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(TextColumn("round {task.fields[round]}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.description}"),
                                 transient=True, refresh_per_second=4)
            self._bar.start()
            self._task = self._bar.add_task("", total=batch, round=f"{round_no}/{rounds}")

    def update(self, counts: Counts) -> None:
        text = self._status(counts)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=counts.done, description=text)
        elif time.monotonic() - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = time.monotonic()
            self.message(f"round {self.round_no}/{self.rounds}: {counts.done}/{counts.total} "
                         f"done, {text}")

    def round_finished(self, text: str) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        self.message(text)

    def _status(self, k: Counts) -> str:
        best = k.best_ms if self.best_ms is None or k.best_ms is None else \
            min(k.best_ms, self.best_ms)
        if best is None:
            best = self.best_ms
        parts = [f"compiled {k.compiled}", f"timed {k.timed}", f"failed {k.failed}",
                 f"duplicate {k.duplicate}",
                 *([f"best {format_ms(best)}"] if self.pipelines == 1 else []),
                 f"elapsed {format_duration(time.monotonic() - self.started)}"]
        if k.waiting_on is not None:
            what, since = k.waiting_on
            parts.append(f"{what} for {format_duration(time.time() - since)}")
        if self.round_s is not None:
            parts.append(f"~{format_duration(self._left(k))} left")
        return ", ".join(parts)

    def _left(self, k: Counts) -> float:
        """Seconds left in all: the rounds after this one at the mean round's pace; this
        one at the mean pace until it runs longer than that, then at its own pace (so a
        slow round never shows ~0s left while candidates remain)."""
        assert self.round_s is not None
        elapsed = time.monotonic() - self.started
        if elapsed <= self.round_s:
            this_round = self.round_s - elapsed
        elif k.done:
            this_round = elapsed * (k.total - k.done) / k.done
        else:  # nothing done yet: say one more mean round
            this_round = self.round_s
        return self.after_this_round() + this_round

    def after_this_round(self) -> float:
        """Seconds the rounds after the one under way take at the mean round's pace."""
        assert self.round_s is not None
        return (self.rounds - self.round_no) * self.round_s


def waiting_notices(say, every_s: float = 30.0) -> Callable[[Counts], None]:
    """An on_update for a scheduler whose caller shows no progress bar (farm run):
    `say(line)` every `every_s` while a slow candidate keeps it waiting, saying what the
    candidate is doing and for how long."""
    said = [0.0]

    def update(counts: Counts) -> None:
        if counts.waiting_on is not None and time.monotonic() - said[0] >= every_s:
            said[0] = time.monotonic()
            what, since = counts.waiting_on
            say(f"  ... {what} for {format_duration(time.time() - since)}")

    return update
