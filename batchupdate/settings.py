"""A run's settings: one frozen value, validated once, passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .client import endpoint_for
from .errors import ConfigurationError, UsageError
from .ledger import DEFAULT_LEDGER

__all__ = ["Settings"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Everything a run needs to know, as `batchupdate run`'s options say it."""

    endpoint: str | None = None  # default: https://aiworkspace.<region>.aliyuncs.com
    region: str | None = None
    profile: str | None = None
    ledger: Path | None = Path(DEFAULT_LEDGER)  # None: write no ledger (library use, dry runs)
    concurrency: int = 16
    rate: float | None = None  # a cap in requests per second; None: adaptive only
    adaptive: bool = True
    max_attempts: int = 6
    timeout: float = 30.0
    force: bool = False
    max_failures: int | None = None
    deadline: float | None = None
    snapshot: bool = False
    backoff_base: float = 0.5
    backoff_cap: float = 20.0
    grace: float = 30.0  # seconds in-flight requests get to finish after a stop signal
    fsync_interval: float = 1.0
    learn_rate: bool = True  # keep the learned rate beside the ledger and start from it

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise UsageError("--concurrency must be at least 1")
        if self.max_attempts < 1:
            raise UsageError("--max-attempts must be at least 1")
        for name in ("rate", "deadline"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UsageError(f"--{name} must be positive")
        if not self.timeout > 0:
            raise UsageError("--timeout must be positive")
        if self.max_failures is not None and self.max_failures < 1:
            raise UsageError("--max-failures must be at least 1")

    def resolved_endpoint(self) -> str:
        if self.endpoint:
            return self.endpoint
        if self.region:
            return endpoint_for(self.region)
        raise ConfigurationError(
            "no region: pass --region (e.g. cn-hangzhou), set ALIBABA_CLOUD_REGION_ID, or give --endpoint"
        )
