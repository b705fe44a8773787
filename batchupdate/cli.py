"""The command line: parse options, call the library, render, map errors to exit codes.

No logic a Python caller would need lives here; see `batchupdate.run` and friends.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import orjson

from ._version import __version__
from .errors import (
    BatchUpdateError,
    ConfigurationError,
    InputError,
    JobFileError,
    LedgerLockedError,
    UsageError,
)
from .jobs import open_sources
from .jobset import JobSet
from .schema import parse_assignment

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_ABORTED = 3
EXIT_DEADLINE = 4
EXIT_LOCKED = 75
EXIT_SIGINT = 130

ERROR_CAP = 50

_DESCRIPTION = """\
Apply Alibaba Cloud PAI UpdateModelVersion to many model versions at once, from CSV or JSONL
job files: validated first, sent concurrently, throttled, retried, and recorded in a ledger.

examples:
  batchupdate validate jobs/approve.csv
  batchupdate run jobs/approve.csv --simulate
  batchupdate run pending.csv --set ApprovalStatus=Approved --region cn-hangzhou
  batchupdate report --failed-jobs retry.jsonl
"""


def env(name: str, default: Any = None) -> Any:
    return os.environ.get(f"BATCHUPDATE_{name}", default)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors exit 2 through our own path (a line, no traceback)."""

    def error(self, message: str) -> Any:
        raise UsageError(f"{self.prog}: {message}")


def add_job_inputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("jobfiles", nargs="+", metavar="JOBFILE", help="CSV or JSONL job files; - for stdin")
    parser.add_argument(
        "--format",
        choices=("csv", "jsonl"),
        help="format of the job files (needed for -, standard input)",
    )
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="give every row this field (object fields take JSON text); overrides the files",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="batchupdate",
        description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"batchupdate {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    validate = commands.add_parser(
        "validate",
        help="check job files against the API's rules; send nothing",
        description="Check every row of the job files against UpdateModelVersion's documented "
        "rules and print each problem as path:line: Field: message. Sends nothing. "
        "Exit 0 when all rows are valid, 2 otherwise.",
    )
    add_job_inputs(validate)
    validate.add_argument("--json", action="store_true", help="print the result as one JSON object")
    validate.set_defaults(handler=cmd_validate)
    _add_more_commands(commands)
    return parser


def _add_more_commands(commands: Any) -> None:
    """Commands that talk to the API; defined in their own section below."""
    from . import cli_run

    cli_run.add_commands(commands)


def parse_overrides(assignments: Sequence[str]) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    for text in assignments:
        try:
            name, value = parse_assignment(text)
        except ValueError as exc:
            raise UsageError(f"--set {exc}") from None
        overrides[name] = value
    return overrides


def load_jobset(args: argparse.Namespace) -> JobSet:
    overrides = parse_overrides(args.assignments)
    return JobSet(open_sources(args.jobfiles, args.format), overrides)


def check_jobset(jobset: JobSet, out: TextIO, *, as_json: bool = False) -> list[JobFileError]:
    """Run pass one; print errors as they are found (up to the cap). Returns those printed."""
    shown: list[JobFileError] = []
    for error in jobset.check():
        if len(shown) < ERROR_CAP:
            shown.append(error)
            if not as_json:
                print(error, file=out)
    if jobset.error_count > len(shown) and not as_json:
        print(f"... and {jobset.error_count - len(shown):,} more errors", file=out)
    return shown


def cmd_validate(args: argparse.Namespace) -> int:
    jobset = load_jobset(args)
    shown = check_jobset(jobset, sys.stdout, as_json=args.json)
    if args.json:
        report = {
            "valid": jobset.error_count == 0,
            "rows": jobset.rows,
            "versions": jobset.distinct,
            "duplicates": jobset.duplicates,
            "error_count": jobset.error_count,
            "errors": [e.as_dict() for e in shown],
        }
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
    elif jobset.error_count == 0:
        dup = f", {jobset.duplicates:,} identical duplicates applied once" if jobset.duplicates else ""
        print(f"ok: {jobset.rows:,} rows, {jobset.distinct:,} versions{dup}; all valid")
    else:
        print(
            f"invalid: {jobset.error_count:,} errors in {jobset.rows:,} rows; nothing would be sent",
            file=sys.stdout,
        )
    return EXIT_OK if jobset.error_count == 0 else EXIT_USAGE


def _ours(error: BaseException) -> BatchUpdateError | None:
    """Our error, also from inside a task group's ExceptionGroup."""
    if isinstance(error, BatchUpdateError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = _ours(inner)
            if found is not None:
                return found
    return None


def _report(error: BatchUpdateError) -> int:
    text = str(error)
    if not text.startswith("batchupdate"):
        text = f"batchupdate: {text}"
    if isinstance(error, LedgerLockedError):
        print(f"{text}; wait for it to finish, or use another --ledger", file=sys.stderr)
        return EXIT_LOCKED
    print(text, file=sys.stderr)
    if isinstance(error, InputError | ConfigurationError):
        return EXIT_USAGE
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return EXIT_USAGE
        code: int = args.handler(args)
        return code
    except BrokenPipeError:
        return EXIT_FAILED
    except KeyboardInterrupt:  # before any request went out (a run handles its own signals)
        print("\nbatchupdate: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except (BatchUpdateError, BaseExceptionGroup) as error:
        ours = _ours(error)
        if ours is None:
            raise
        return _report(ours)
