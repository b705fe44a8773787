"""`undo`: the job rows that restore what `run --snapshot` recorded in a ledger's `before`.

ApprovalStatus cannot be restored (the API makes it one-way): such fields are left out, with a
warning naming each version. A field that was empty before cannot be emptied again through
UpdateModelVersion (a field left out is not changed): left out too, with a warning.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .ledger import read_ledger

__all__ = ["UndoPlan", "last_snapshot_run", "undo_rows"]


@dataclass(slots=True)
class UndoPlan:
    run_id: str | None
    warnings: list[str] = field(default_factory=list)
    rows: int = 0


def last_snapshot_run(path: str | os.PathLike[str]) -> str | None:
    """The newest run in the ledger that recorded `before` values."""
    last = None
    for record in read_ledger(path):
        if record.get("status") == "succeeded" and isinstance(record.get("before"), dict):
            last = record.get("run_id")
    return str(last) if last is not None else None


def undo_rows(path: str | os.PathLike[str], plan: UndoPlan) -> Iterator[dict[str, Any]]:
    """Rows for `plan.run_id` (see `last_snapshot_run`); warnings are collected in `plan`."""
    for record in read_ledger(path):
        if record.get("run_id") != plan.run_id or record.get("status") != "succeeded":
            continue
        before, body = record.get("before"), record.get("body")
        if not isinstance(before, dict) or not isinstance(body, dict):
            continue
        where = f"{record.get('model_id')}/{record.get('version_name')}"
        row: dict[str, Any] = {"ModelId": record["model_id"], "VersionName": record["version_name"]}
        for name in body:
            old = before.get(name)
            if name == "ApprovalStatus":
                if old != body[name]:
                    plan.warnings.append(
                        f"{where}: ApprovalStatus cannot be restored to {old!r} (it is one-way); left out"
                    )
                continue
            if old is None:
                plan.warnings.append(
                    f"{where}: {name} was empty before and cannot be emptied again; left out"
                )
                continue
            row[name] = old
        if len(row) > 2:
            plan.rows += 1
            yield row
