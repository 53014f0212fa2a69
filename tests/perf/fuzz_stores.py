"""A fuzz pass over the folders the farm shares beyond a run directory (issue 39): the
device lease folder, the model registry, a Halide loop's samples folder for `farm import`
and the weights cache.

Each file the farm keeps there is replaced, one at a time, by something hostile (random
bytes, nothing, half of itself, zero bytes, a sparse 4 GB file, a link to another file, a
dangling link, a FIFO, a folder, JSON nested 100,000 deep or of the wrong shape), and the
command that reads it is run in a fresh process with a 60 s limit:

  leases    `farm devices` (who holds, who waits) and a lease taken and given back
  registry  `farm models` and the start weights a new run would take (class_start)
  import    `farm import SAMPLES --out OUT --class C`
  cache     the weights cache entry the autoscheduler reads (cached_file): it must be
            the right weights afterwards

An attempt passes when the command ends within the limit, without a traceback, and either
succeeds (a bad entry skipped, rebuilt or read as absent) or refuses in one line with exit
code 1 or 2. The table of attempts goes to stdout (docs/reliability.md keeps one):

    python tests/perf/fuzz_stores.py [--only leases,registry,import,cache]

exit 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
LOOP = REPO / "tests" / "data" / "halide_loop" / "median3x3"
LIMIT_S = 60


def mutations(path: Path) -> list[tuple[str, object]]:
    """(name, how) for each way `path` is made hostile."""
    out: list[tuple[str, object]] = [
        ("random bytes", "random"), ("empty", "empty"), ("half", "half"),
        ("zeros", "zeros"), ("sparse 4 GB", "sparse"), ("link to a file", "link"),
        ("dangling link", "dangling"), ("FIFO", "fifo"), ("folder", "folder")]
    if path.suffix in (".json", ".holder", ".log") or path.name.endswith(".json"):
        out += [("deep JSON", "deep"), ("JSON list", "list"), ("JSON of wrong types", "types")]
    return out


def mutate(path: Path, how, rng: random.Random, elsewhere: Path) -> None:
    size = path.stat().st_size if path.is_file() else 64
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if how == "random":
        path.write_bytes(rng.randbytes(max(size, 16)))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "half":
        path.write_bytes(rng.randbytes(max(1, size // 2)))
    elif how == "zeros":
        path.write_bytes(bytes(max(size, 16)))
    elif how == "sparse":
        with open(path, "wb") as f:
            f.truncate(4 << 30)
    elif how == "link":
        path.symlink_to(elsewhere)
    elif how == "dangling":
        path.symlink_to(path.parent / "no-such-file")
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "folder":
        path.mkdir()
    elif how == "deep":
        path.write_text("[" * 100_000 + "]" * 100_000)
    elif how == "list":
        path.write_text(json.dumps([1, 2, 3]))
    elif how == "types":
        path.write_text(json.dumps({"sha256": 7, "promoted_at": [], "pid": "x", "run": {},
                                    "device_class": None, "source": 3.5}))


def run(argv: list[str], env: dict) -> tuple[str, str]:
    """(outcome, detail): ok, refused (one line), or a failure (traceback, hang, noise)."""
    try:
        proc = subprocess.run(argv, env={**os.environ, **env}, capture_output=True,
                              text=True, timeout=LIMIT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return "FAIL hang", f"no end within {LIMIT_S} s"
    err = proc.stderr.strip()
    if "Traceback" in err:
        return "FAIL traceback", err.splitlines()[-1]
    if proc.returncode == 0:
        return "ok", ""
    if proc.returncode in (1, 2) and err and len(err.splitlines()) == 1:
        return "refused", err
    return "FAIL exit", f"exit {proc.returncode}: {err[-300:]}"


def farm(*args: str) -> list[str]:
    return [sys.executable, "-m", "farm", *args]


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


TAKE_LEASE = ("from farm.execution.leases import Lease, Holder\n"
              "from farm.errors import FarmError\nimport sys\n"
              "try:\n"
              "    lease = Lease('cpu@vm', Holder.here('fuzz'))\n"
              "    with lease.use():\n        pass\n    lease.release()\n"
              "except FarmError as e:\n"
              "    print(f'refused: {e}', file=sys.stderr); sys.exit(2)\n")


def leases(root: Path, rng: random.Random) -> list[tuple[str, str, str, str]]:
    folder = root / "leases"
    env = {"FARM_LEASE_DIR": str(folder)}
    run(py(TAKE_LEASE), env)  # a lease taken once: its lock, holder and log exist
    out = []
    for name in sorted(p.name for p in folder.iterdir()):
        for label, how in mutations(folder / name):
            shutil.rmtree(folder)
            run(py(TAKE_LEASE), env)
            if not (folder / name).exists() and not (folder / name).is_symlink():
                (folder / name).write_text("{}")
            mutate(folder / name, how, rng, root / "elsewhere")
            for what, argv in (("farm devices", farm("devices")),
                               ("take a lease", py(TAKE_LEASE))):
                outcome, detail = run(argv, env)
                out.append((f"leases/{name}", label, what, f"{outcome} {detail}".strip()))
    return out


def registry(root: Path, rng: random.Random) -> list[tuple[str, str, str, str]]:
    folder = root / "models"
    env = {"FARM_MODELS_DIR": str(folder)}
    make = ("from farm.store.registry import Registry, ModelRecord, now_iso\n"
            "from farm.model import weights\n"
            "w = weights.perturbed(weights.baseline(), 1, 0.01)\n"
            "Registry().promote(w, ModelRecord(device_class='host-fuzz', sha256=w.sha256,"
            " source='/nowhere', promoted_at=now_iso(), kind='campaign'))\n")
    start = ("from farm.store.registry import class_start\nfrom farm.errors import FarmError\n"
             "import sys\ntry:\n    print(class_start('host-fuzz')[1])\n"
             "except FarmError as e:\n    print(f'refused: {e}', file=sys.stderr); "
             "sys.exit(2)\n")
    run(py(make), env)
    files = sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    out = []
    for rel in files:
        for label, how in mutations(folder / rel):
            shutil.rmtree(folder)
            run(py(make), env)
            mutate(folder / rel, how, rng, root / "elsewhere")
            for what, argv in (("farm models", farm("models")), ("class_start", py(start))):
                outcome, detail = run(argv, env)
                out.append((f"models/{_generic(rel)}", label, what,
                            f"{outcome} {detail}".strip()))
    return out


def _generic(rel: Path) -> str:
    """A registry path with its class and sha folders named by role."""
    parts = list(rel.parts)
    if len(parts) >= 1:
        parts[0] = "CLASS"
    if len(parts) >= 3 and parts[1] == "models":
        parts[2] = "SHA16"
    return "/".join(parts)


def imports(root: Path, rng: random.Random) -> list[tuple[str, str, str, str]]:
    if not LOOP.is_dir():
        return [("import", "-", "-", f"FAIL setup: no {LOOP}")]
    files = sorted(p.relative_to(LOOP) for p in LOOP.rglob("*") if p.is_file())
    wanted = [f for f in files if f.suffix in (".sample", ".txt", ".h")][:3]
    out = []
    for rel in wanted:
        for label, how in mutations(LOOP / rel):
            samples = root / "samples"
            shutil.rmtree(samples, ignore_errors=True)
            shutil.copytree(LOOP, samples)
            mutate(samples / rel, how, rng, root / "elsewhere")
            dest = root / "imported"
            shutil.rmtree(dest, ignore_errors=True)
            outcome, detail = run(farm("import", str(samples), "--out", str(dest),
                                       "--class", "host-fuzz"), {})
            out.append((f"loop/{rel.suffix or rel.name}", label, "farm import",
                        f"{outcome} {detail}".strip()))
    return out


def cache(root: Path, rng: random.Random) -> list[tuple[str, str, str, str]]:
    env = {"FARM_CACHE_DIR": str(root / "cache")}
    check = ("from farm.model import weights\nimport hashlib, sys\n"
             "w = weights.baseline()\np = weights.cached_file(w)\n"
             "sys.exit(0 if hashlib.sha256(p.read_bytes()).hexdigest() == w.sha256 else 3)\n")
    run(py(check), env)
    entries = sorted((root / "cache").rglob("weights/*.weights"))
    out = []
    for path in entries[:1]:
        for label, how in mutations(path):
            mutate(path, how, rng, root / "elsewhere")
            outcome, detail = run(py(check), env)
            out.append(("cache/weights/SHA.weights", label, "cached_file",
                        f"{outcome} {detail}".strip()))
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
    return out


PARTS = {"leases": leases, "registry": registry, "import": imports, "cache": cache}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(PARTS),
                        help="comma-separated: " + ", ".join(PARTS))
    args = parser.parse_args()
    rng = random.Random(39)
    rows = []
    for name in args.only.split(","):
        with tempfile.TemporaryDirectory(prefix="farm-fuzz-") as tmp:
            root = Path(tmp)
            (root / "elsewhere").write_text("a file the farm must not read or write\n")
            rows += PARTS[name](root, rng)
            if (root / "elsewhere").read_text() != "a file the farm must not read or " \
                                                   "write\n":
                rows.append((name, "-", "-", "FAIL wrote through a link"))
    width = max(len(r[0]) for r in rows)
    for where, label, what, result in rows:
        print(f"{where:<{width}}  {label:<20}  {what:<14}  {result[:110]}")
    tally = Counter((r[0].split("/")[0], r[3].split(" ")[0] if not r[3].startswith("FAIL")
                     else "FAIL") for r in rows)
    print("\nper folder: attempts, ok, refused in one line, failed")
    for part in dict.fromkeys(r[0].split("/")[0] for r in rows):
        n = sum(v for (p, _), v in tally.items() if p == part)
        print(f"  {part}: {n}, {tally[(part, 'ok')]}, {tally[(part, 'refused')]}, "
              f"{tally[(part, 'FAIL')]}")
    failed = [r for r in rows if r[3].startswith("FAIL")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
