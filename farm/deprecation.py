"""Renamed fields that keep working: the old name reads the new one, with a warning."""

from __future__ import annotations

import warnings


def renamed(old: str, new: str) -> property:
    """A read-only property for the old name `old` of a field now called `new`: it gives
    the field's value and warns (DeprecationWarning) once per call site."""

    def get(self):
        warnings.warn(f"{type(self).__name__}.{old} is deprecated; use .{new}",
                      DeprecationWarning, stacklevel=2)
        return getattr(self, new)

    return property(get, doc=f"Deprecated: use .{new}.")
