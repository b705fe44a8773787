"""The ledger's commands and the registry's read commands: report (and plan, select, undo)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import orjson

from . import cli
from .errors import UsageError
from .jobs import format_of, write_rows
from .ledger import DEFAULT_LEDGER
from .report import failed_jobs, summarize

__all__ = ["add_commands"]


def add_commands(commands: Any) -> None:
    add_job_inputs, env = cli.add_job_inputs, cli.env
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

    from .cli_run import add_connection_options, add_pool_options

    p = commands.add_parser(
        "plan",
        help="read each version and show, field by field, what run would change",
        description="Read each version (GetModelVersion; nothing is written) and print, per version, "
        "the fields `run` would change (old -> new), and counts of changes, no-ops, changes the API "
        "will refuse (a new ApprovalStatus on an Approved or Rejected version), missing versions and "
        "read errors. Exit 0; 2 on invalid input; 3 when credentials are rejected.",
    )
    add_job_inputs(p)
    add_connection_options(p)
    add_pool_options(p)
    p.add_argument("--json", action="store_true", help="print every entry and the counts as JSON")
    p.add_argument(
        "--only-changes", metavar="OUT", help="write the rows that change something to this job file"
    )
    p.set_defaults(handler=cmd_plan)

    s = commands.add_parser(
        "select",
        help="list a model's versions (every page) as a job file",
        description="List a model's versions with ListModelVersions (every page) and write them as "
        "ModelId,VersionName rows (CSV, or JSONL by the file's extension), for --set to fill. e.g.\n"
        "  batchupdate select --model m-1 --approval-status Pending -o pending.csv\n"
        "  batchupdate run pending.csv --set ApprovalStatus=Approved",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--model", required=True, help="the ModelId")
    s.add_argument("--approval-status", choices=("Pending", "Approved", "Rejected"))
    s.add_argument("--source-type", choices=("Custom", "PAIFlow", "TrainingService"))
    s.add_argument("--label", metavar="K=V", help="only versions with this label")
    s.add_argument("--version-pattern", metavar="GLOB", help="only version names matching, e.g. '2.*'")
    s.add_argument(
        "-o", "--output", default="-", help="job file to write (.csv or .jsonl; default: CSV on stdout)"
    )
    add_connection_options(s)
    add_pool_options(s)
    s.set_defaults(handler=cmd_select, jobfiles=[])

    u = commands.add_parser(
        "undo",
        help="write the job file that restores what `run --snapshot` recorded",
        description="Write the job file that restores the values `run --snapshot` recorded in the "
        "ledger (the newest such run, or --run). ApprovalStatus cannot be restored: those fields are "
        "left out with a warning naming each version. Review the file, then `batchupdate run` it.",
    )
    u.add_argument(
        "--ledger", default=env("LEDGER", DEFAULT_LEDGER), help=f"the ledger (default {DEFAULT_LEDGER})"
    )
    u.add_argument("--run", dest="run_id", help="the run to undo (default: the newest run with snapshots)")
    u.add_argument("-o", "--output", required=True, help="job file to write (.jsonl or .csv)")
    u.set_defaults(handler=cmd_undo)


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
        count = write_rows(failed_jobs(path, run_id=args.run_id), args.failed_jobs)
        print(f"wrote {count:,} failed jobs to {args.failed_jobs}", file=sys.stderr)
    return cli.EXIT_OK


# -- plan ------------------------------------------------------------------------------------


def _short(value: Any, limit: int = 60) -> str:
    text = "(unset)" if value is None else value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cmd_plan(args: argparse.Namespace) -> int:
    import tempfile

    import anyio

    from .cli_run import open_client, prepare_jobs
    from .plan import PlanEntry, plan
    from .retry import RetryPolicy

    with tempfile.TemporaryDirectory(prefix="batchupdate-") as spool:
        jobset = prepare_jobs(args, spool)
        entries: list[dict[str, Any]] = []
        changing: list[dict[str, Any]] = []

        def show(entry: PlanEntry) -> None:
            if args.json:
                entries.append(entry.as_dict())
            else:
                head = f"{entry.job.model_id}/{entry.job.version_name} ({entry.job.source}): {entry.kind}"
                print(head + (f" — {entry.reason}" if entry.reason else ""))
                for change in entry.changes:
                    print(f"    {change.field}: {_short(change.old)} -> {_short(change.new)}")
            if entry.kind == "change" and args.only_changes:
                changing.append(
                    {"ModelId": entry.job.model_id, "VersionName": entry.job.version_name, **entry.job.body}
                )

        async def go() -> Any:
            async with open_client(args, jobset.sources) as client:
                return await plan(
                    jobset.jobs(),
                    client=client,
                    on_entry=show,
                    concurrency=int(args.concurrency),
                    policy=RetryPolicy(max_attempts=int(args.max_attempts)),
                )

        totals = anyio.run(go)
    counts = totals.counts
    if args.json:
        sys.stdout.write(
            orjson.dumps({"entries": entries, "counts": counts, "aborted": totals.aborted}).decode() + "\n"
        )
    else:
        print(
            f"plan: {counts['change']:,} change, {counts['no-op']:,} no-op, {counts['refused']:,} refused, "
            f"{counts['missing']:,} missing, {counts['error']:,} errors; nothing was written"
        )
    if args.only_changes:
        count = write_rows(iter(changing), args.only_changes)
        print(f"wrote {count:,} rows that change something to {args.only_changes}", file=sys.stderr)
    if totals.aborted:
        print(f"batchupdate: aborted: {totals.aborted}", file=sys.stderr)
        return cli.EXIT_ABORTED
    return cli.EXIT_OK


# -- select ----------------------------------------------------------------------------------


def cmd_select(args: argparse.Namespace) -> int:
    import anyio

    from .cli_run import open_client
    from .retry import RetryPolicy
    from .select import select_versions

    if args.output != "-":
        format_of(args.output, None)  # a bad extension is a usage error before any request
    filters = {
        name: value
        for name, value in (
            ("ApprovalStatus", args.approval_status),
            ("SourceType", args.source_type),
            ("Label", args.label),
        )
        if value
    }

    async def go() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        async with open_client(args) as client:
            async for version in select_versions(
                client,
                args.model,
                filters=filters,
                version_pattern=args.version_pattern,
                policy=RetryPolicy(max_attempts=int(args.max_attempts)),
            ):
                rows.append({"ModelId": args.model, "VersionName": version.get("VersionName")})
        return rows

    rows = anyio.run(go)
    count = write_rows(iter(rows), args.output, columns=("ModelId", "VersionName"))
    print(f"selected {count:,} versions of {args.model}", file=sys.stderr)
    return cli.EXIT_OK


# -- undo ------------------------------------------------------------------------------------


def cmd_undo(args: argparse.Namespace) -> int:
    from .undo import UndoPlan, last_snapshot_run, undo_rows

    path = Path(args.ledger)
    if not path.exists():
        raise UsageError(f"{path}: no such ledger (pass --ledger PATH)")
    format_of(args.output, None)
    run_id = args.run_id or last_snapshot_run(path)
    if run_id is None:
        raise UsageError(f"{path}: no run recorded snapshots; run with --snapshot first")
    undo = UndoPlan(run_id)
    count = write_rows(undo_rows(path, undo), args.output)
    for warning in undo.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {count:,} rows restoring run {run_id} to {args.output}", file=sys.stderr)
    return cli.EXIT_OK
