"""The exception tree, split by who is at fault.

    BatchUpdateError
    ├── InputError                 the user's input: exit 2, nothing sent
    │   ├── JobFileError           one row or one file: carries source (path:line), field, message
    │   └── UsageError             an option or argument (--set, --format, ...)
    ├── ConfigurationError         the environment: no credentials, refused endpoint: exit 2
    ├── LedgerLockedError          another run holds the ledger: exit 75
    ├── RemoteError                the server answered with an error: status, Code, Message,
    │                              RequestId, retry-after hint
    └── TransportError             no usable answer came back
        ├── ConnectError           could not connect, or the connection broke mid-request
        │   └── CertificateError   TLS verification failed (aborts the run: retrying cannot help)
        ├── RequestTimeout         the attempt's time limit passed
        └── BadResponseError       an answer that is not the JSON the API speaks (an HTML 502 page)

`classify()` says what to do with any of them: retry, throttled (retry and slow down), abort the
run (credentials rejected), or fail the job (other 4xx). It decides by `Code` first, status
second: Alibaba's gateway sends `Throttling.User` as 400 and an unknown AccessKey as 404.
"""

from __future__ import annotations

import enum

__all__ = [
    "BadResponseError",
    "BatchUpdateError",
    "CertificateError",
    "ConfigurationError",
    "ConnectError",
    "InputError",
    "JobFileError",
    "LedgerLockedError",
    "RemoteError",
    "RequestTimeout",
    "TransportError",
    "UsageError",
    "Verdict",
    "classify",
]


class BatchUpdateError(Exception):
    """The root of everything batchupdate raises on purpose."""


class InputError(BatchUpdateError):
    """Bad input from the user: a job file, a row, an option."""


class JobFileError(InputError):
    """A problem at one place of a job file: `path:line: Field: message`."""

    def __init__(self, source: str, field: str | None, message: str) -> None:
        self.source = source
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.field:
            return f"{self.source}: {self.field}: {self.message}"
        return f"{self.source}: {self.message}"

    def as_dict(self) -> dict[str, str | None]:
        return {"source": self.source, "field": self.field, "message": self.message}


class UsageError(InputError):
    """A bad option or argument."""


class ConfigurationError(BatchUpdateError):
    """The environment is not set up: credentials missing, endpoint refused."""


class LedgerLockedError(BatchUpdateError):
    """Another run holds the ledger's lock."""

    def __init__(self, path: str, holder: str) -> None:
        self.path = path
        self.holder = holder
        super().__init__(f"{path}: another run holds this ledger ({holder})")


class RemoteError(BatchUpdateError):
    """The server answered with an error status."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str | None,
        request_id: str | None,
        *,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        #: seconds the server asked us to wait (x-acs-retry-after ms, or Retry-After s)
        self.retry_after = retry_after
        super().__init__(str(self))

    def __str__(self) -> str:
        text = f"HTTP {self.status} {self.code or '(no code)'}"
        if self.message:
            text += f": {self.message}"
        if self.request_id:
            text += f" (RequestId {self.request_id})"
        return text


class TransportError(BatchUpdateError):
    """No usable answer: connection, timeout, or a body that is not the API's JSON."""

    #: what goes in the ledger's error_code for this kind of failure
    code = "TransportError"
    status: int | None = None
    request_id: str | None = None
    retry_after: float | None = None

    @property
    def message(self) -> str:
        return str(self)


class ConnectError(TransportError):
    code = "ConnectionError"


class CertificateError(ConnectError):
    """TLS verification failed: retrying cannot help, so the run stops."""

    code = "CertificateError"


class RequestTimeout(TransportError):
    code = "Timeout"


class BadResponseError(TransportError):
    code = "BadResponse"

    def __init__(self, message: str, *, status: int, request_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.request_id = request_id


class Verdict(enum.Enum):
    RETRY = "retry"
    THROTTLED = "throttled"
    ABORT = "abort"
    FAIL = "fail"


_THROTTLING_CODES = frozenset({"Throttling", "Throttling.User", "Throttling.Api"})
_SERVER_FAULT_CODES = frozenset({"ServiceUnavailable", "InternalError"})
_CREDENTIAL_CODES = frozenset({"SignatureDoesNotMatch", "IncompleteSignature"})
_PERMISSION_CODES = frozenset({"Forbidden.RAM", "NoPermission", "Forbidden"})
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


def classify(error: BaseException) -> Verdict:
    """What to do after `error`: decided by Code first, HTTP status second."""
    if isinstance(error, CertificateError):
        return Verdict.ABORT
    if isinstance(error, TransportError):
        return Verdict.RETRY
    if not isinstance(error, RemoteError):
        return Verdict.FAIL
    code = error.code or ""
    if code in _THROTTLING_CODES or code.startswith("Throttling"):
        return Verdict.THROTTLED
    if code == "SignatureNonceUsed":
        return Verdict.RETRY  # a transparent re-send repeated our nonce: re-sign and retry
    if (
        code in _CREDENTIAL_CODES
        or code.startswith("InvalidAccessKeyId")
        or code.startswith("InvalidTimeStamp")
        or code.startswith("InvalidSecurityToken")
    ):
        return Verdict.ABORT
    if error.status == 403 and (code in _PERMISSION_CODES or code.startswith("Forbidden")):
        return Verdict.ABORT
    if code in _SERVER_FAULT_CODES:
        return Verdict.RETRY
    if error.status == 429:
        return Verdict.THROTTLED
    if error.status in _RETRY_STATUSES:
        return Verdict.RETRY
    return Verdict.FAIL


def abort_hint(error: RemoteError) -> str:
    """The next step for a credentials failure, for the final message."""
    code = error.code or ""
    if code.startswith("InvalidTimeStamp"):
        return "the request time was rejected: fix this machine's clock (it must be within 15 minutes of UTC)"
    if code.startswith("InvalidAccessKeyId"):
        return "the AccessKey is unknown or inactive: check ALIBABA_CLOUD_ACCESS_KEY_ID or --profile"
    if error.status == 403:
        return "the credentials lack a RAM permission (paimodel:UpdateModelVersion / GetModelVersion)"
    return "the signature was rejected: check the AccessKey secret and that the clock is right"
