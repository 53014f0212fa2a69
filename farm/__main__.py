"""The `farm` command (and `python -m farm`)."""

import sys


def console() -> int:
    """The farm's modules take a second to import, and a Ctrl-C in that second must end the
    command as one at work does (exit 130, one line), not with Python's KeyboardInterrupt."""
    try:
        from farm.cli import main

        return main()
    except KeyboardInterrupt:  # (main turns one at work into its own line)
        print("farm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(console())
