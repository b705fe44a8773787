"""`report`: what a ledger says, per run; and the failed jobs as a job file `run` accepts.

Library functions only; the CLI prints.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .ledger import done_key, read_ledger

__all__ = ["LedgerReport", "RunReport", "failed_jobs", "summarize"]


@dataclass(slots=True)
class RunReport:
    run_id: str
    first_started: str | None = None
    last_finished: str | None = None
    by_status: collections.Counter[str] = field(default_factory=collections.Counter)
    attempts: int = 0
    retries: int = 0
    error_codes: collections.Counter[str] = field(default_factory=collections.Counter)
    error_samples: dict[str, str | None] = field(default_factory=dict)
    slowest: list[tuple[float, str, str, str | None]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "first_started": self.first_started,
            "last_finished": self.last_finished,
            "by_status": dict(self.by_status),
            "attempts": self.attempts,
            "retries": self.retries,
            "error_codes": [
                {"code": c, "count": n, "sample_request_id": self.error_samples.get(c)}
                for c, n in self.error_codes.most_common()
            ],
            "slowest": [
                {"seconds": round(s, 3), "model_id": m, "version_name": v, "request_id": r}
                for s, m, v, r in sorted(self.slowest, reverse=True)
            ],
        }


@dataclass(slots=True)
class LedgerReport:
    path: str
    runs: dict[str, RunReport] = field(default_factory=dict)
    records: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ledger": self.path,
            "records": self.records,
            "runs": [r.as_dict() for r in self.runs.values()],
        }


def _seconds(record: dict[str, Any]) -> float:
    try:
        start = datetime.fromisoformat(str(record["started_at"]).replace("Z", "+00:00"))
        end = datetime.fromisoformat(str(record["finished_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 0.0
    return (end - start).total_seconds()


def summarize(path: str | os.PathLike[str], *, run_id: str | None = None, slowest: int = 5) -> LedgerReport:
    """Counts by status per run, error codes with sample RequestIds, slowest versions, retries."""
    report = LedgerReport(str(path))
    for record in read_ledger(path):
        rid = str(record.get("run_id"))
        if run_id is not None and rid != run_id:
            continue
        report.records += 1
        run = report.runs.get(rid)
        if run is None:
            run = report.runs[rid] = RunReport(rid)
        started, finished = record.get("started_at"), record.get("finished_at")
        if started and (run.first_started is None or started < run.first_started):
            run.first_started = started
        if finished and (run.last_finished is None or finished > run.last_finished):
            run.last_finished = finished
        run.by_status[str(record.get("status"))] += 1
        attempts = int(record.get("attempts") or 0)
        run.attempts += attempts
        run.retries += max(0, attempts - 1)
        code = record.get("error_code")
        if record.get("status") == "failed" and code:
            run.error_codes[code] += 1
            run.error_samples.setdefault(code, record.get("request_id"))
        entry = (
            _seconds(record),
            str(record.get("model_id")),
            str(record.get("version_name")),
            record.get("request_id"),
        )
        if len(run.slowest) < slowest:
            run.slowest.append(entry)
        elif entry[0] > min(run.slowest)[0]:
            run.slowest.remove(min(run.slowest))
            run.slowest.append(entry)
    return report


def _key(record: dict[str, Any], run_id: str | None) -> int | None:
    """The resume key of a record (of `run_id`, when given), or None."""
    if run_id is not None and record.get("run_id") != run_id:
        return None
    try:
        return done_key(record["model_id"], record["version_name"], record["fingerprint"])
    except (KeyError, TypeError):
        return None


def failed_jobs(path: str | os.PathLike[str], *, run_id: str | None = None) -> Iterator[dict[str, Any]]:
    """Job rows for every (version, body) whose latest ledger line is `failed`: a JSONL job file
    that `batchupdate run` accepts as is. Two passes over the ledger; only compact keys are held."""
    latest: dict[int, bool] = {}
    for record in read_ledger(path):
        key = _key(record, run_id)
        if key is not None:
            latest[key] = record.get("status") == "failed"
    written: set[int] = set()
    for record in read_ledger(path):
        key = _key(record, run_id)
        if (
            key is not None
            and latest.get(key)
            and key not in written
            and isinstance(record.get("body"), dict)
        ):
            written.add(key)
            yield {"ModelId": record["model_id"], "VersionName": record["version_name"], **record["body"]}
