"""User-fixable errors.

Every class here means "the input or the configuration is wrong and the user can fix
it": the CLI prints the message on one stderr paragraph and exits with code 2. Anything
else is our bug and exits 1 with a traceback.
"""

__all__ = [
    "CheckpointError",
    "ClusterError",
    "ConfigError",
    "DataError",
    "IndexBuildError",
    "PinsageError",
    "TrainingError",
]


class PinsageError(Exception):
    """Base class: a problem the user can fix; the message says what and how."""

    exit_code = 2  # the CLI's exit status for it


class ConfigError(PinsageError):
    """A config file or option is unknown, mistyped or out of range."""


class DataError(PinsageError):
    """An input file is missing, unreadable or breaks the data contract."""


class CheckpointError(PinsageError):
    """A checkpoint is missing, corrupt or does not match the config or graph."""


class IndexBuildError(PinsageError):
    """A nearest-neighbour index cannot be built from the given embeddings."""


class TrainingError(PinsageError):
    """Training cannot go on: the loss or a gradient is NaN or infinite.

    The step is not applied, so the run's latest checkpoint is the last good one.
    """


class ClusterError(PinsageError):
    """The Ray cluster lost a node or worker mid-job; nothing was published.

    Exit status 75 (EX_TEMPFAIL, "try again later"), so a scheduler can tell a
    rerun that will succeed once the cluster is whole from an input to fix.
    """

    exit_code = 75
