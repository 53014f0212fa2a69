"""How a name becomes part of a path: through `path_name`, everywhere.

Pipeline labels, generator names, leave-one-out groups and device classes come from the
command line, from generators' parameters and from run directories that someone else
wrote, and each becomes a file or folder name: best/NAME/, .best-NAME.new, generators/NAME.py,
DIR/NAME/ of `farm report`, loo-NAME.weights of `farm evaluate`, classes/CLASS/. A name
that is already a safe file name stays itself, so the folders of existing runs keep their
names. Any other (`../../x`, `gen:path=a/b`, a NUL or a control character, a name too long
for a file system) becomes a slug of safe characters followed by a short hash of the whole
name, so two names that slug alike still get two folders, and nothing in a name ever
reaches the file system as a separator, a parent or a hidden file.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

# ASCII letters and digits and the marks that pipeline labels and device classes use
# ("box:radius=2", "conv3x3a16+conv3x3a32", "host-amd-epyc (x86-64-linux-avx2)"); not
# first: "." (hidden files, "." and "..") or a space. At most 200 characters: room for
# the prefixes, suffixes and temporary names built around it within a file system's 255.
_SAFE = re.compile(r"[A-Za-z0-9_,:=+@()-][A-Za-z0-9_.,:=+@() -]{0,199}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_.,:=+@() -]+")
SLUG_CHARS = 80
HASH_CHARS = 12


def path_name(name: str) -> str:
    """`name` as one file or folder name: itself when it is safe, else a safe slug of it
    and the first characters of its sha256 ("gen:path=a_b-5c1f0e2a9b3d")."""
    if _SAFE.fullmatch(name):
        return name
    slug = _UNSAFE.sub("_", name).lstrip(".")[:SLUG_CHARS] or "_"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{slug}-{digest[:HASH_CHARS]}"


def is_safe(name: str) -> bool:
    """Whether `name` is its own path name (path_name leaves it as it is)."""
    return _SAFE.fullmatch(name) is not None


def user_dir(env: str, xdg: str, xdg_default: str, *parts: str) -> Path:
    """A per-user folder of the farm (its cache, its model registry, its device leases):
    $ENV when set, else $XDG/halide-farm/PARTS, with ~/XDG_DEFAULT for an unset $XDG (the
    XDG base directory rules). Names a folder only: nothing is made or read."""
    configured = os.environ.get(env)
    if configured:
        return Path(configured)
    base = os.environ.get(xdg) or os.path.join(os.path.expanduser("~"), xdg_default)
    return Path(base, "halide-farm", *parts)
