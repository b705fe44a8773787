"""`plan`: read each version (GetModelVersion) and say, field by field, what `run` would change.

Sends no PUT. Reads go through the same retry policy and adaptive rate as `run`, with the same
concurrency. Each version is classed as a change, a no-op, refused (the API will refuse it: a
new ApprovalStatus on a version already Approved or Rejected), missing (no such version), or
an error (the read failed after its retries).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import anyio

from .client import PaiClient
from .errors import RemoteError, TransportError, Verdict, classify
from .retry import RetryPolicy
from .schema import Job
from .throttle import AdaptiveRate

__all__ = ["FieldChange", "PlanEntry", "PlanTotals", "plan"]

FINAL_STATUSES = frozenset({"Approved", "Rejected"})
KINDS = ("change", "no-op", "refused", "missing", "error")


@dataclass(frozen=True, slots=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True, slots=True)
class PlanEntry:
    job: Job
    kind: str  # one of KINDS
    changes: tuple[FieldChange, ...] = ()
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.job.model_id,
            "version_name": self.job.version_name,
            "source": self.job.source,
            "kind": self.kind,
            "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in self.changes],
            "reason": self.reason,
        }


@dataclass(slots=True)
class PlanTotals:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    aborted: str | None = None


def compare(job: Job, current: dict[str, Any]) -> PlanEntry:
    """What a PUT of `job.body` would do to a version whose fields are `current`."""
    changes = tuple(
        FieldChange(name, current.get(name), value)
        for name, value in job.body.items()
        if current.get(name) != value
    )
    if not changes:
        return PlanEntry(job, "no-op")
    status = current.get("ApprovalStatus")
    if any(c.field == "ApprovalStatus" for c in changes) and status in FINAL_STATUSES:
        return PlanEntry(
            job,
            "refused",
            changes,
            f"ApprovalStatus is already {status}: the API refuses to change it",
        )
    return PlanEntry(job, "change", changes)


async def plan(
    jobs: Iterable[Job],
    /,
    *,
    client: PaiClient,
    on_entry: Callable[[PlanEntry], None],
    concurrency: int = 16,
    policy: RetryPolicy | None = None,
    limiter: AdaptiveRate | None = None,
) -> PlanTotals:
    """Read every job's version and hand each PlanEntry to `on_entry` as its read completes.
    Credentials rejected stop the reads (`PlanTotals.aborted` says why)."""
    policy = policy or RetryPolicy()
    limiter = limiter or AdaptiveRate()
    totals = PlanTotals()
    source: Iterator[Job] = iter(jobs)

    async def read(job: Job) -> PlanEntry:
        async def attempt() -> dict[str, Any]:
            await limiter.wait()
            try:
                response = await client.get_version(job.model_id, job.version_name)
            except RemoteError as error:
                if classify(error) is Verdict.THROTTLED:
                    limiter.throttled(error.retry_after)
                raise
            limiter.succeeded()
            return response.data

        try:
            return compare(job, await policy.call(attempt))
        except RemoteError as error:
            if classify(error) is Verdict.ABORT:
                totals.aborted = str(error)
            elif error.status == 404:
                return PlanEntry(job, "missing", reason=f"{error.code}: {error.message}")
            return PlanEntry(job, "error", reason=str(error))
        except TransportError as error:
            return PlanEntry(job, "error", reason=str(error))

    async def worker() -> None:
        while totals.aborted is None:
            job = next(source, None)
            if job is None:
                return
            entry = await read(job)
            totals.counts[entry.kind] += 1
            on_entry(entry)

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return totals
