"""The farm's one exception tree.

Library code raises these; only `farm.cli` turns them into a message and an
exit code. A message names the culprit and says how to fix it.
"""


class FarmError(Exception):
    """Base of every error the farm raises on purpose."""

    exit_code = 1


class UserError(FarmError):
    """Bad usage, bad input or a missing prerequisite the user must fix (exit 2)."""

    exit_code = 2


class BadInput(UserError):
    """An argument, file or setting the farm cannot use."""


class MissingPrerequisite(UserError):
    """A tool, library or device the work needs is not there."""


class WeightsError(BadInput):
    """A cost-model weights file is corrupt, foreign or unreadable."""


class BenchmarkError(BadInput):
    """A benchmark name or generator file the farm cannot load."""


class RunDirError(BadInput):
    """A run directory that cannot be used as asked (locked, incompatible, unwritable)."""


class DatasetError(BadInput):
    """A corrupt or foreign file in a run's sample dataset."""


class WorkFailed(FarmError):
    """The work itself failed (exit 1): a compile, a run, a cluster."""


class DiskFull(WorkFailed):
    """A write ran out of space (or quota); what was committed before it is intact."""


class Interrupted(FarmError):
    """The user pressed Ctrl-C; committed work is kept."""

    exit_code = 130
