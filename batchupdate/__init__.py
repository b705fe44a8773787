"""batchupdate: apply Alibaba Cloud PAI UpdateModelVersion in bulk, properly.

The public surface is what `__all__` names; everything else is private.
"""

from ._version import __version__
from .errors import (
    BadResponseError,
    BatchUpdateError,
    ConfigurationError,
    ConnectError,
    InputError,
    JobFileError,
    LedgerLockedError,
    RemoteError,
    RequestTimeout,
    TransportError,
    UsageError,
    Verdict,
    classify,
)
from .jobs import JobSource, Row, open_sources, read_rows
from .jobset import JobSet
from .schema import Job, build_job

__all__ = [
    "BadResponseError",
    "BatchUpdateError",
    "ConfigurationError",
    "ConnectError",
    "InputError",
    "Job",
    "JobFileError",
    "JobSet",
    "JobSource",
    "LedgerLockedError",
    "RemoteError",
    "RequestTimeout",
    "Row",
    "TransportError",
    "UsageError",
    "Verdict",
    "__version__",
    "build_job",
    "classify",
    "open_sources",
    "read_rows",
]
