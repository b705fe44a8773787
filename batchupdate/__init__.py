"""batchupdate: apply Alibaba Cloud PAI UpdateModelVersion in bulk, properly.

The public surface is what `__all__` names; everything else is private.
"""

from ._version import __version__
from .client import PaiClient, Response
from .credentials import CredentialProvider, Credentials
from .errors import (
    BadResponseError,
    BatchUpdateError,
    CertificateError,
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
from .ledger import Ledger, Outcome, read_ledger
from .retry import RetryPolicy
from .runner import Progress, RunStop, Stopper, Summary, run
from .schema import Job, build_job
from .settings import Settings
from .simulator import Faults, Simulator
from .throttle import AdaptiveRate

__all__ = [
    "AdaptiveRate",
    "BadResponseError",
    "BatchUpdateError",
    "CertificateError",
    "ConfigurationError",
    "ConnectError",
    "CredentialProvider",
    "Credentials",
    "Faults",
    "InputError",
    "Job",
    "JobFileError",
    "JobSet",
    "JobSource",
    "Ledger",
    "LedgerLockedError",
    "Outcome",
    "PaiClient",
    "Progress",
    "RemoteError",
    "RequestTimeout",
    "Response",
    "RetryPolicy",
    "Row",
    "RunStop",
    "Settings",
    "Simulator",
    "Stopper",
    "Summary",
    "TransportError",
    "UsageError",
    "Verdict",
    "__version__",
    "build_job",
    "classify",
    "open_sources",
    "read_ledger",
    "read_rows",
    "run",
]
