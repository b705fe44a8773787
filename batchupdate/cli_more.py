"""The ledger's commands and the registry's read commands: report (and plan, select, undo)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from . import cli
from .errors import UsageError
from .ledger import DEFAULT_LEDGER
from .report import failed_jobs, summarize, write_jsonl

__all__ = ["add_commands"]


def add_commands(
    commands: Any,
    add_job_inputs: Callable[[argparse.ArgumentParser], None],
    positive_int: Callable[[str], int],
    positive_float: Callable[[str], float],
    env: Callable[..., Any],
) -> None:
    r = commands.add_parser(
        "report",
        help="summarize a ledger; write the failed jobs back as a job file",
        description="Summarize a results ledger per run: counts by status, error codes with a "
        "sample RequestId, the slowest versions, retry totals. --failed-jobs writes every job "
        "whose latest outcome is `failed` as a JSONL job file that `run` accepts as is.",
    )
    r.add_argument(
        "--ledger", default=env("LEDGER", DEFAULT_LEDGER), help=f"the ledger (default {DEFAULT_LEDGER})"
    )
    r.add_argument("--run", dest="run_id", help="only this run id")
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    r.add_argument("--failed-jobs", metavar="OUT.jsonl", help="write the failed jobs to this job file")
    r.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    path = Path(args.ledger)
    if not path.exists():
        raise UsageError(f"{path}: no such ledger (pass --ledger PATH)")
    report = summarize(path, run_id=args.run_id)
    if args.json:
        sys.stdout.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(f"{path}: {report.records:,} records in {len(report.runs):,} runs")
        for run in report.runs.values():
            counts = ", ".join(f"{n:,} {status}" for status, n in sorted(run.by_status.items()))
            print(
                f"run {run.run_id} ({run.first_started} .. {run.last_finished}): {counts}; "
                f"{run.attempts:,} attempts, {run.retries:,} retries"
            )
            for code, n in run.error_codes.most_common(10):
                print(f"  {n:>6,} × {code} (e.g. RequestId {run.error_samples.get(code) or '-'})")
            slow = sorted(run.slowest, reverse=True)[:3]
            if slow:
                print("  slowest: " + ", ".join(f"{m}/{v} {s:.2f}s" for s, m, v, _ in slow))
    if args.failed_jobs:
        count = write_jsonl(failed_jobs(path, run_id=args.run_id), args.failed_jobs)
        print(f"wrote {count:,} failed jobs to {args.failed_jobs}", file=sys.stderr)
    return cli.EXIT_OK
