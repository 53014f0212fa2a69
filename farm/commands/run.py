"""farm run: autoschedule a benchmark, time it and its manual schedule."""

from __future__ import annotations

from farm.commands import options


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="autoschedule a benchmark and time it (with its manual "
                       "schedule beside it)", description="Autoschedule BENCH with Adams2019, "
                       "time it on a device, and time the benchmark's own (manual) schedule "
                       "beside it. Writes BENCH.schedule.h under --out.")
    p.add_argument("benchmark", metavar="BENCH", help=options.BENCH_KINDS)
    p.add_argument("--beam-size", type=options.bounded_int("beam_size"), default=32, metavar="N",
                   help="beam size of the autoscheduler's search (default 32)")
    options.add_common(p)
    options.add_compile_timeout(p)
    options.add_device(p, twice="farm run times on one device; give --device once")
    options.add_out(p, "DIR", default=".", help="where to write the .schedule.h (default: "
                    "the current directory)")
    p.add_argument("--no-manual", action="store_true", help="skip the manual schedule")
    options.add_retimes(p, default=5, help="then re-time the two schedules N times each, "
                        "interleaved, for the verdict with its 95%% interval (default 5, the "
                        "fewest that give one)")


def main(args) -> int:
    from farm import api
    from farm.atomic import writable_dir
    from farm.model import weights
    from farm.pipelines import catalog
    from farm.report.progress import waiting_notices

    bench = catalog.resolve(args.benchmark)
    given = weights.resolve(args.weights) if args.weights else None  # (checked before Ray)
    out = writable_dir(args.out)

    def say(w, note):
        print(f"{bench.label}: beam {args.beam_size}, parallelism {args.parallelism}, weights "
              f"{w.origin} ({w.sha256[:8]})", flush=True)
        if note:
            print(f"  {note}", flush=True)

    result = api.run(bench, beam_size=args.beam_size, parallelism=args.parallelism,
                     weights=given, target=args.target, device=args.device, on_weights=say,
                     address=args.address, out=out, manual=not args.no_manual,
                     compile_timeout_s=args.compile_timeout, retimes=args.retimes,
                     on_update=waiting_notices(lambda line: print(line, flush=True)))
    print(f"  on {result.device.id}, target {result.target.compile}")
    b, m = result.auto.build, result.auto.measurement
    # run_benchmark raises unless the autoscheduled schedule compiled and ran
    assert m is not None and b.schedule is not None
    print(f"  autoscheduled: {m.best_ms:.3f} ms (median {m.median_ms:.3f} over "
          f"{len(m.runtimes_ms)} repeats); compile {b.compile_s:.1f} s = autoschedule "
          f"{b.schedule.autoschedule_s:.2f} + codegen {b.codegen_s:.2f} + link {b.link_s:.2f}")
    if result.manual is not None:
        mb, mm = result.manual.build, result.manual.measurement
        if mm is None or not mm.ok:
            if not mb.ok:
                why = mb.error
            elif mm is not None:
                why = mm.error
            else:  # it compiled, then its device was lost before it was timed
                why = "compiled, but not timed (its device was lost)"
            print(f"  manual:        failed: {why.splitlines()[0]}")
        else:
            print(f"  manual:        {mm.best_ms:.3f} ms (median {mm.median_ms:.3f} over "
                  f"{len(mm.runtimes_ms)} repeats)")
            print("  " + _verdict_line(result))
    print(f"  schedule: {result.schedule_path}")
    return 0


def _verdict_line(result) -> str:
    """The two schedules' interleaved re-timings and the verdict (farm.stats.verdict's wording)."""
    from farm.workflows.run import AUTO, MANUAL

    v = result.verdict
    if v is None:
        return "verdict:       not re-timed (no device was left to re-time on)"
    auto, manual = result.median_ms(AUTO), result.median_ms(MANUAL)
    medians = (f": {auto:.3f} vs {manual:.3f} ms (medians)"
               if auto is not None and manual is not None else "")
    return (f"re-timed {len(result.retimes_ms[AUTO])} times each, interleaved{medians}; "
            + v.sentence("autoscheduled", "the manual schedule"))
