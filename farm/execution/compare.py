"""One comparison: build variants, re-time them interleaved, give verdicts.

`farm bench`, `farm evaluate`, the final re-timing of a run (farm.tuning.finalize) and the
beam check of provisional weights (farm.tuning.loop) compare schedules the same way:

1. `build`: build the variants that need it, in one pool.build call; a variant may bring
   an artifact built earlier (kept from the rounds: not built again) or an error known
   before any work. With `distinct`, variants of the same weights, and then those whose
   builds gave the same schedule, share one build and its timings.
2. `retime`: re-time every built, distinct binary in one interleaved pool.retime call on one
   device (farm.stats.verdict.interleave), and give each variant a verdict against its
   reference (`Variant.against`) from their paired re-timings.
3. `geometric_mean` of ratios, across pipelines.

bench, evaluate and models train also write the result the same way: farm.report.comparison.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from farm.candidate import Artifact, CandidateSpec, Schedule
from farm.devices.timing import TimingConfig
from farm.model.featurization import schedule_key
from farm.stats import verdict

WEIGHTS, SCHEDULE = "weights", "schedule"  # why a variant shares another's build (same_why)

@dataclass(frozen=True)
class Variant:
    """One schedule to compare, under `key` (any hashable: a label, a (pipeline, role))."""

    key: Hashable
    spec: CandidateSpec | None = None  # what to build
    artifact: Artifact | None = None  # built earlier
    against: Hashable | None = None  # the key of its reference (None: no verdict)
    error: str = ""  # known before any work (e.g. "not trained: ..."): not built, not timed


@dataclass(frozen=True)
class BuiltVariant:
    """A variant after the build: its artifact, or why it has none."""

    variant: Variant
    binary: Any = None  # its binary's ObjectRef (None: no binary of its own)
    library: Any = None  # its library's ObjectRef
    schedule: Schedule | None = None  # of a build here (None when kept or failed)
    error: str = ""  # the variant's own, or its build's (build_error)
    same_as: Hashable | None = None  # the variant whose build (and timings) it shares
    same_why: str = ""  # WEIGHTS or SCHEDULE

    @property
    def key(self) -> Hashable:
        return self.variant.key

    @property
    def schedule_source(self) -> str | None:
        return self.schedule.source if self.schedule else None

    @property
    def schedule_key(self) -> str | None:
        """Its featurization's key (farm.model.featurization), when built here."""
        feats = self.schedule.featurization if self.schedule else b""
        return schedule_key(feats) if feats else None

    @property
    def ready(self) -> bool:
        """Has a binary of its own to time."""
        return self.binary is not None and not self.error and self.same_as is None


@dataclass(frozen=True)
class Compared:
    """A variant after the re-timing."""

    key: Hashable
    built: BuiltVariant  # its artifact: library ref, schedule source and key, same_as
    source: Hashable  # the variant whose timings these are (itself, or the one it shares)
    retimes_ms: tuple[float | None, ...] = ()  # aligned by round; None: that timing failed
    verdict: verdict.Verdict | None = None  # against its reference, when both were timed
    error: str = ""  # its own, its build's, or why its timings failed
    confirmed: bool = False  # a "slower" verdict re-timed once more (confirm_slower)

    @property
    def ok_ms(self) -> list[float]:
        return [x for x in self.retimes_ms if x is not None]

    @property
    def median_ms(self) -> float | None:
        return verdict.median(self.retimes_ms)

    @property
    def min_ms(self) -> float | None:
        ok = self.ok_ms
        return min(ok) if ok else None


# building ---------------------------------------------------------------------------

def build_error(built, timeout_s: float) -> str:
    """Why a build (pool.build's Built, or None) gave no binary, in one line."""
    if built is None:
        return f"its build did not finish (worker died, or over {timeout_s:g} s)"
    return (built.result.error or "build failed").splitlines()[0]


def shared_weights(variants: Iterable[Variant]) -> dict[Hashable, Hashable]:
    """Each variant whose spec an earlier one has but for equal weights (by sha256), and
    that earlier one's key: one build and one timing serve both."""
    first: list[tuple[tuple, Hashable]] = []
    out: dict[Hashable, Hashable] = {}
    for v in variants:
        if v.spec is None or v.spec.weights is None or v.artifact is not None or v.error:
            continue
        identity = (v.spec.weights.sha256, replace(v.spec, weights=None))
        twin = next((key for seen, key in first if seen == identity), None)
        if twin is None:
            first.append((identity, v.key))
        else:
            out[v.key] = twin
    return out


def to_build(variants: Sequence[Variant], distinct: bool = False) -> list[Variant]:
    """The variants `build` hands to pool.build, in order."""
    same = shared_weights(variants) if distinct else {}
    return [v for v in variants if v.spec is not None and v.artifact is None and not v.error
            and v.key not in same]


def build(pool, variants: Sequence[Variant], timeout_s: float, distinct: bool = False
          ) -> dict[Hashable, BuiltVariant]:
    """Build the variants that need it in one pool.build call, each with `timeout_s` of CPU;
    every variant after the build, by key, in order. `distinct`: time each schedule once
    (variants of the same weights are built once; builds that give the same schedule as an
    earlier variant's share its timings)."""
    same = shared_weights(variants) if distinct else {}
    building = to_build(variants, distinct)
    done = pool.build([v.spec for v in building], timeout_s) if building else []
    made = {v.key: _built(v, d, timeout_s) for v, d in zip(building, done, strict=True)}
    out = {}
    for v in variants:
        if v.key in made:
            out[v.key] = made[v.key]
        elif v.key in same:
            out[v.key] = BuiltVariant(v, same_as=same[v.key], same_why=WEIGHTS)
        elif v.artifact is not None and not v.error:
            out[v.key] = BuiltVariant(v, *v.artifact)
        else:
            out[v.key] = BuiltVariant(v, error=v.error or "nothing to build or time")
    return _shared_schedules(out, building) if distinct else out


def _built(v: Variant, done: tuple, timeout_s: float) -> BuiltVariant:
    built, binary, library = done
    if built is None or not built.result.ok:
        return BuiltVariant(v, error=build_error(built, timeout_s))
    return BuiltVariant(v, binary, library, built.result.schedule)


def _shared_schedules(out: dict[Hashable, BuiltVariant], building: list[Variant]
                      ) -> dict[Hashable, BuiltVariant]:
    """A schedule built again from other weights is timed once: under the first variant
    that built it."""
    first: dict[str, Hashable] = {}
    for v in building:
        b = out[v.key]
        key = b.schedule_key if not b.error else None
        if key is None:
            continue
        if key in first:
            out[v.key] = replace(b, same_as=first[key], same_why=SCHEDULE)
        else:
            first[key] = v.key
    return out


# re-timing --------------------------------------------------------------------------

def paired(built: Mapping[Hashable, BuiltVariant]) -> dict[Hashable, BuiltVariant]:
    """The ready variants of `built` whose reference is ready too, each followed by that
    reference: what to time when a variant is worth timing only beside its reference (the
    beam check times a pipeline's two beam searches, or neither)."""
    out: dict[Hashable, BuiltVariant] = {}
    for key, b in built.items():
        ref = b.variant.against
        if b.ready and ref is not None and ref in built and built[ref].ready:
            out[key], out[ref] = b, built[ref]
    return out


def settled(pairs: Iterable[tuple[Hashable, Hashable]]) -> Callable[[Mapping], bool]:
    """A `decided` for retime: every (a, b) of `pairs` has a verdict, faster or slower."""
    wanted = list(pairs)
    return lambda times: all(verdict.compare(times[a], times[b]).decided for a, b in wanted)


def retime(pool, built: Mapping[Hashable, BuiltVariant], threads: int, timing: TimingConfig,
           rounds: int, *, device: str | None = None,
           decided: Callable[[dict], bool] | None = None, timeout_s: float | None = None,
           on_round: Callable[[int], None] | None = None) -> dict[Hashable, Compared]:
    """Re-time every ready variant of `built` `rounds` times, interleaved, in one
    pool.retime call on `device` (else any one; `decided`: stop early once it says so,
    `timeout_s`: per timing, as pool.retime); every variant of `built` compared, by key. A
    variant sharing another's build has that one's timings; a verdict needs the variant
    (without an error of its own) and its reference timed. `on_round(n)`: after each
    round of re-timings (for progress)."""
    binaries = {key: b.binary for key, b in built.items() if b.ready}
    errors: dict[Hashable, str] = {}
    options: dict[str, Any] = {"device": device, "errors": errors}
    if decided is not None:
        options["decided"] = decided
    if timeout_s is not None:
        options["timeout_s"] = timeout_s
    if on_round is not None:
        options["on_round"] = on_round
    times = pool.retime(binaries, threads, timing, rounds, **options) if binaries else {}
    if binaries and not times:
        lost = f"device {device} is lost" if device else "no device is left"
        errors = {key: f"not timed: {lost}" for key in binaries}
    return {key: _compared(key, built, times, errors) for key in built}


def confirm_slower(pool, built: Mapping[Hashable, BuiltVariant],
                   results: Mapping[Hashable, Compared], threads: int, timing: TimingConfig,
                   rounds: int, *, device: str | None = None,
                   say: Callable[[str], None] = lambda line: None) -> dict[Hashable, Compared]:
    """`results` with every "slower" verdict re-timed once more, afresh: the variant and
    its reference, interleaved, `rounds` times. It stays slower only if the second
    re-timing says so too (one re-timing of a noisy host can err); else the variant takes
    the second's timings and verdict. `confirmed` says which verdicts were re-timed;
    `say(line)` hears each second verdict."""
    slower = [k for k, c in results.items()
              if c.verdict is not None and c.verdict.word == verdict.SLOWER]
    if not slower:
        return dict(results)
    wanted: dict[Hashable, BuiltVariant] = {}
    for key in slower:  # each with its reference, and what either shares a build with
        for k in (key, built[key].variant.against):
            while k is not None and k not in wanted:
                wanted[k] = built[k]
                k = built[k].same_as
    again = retime(pool, wanted, threads, timing, rounds, device=device)
    out = dict(results)
    for key in slower:
        second = again[key]
        if second.verdict is None:  # not re-timed (a device lost): unconfirmed
            continue
        out[key] = replace(second if second.verdict.word != verdict.SLOWER else results[key],
                           confirmed=True)
        say(f"{key}: slower on a first re-timing; a second re-timing: "
            f"{second.verdict.describe()}")
    return out


def _source(key: Hashable, built: Mapping[Hashable, BuiltVariant]) -> Hashable:
    while built[key].same_as is not None:
        key = built[key].same_as
    return key


def _compared(key: Hashable, built: Mapping[Hashable, BuiltVariant], times: Mapping,
              errors: Mapping) -> Compared:
    b = built[key]
    src = built[_source(key, built)]
    t = tuple(times.get(src.key, ())) if not b.error else ()
    error = b.error or src.error or (
        "" if any(x is not None for x in t) else errors.get(src.key, ""))
    ref = b.variant.against
    base = times.get(_source(ref, built)) if ref is not None and ref in built else None
    v = verdict.compare(t, base) if base and not b.error else None
    return Compared(key, b, src.key, t, v, error)


def geometric_mean(values: Iterable[float]) -> float | None:
    """Of ratios (e.g. across pipelines); None for none."""
    ratios = list(values)
    return math.exp(sum(math.log(v) for v in ratios) / len(ratios)) if ratios else None
