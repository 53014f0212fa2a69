#!/usr/bin/env bash
# Regenerate tests/data/v1-run: a one-round run written by the first release (commit c5101c6,
# sample schema version 1), for the test that a newer farm reads older runs.
# Keeps what a reader needs (manifest, samples, round records); drops weights and binaries.
set -euo pipefail
repo="$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
old="$(mktemp -d)"; run="$(mktemp -d)/run"
git -C "$repo" archive c5101c6 | tar -x -C "$old"
ln -s ../benchmarks "$old/farm/benchmarks"
(cd "$old" && PYTHONPATH="$old" python -m farm autotune dilate3x3 --rounds 1 --batch-size 8 \
    --out "$run" > /dev/null)
dest="$repo/tests/data/v1-run"
rm -rf "$dest" && mkdir -p "$dest"
cp -r "$run/manifest.json" "$run/samples" "$run/rounds" "$dest/"
echo "wrote $dest"
