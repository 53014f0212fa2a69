"""The farm's one exception tree.

Library code raises these; only `farm.cli` turns them into a message and an
exit code. A message names the culprit and says how to fix it.
"""


class FarmError(Exception):
    """Base of every error the farm raises on purpose.

    `cause` is a short, stable key naming what failed (a failed row's `cause`, the report's
    groups). `lasting`: a prerequisite of a device or node that will not fix itself
    (farm.faults): raised where a candidate is compiled or timed, it takes that device or
    node out of the run instead of failing the candidate. A raiser may name a finer cause:
    `MissingPrerequisite("...", cause="compiler")` (it survives pickling: an exception's
    __dict__ travels with it).
    """

    exit_code = 1
    lasting = False
    cause = "error"

    def __init__(self, *args: object, cause: str | None = None):
        super().__init__(*args)
        if cause is not None:
            self.cause = cause


class UserError(FarmError):
    """Bad usage, bad input or a missing prerequisite the user must fix (exit 2)."""

    exit_code = 2


class BadInput(UserError):
    """An argument, file or setting the farm cannot use."""


class MissingPrerequisite(UserError):
    """A tool, library or device the work needs is not there."""

    lasting = True
    cause = "prerequisite"


class WeightsError(BadInput):
    """A cost-model weights file is corrupt, foreign or unreadable."""

    lasting = True  # on a worker: the run's weights file became unreadable there
    cause = "weights"


class BenchmarkError(BadInput):
    """A benchmark name or generator file the farm cannot load."""


class RunDirError(BadInput):
    """A run directory that cannot be used as asked (locked, incompatible, unwritable)."""


class DatasetError(BadInput):
    """A corrupt or foreign file in a run's sample dataset."""


class WorkFailed(FarmError):
    """The work itself failed (exit 1): a compile, a run, a cluster."""


class RoundFailed(WorkFailed):
    """Every candidate of a round failed for one cause: a fault that fails each candidate
    (a broken linker, a generator whose code never compiles, a device that runs nothing)
    would fail every round the same way."""


class DiskFull(WorkFailed):
    """A write ran out of space (or quota); what was committed before it is intact."""

    lasting = True
    cause = "disk-full"


class LastingFault(FarmError):
    """No device is left: lasting faults (farm.faults.Fault) took every one out. Exit 2
    when one is a prerequisite to fix, 1 when all are full disks (as DiskFull)."""

    def __init__(self, message: str, exit_code: int, cause: str):
        super().__init__(message, cause=cause)
        self.exit_code = exit_code

    def __reduce__(self):  # pickled with its exit code (it crosses threads and Ray)
        return (type(self), (str(self), self.exit_code, self.cause))


class Interrupted(FarmError):
    """The user pressed Ctrl-C; committed work is kept."""

    exit_code = 130
