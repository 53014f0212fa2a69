"""farm bench: manual vs beam-32 baseline vs beam-32 tuned vs a run's best, per device."""

from __future__ import annotations

from farm.commands import options


def add_parser(sub) -> None:
    p = sub.add_parser(
        "bench", help="did pretraining help? manual vs beam-32 with baseline and tuned weights "
        "vs a run's best schedule, per device",
        description="Time, per benchmark and device, the manual schedule, beam-32 with the "
        "baseline weights, beam-32 with tuned weights (--weights, or the run's best.weights) "
        "and the best schedule a run found (--run), each re-timed --retimes times.")
    p.add_argument("benchmarks", metavar="BENCH", nargs="*", help=options.BENCH_KINDS +
                   "; or `all` (default: the --run's benchmark)")
    options.add_devices(p, help="devices (default: every usable one); `--device a b` and "
                        "`--device a --device b` both name two")
    options.add_weights(p, help="tuned weights: a file, or `baseline` for none (default: the "
                        "--run's best.weights; without --run, each device class's current "
                        "model, `farm models`)")
    p.add_argument("--run", metavar="RUN_DIR", help="a `farm autotune` run directory")
    options.add_retimes(p, default=10, help="interleaved re-timings per schedule and device "
                        "(default 10: enough for a true 10%% difference on median3x3 to get a "
                        "verdict in 8 of 10 runs on our 2-core hosts; see PERFORMANCE.md)")
    options.add_out(p, "DIR", default="farm-bench", help="where the Parquet rows and the plot "
                    "go (default ./farm-bench)")
    options.add_address(p)


def main(args) -> int:
    from farm import api
    from farm.atomic import check_writable_dir, writable_dir
    from farm.report.output import printable
    from farm.workflows.bench import format_table, write_results

    def say(text: str = "") -> None:  # names from a --run: control characters escaped
        print(printable(text, lines=True), flush=True)

    check_writable_dir(args.out)  # refused now; made only once there is something to write
    rows = api.bench(args.benchmarks, devices=args.devices, weights=args.weights,
                     run=args.run, address=args.address, retimes=args.retimes,
                     progress=say).to_pylist()
    say()
    say(format_table(rows))
    table, plot = write_results(rows, writable_dir(args.out))
    say(f"\nrows: {table}\nplot: {plot}")
    return 0
