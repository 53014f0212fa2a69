"""What a run directory's records may hold: their fields' types, ranges and names, checked
where the records are read (farm.store.records).

A run directory is data that anyone may have written (a shared file system, a tarball), so
a record is checked before the farm uses it: each field against its type annotation (an
int is no bool, a float is finite), then against what it means (`Check`s: a batch size is a
positive integer, a time in ms is 0 or more, a pipeline's name holds no control character
and its generator's part no path separator, a file under weights/ is a bare file name).
A value that fails is a RecordError naming the field ("pipelines[1].name"); farm.store.rundir
names the file. Free text (reasons, notes, timestamps) is only type-checked: whoever shows
it escapes it.

No I/O and no farm imports, as farm.store.records.
"""

from __future__ import annotations

import math
import numbers
import typing
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from types import NoneType, UnionType
from typing import Any

MAX_NAME = 1000  # characters of a name or path a record may hold
MAX_INT = 2**31 - 1  # counts, sizes and rounds: what Halide and the farm pass as an int32
# control characters and the like: C0/C1 controls, lone surrogates (they cannot be
# written out as UTF-8), line and paragraph separators (str.splitlines splits on them) and
# the bidirectional overrides that make a terminal show text in another order
_BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_CONTROL_CATEGORIES = ("Cc", "Cs", "Zl", "Zp")


class RecordError(ValueError):
    """A JSON value that is not the record it should be: `field` says where in the record
    ("pipelines[1].name", "" for the whole record), `problem` what is wrong; RunDir names
    the file."""

    def __init__(self, problem: str, field: str = ""):
        super().__init__(f"{field} {problem}" if field else problem)
        self.problem, self.field = problem, field

    def under(self, outer: str) -> RecordError:
        """This error seen from the record that holds its record as `outer`."""
        inner = self.field
        joined = outer + (inner if not inner or inner.startswith("[") else "." + inner)
        return RecordError(self.problem, joined)


@dataclass(frozen=True)
class Check:
    """What a field's value means, beyond its type: `ok(value)` for a value of the right
    type (never None), `wanted` says it in a message ("a positive integer")."""

    ok: Callable[[Any], bool]
    wanted: str


def shown(value: Any, limit: int = 40) -> str:
    """`value` in a one-line message: its repr (control characters escaped), cut short."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def has_control(text: str) -> bool:
    return any(c in _BIDI or unicodedata.category(c) in _CONTROL_CATEGORIES for c in text)


def _plain_text(text: str, empty: bool = True) -> bool:
    return (empty or bool(text)) and len(text) <= MAX_NAME and not has_control(text)


def _file_name(text: str) -> bool:
    return _plain_text(text) and "/" not in text and "\\" not in text and \
        text not in (".", "..")


def _pipeline_name(text: str) -> bool:
    """A pipeline's name: its generator's name, then `:` and its parameters. The
    parameters' values may hold anything printable (a `/` too: the paths made from a name
    make it safe); the generator's name is a bare name."""
    generator = text.split(":", 1)[0]
    return _plain_text(text) and bool(generator) and _file_name(generator)


def _relative_path(text: str) -> bool:
    """A path inside the run directory: relative, never up (`..`)."""
    where = PurePosixPath(text)
    return _plain_text(text) and "\\" not in text and not where.is_absolute() and \
        ".." not in where.parts


def _number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and \
        math.isfinite(value)


# Checks by meaning; a field's type annotation is checked first.
TEXT = Check(_plain_text, f"text without control characters (at most {MAX_NAME})")
LABEL = Check(lambda v: _plain_text(v, empty=False),
              f"a name without control characters (1 to {MAX_NAME} characters)")
NAME = Check(_pipeline_name, "a pipeline's name (its generator's name without '/', then "
             "':' and its parameters; no control characters)")
FILE_NAME = Check(_file_name, "a bare file name (no '/', no control characters)")
TOKEN = Check(lambda v: bool(v) and _file_name(v), "a bare name (no '/', no control "
              "characters)")
RELATIVE_PATH = Check(_relative_path, "a path inside the run directory (relative, no '..', "
                      "no control characters)")
POSITIVE = Check(lambda v: 1 <= v <= MAX_INT, f"a positive integer (at most {MAX_INT})")
COUNT = Check(lambda v: 0 <= v <= MAX_INT, f"a count (0 to {MAX_INT})")
ROUND = Check(lambda v: 1 <= v <= MAX_INT, "a round number (1 or more)")
SEED = Check(lambda v: 0 <= v < 2**63, "a seed (0 to 2**63 - 1)")
PERCENT = Check(lambda v: 0 <= v <= 100, "a percentage (0 to 100)")
MS = Check(lambda v: v >= 0, "a time in ms (0 or more)")
SECONDS = Check(lambda v: v >= 0, "a duration in seconds (0 or more)")
RATIO = Check(lambda v: v > 0, "a ratio (above 0)")
SHARE = Check(lambda v: 0 <= v <= 1, "a share (0 to 1)")
TIMES_MS = Check(lambda v: all(x is None or x >= 0 for x in v),
                 "a list of times in ms (each 0 or more, or null)")
COUNTS = Check(lambda v: all(_plain_text(k) and 0 <= n <= MAX_INT for k, n in v.items()),
               "counts by name (each 0 or more)")
NAMES = Check(lambda v: all(_pipeline_name(k) for k in v),
              "an object keyed by pipelines' names (no control characters; no '/' in a "
              "generator's name)")
LABELS = Check(lambda v: all(_plain_text(k) for k in v),
               "a list or object of names without control characters")


def _figures(v: dict) -> bool:
    """A campaign's figures of one pipeline in a round (farm.tuning.steps._batch_record)."""
    return all(isinstance(f, dict)
               and all(f.get(k) is None or (_number(f[k]) and f[k] >= 0)
                       for k in ("beam_ms", "best_ms", "best_so_far_ms"))
               and all(f.get(k) is None or (isinstance(f[k], int)
                                            and not isinstance(f[k], bool)
                                            and 0 <= f[k] <= MAX_INT)
                       for k in ("ok", "candidates"))
               and (f.get("estimate") is None or _number(f["estimate"]))
               and (f.get("why") is None or _plain_text(f["why"]))
               for f in v.values()) and NAMES.ok(v)


PIPELINE_FIGURES = Check(_figures, "per pipeline name, its figures (beam_ms, best_ms, "
                         "best_so_far_ms: times in ms or null; ok, candidates: counts; "
                         "estimate: a number or null; why: text)")


_hints: dict[type, dict[str, Any]] = {}


def hints(cls: type) -> dict[str, Any]:
    """A record class's field types, as real types (its annotations are strings)."""
    found = _hints.get(cls)
    if found is None:
        found = _hints[cls] = typing.get_type_hints(cls)
    return found


def conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON value (or the typed value made of it) is of type `hint`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or hint is object:
        return True
    if origin is UnionType or origin is typing.Union:
        return any(conforms(value, arm) for arm in args)
    if hint is NoneType:
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return _number(value)
    if hint is str:
        return isinstance(value, str) and not any(
            unicodedata.category(c) == "Cs" for c in value)  # not writable as UTF-8
    if hint is list or origin is list:
        return isinstance(value, list) and (not args or all(conforms(v, args[0])
                                                            for v in value))
    if hint is dict or origin is dict:
        return isinstance(value, dict) and (not args or all(
            conforms(k, args[0]) and conforms(v, args[1]) for k, v in value.items()))
    return isinstance(value, hint) if isinstance(hint, type) else True


def describe(hint: Any) -> str:
    """`hint` in words, for a message: "an integer or null"."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is UnionType or origin is typing.Union:
        return " or ".join(describe(arm) for arm in args)
    if hint is NoneType:
        return "null"
    if origin is list or hint is list:
        return "a list" + (f" (each {describe(args[0])})" if args else "")
    if origin is dict or hint is dict:
        return "an object" + (f" (each value {describe(args[1])})" if args else "")
    words = {bool: "true or false", int: "an integer", float: "a finite number",
             str: "a string"}
    return words.get(hint, "an object")


def check(field: str, value: Any, hint: Any, meaning: Check | None) -> None:
    """A RecordError naming `field` unless `value` is of type `hint` and, when it is not
    None, means what `meaning` says."""
    if not conforms(value, hint):
        raise RecordError(f"is {shown(value)}, not {describe(hint)}", field)
    if meaning is not None and value is not None and not meaning.ok(value):
        raise RecordError(f"is {shown(value)}, not {meaning.wanted}", field)
