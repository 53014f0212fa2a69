"""Halide farm: autotune Halide's Adams2019 cost model on a farm of devices."""

__version__ = "0.1.0"


def console() -> int:
    """The `farm` command. Its imports take a second, and a Ctrl-C in that second must end
    it as one at work does (exit 130, one line), not with Python's KeyboardInterrupt."""
    import sys

    try:
        from farm.cli import main

        return main()
    except KeyboardInterrupt:  # (main turns one at work into its own line)
        print("farm: interrupted", file=sys.stderr)
        return 130
