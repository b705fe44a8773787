"""The commands that talk to the API: run, simulator (and the ledger's report).

Parsing and rendering only; the work is in runner.py, simulator.py and report.py.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

import anyio
import orjson

from . import cli
from .client import PaiClient, check_endpoint
from .credentials import DEMO_CREDENTIALS, CredentialProvider, profile_region
from .errors import ConfigurationError, UsageError
from .jobs import JobSource, open_sources
from .jobset import JobSet
from .ledger import DEFAULT_LEDGER
from .runner import Progress, RunStop, Stopper, Summary, run
from .settings import Settings

__all__ = ["add_commands"]

SIMULATE_LEDGER = "batchupdate-ledger.simulate.jsonl"

_RUN_HELP = """\
Apply the jobs: every row of every file is validated first (one bad row: nothing is sent, exit 2),
then each version gets one signed UpdateModelVersion call, concurrently, paced to what the server
allows, retried with backoff, and recorded in the ledger. Re-running the same command sends only
what is not done yet.

exit codes: 0 all done; 1 some jobs failed after retries; 2 invalid input or setup, nothing sent;
3 aborted (credentials rejected, --max-failures); 4 --deadline reached, jobs remain;
75 another run holds the ledger; 130/143 interrupted (SIGINT/SIGTERM) after a clean drain.

The settings options can also come from the environment as BATCHUPDATE_<NAME>
(BATCHUPDATE_ENDPOINT, _REGION, _PROFILE, _LEDGER, _CONCURRENCY, _RATE, _MAX_ATTEMPTS, _TIMEOUT,
_FORCE, _MAX_FAILURES, _DEADLINE, _SNAPSHOT, _CONFIRM_OVER).

examples:
  batchupdate run jobs/approve.csv --simulate
  batchupdate run pending.csv --set ApprovalStatus=Approved --region cn-hangzhou
  batchupdate run nightly.jsonl --deadline 3000 --max-failures 50 --json
"""


def _flag(name: str) -> bool:
    return os.environ.get(f"BATCHUPDATE_{name}", "").lower() in ("1", "true", "yes", "on")


def add_commands(commands: Any) -> None:
    add_job_inputs, positive_int, positive_float, env = (
        cli.add_job_inputs,
        cli.positive_int,
        cli.positive_float,
        cli.env,
    )
    p = commands.add_parser(
        "run",
        help="apply the jobs (validated first; throttled, retried, ledgered)",
        description=_RUN_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_job_inputs(p)
    add_connection_options(p)
    add_pool_options(p)
    p.add_argument(
        "--ledger",
        metavar="PATH",
        default=env("LEDGER"),
        help=f"results ledger (default {DEFAULT_LEDGER}; {SIMULATE_LEDGER} with --simulate)",
    )
    p.add_argument(
        "--rate",
        metavar="R",
        type=positive_float,
        default=env("RATE"),
        help="requests per second at most (default: adaptive to the server's throttling)",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="validate, print each request, send nothing, write no ledger"
    )
    p.add_argument(
        "--force",
        action="store_true",
        default=_flag("FORCE"),
        help="resend jobs that already succeeded in the ledger",
    )
    p.add_argument(
        "--max-failures",
        metavar="N",
        type=positive_int,
        default=env("MAX_FAILURES"),
        help="stop dispatching after N failed jobs (exit 3)",
    )
    p.add_argument(
        "--deadline",
        metavar="S",
        type=positive_float,
        default=env("DEADLINE"),
        help="stop dispatching after S seconds (exit 4); the same command later continues",
    )
    p.add_argument(
        "--snapshot",
        action="store_true",
        default=_flag("SNAPSHOT"),
        help="GET each version first and record the old values (for `undo`)",
    )
    p.add_argument("--json", action="store_true", help="print the final summary as one JSON object on stdout")
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="live progress display (default: on when stderr is a terminal)",
    )
    p.add_argument(
        "--yes",
        action="store_true",
        help="do not ask before setting ApprovalStatus (one-way) on many versions",
    )
    p.add_argument(
        "--confirm-over",
        type=positive_int,
        default=env("CONFIRM_OVER", "100"),
        metavar="N",
        help="on a terminal, ask once before approving/rejecting more than N versions (default 100)",
    )
    p.add_argument("--grace", type=positive_float, default=env("GRACE", "30"), help=argparse.SUPPRESS)
    p.set_defaults(handler=cmd_run)

    s = commands.add_parser(
        "simulator",
        help="serve a local PAI model-registry simulator",
        description="A local simulator of PAI's model registry (UpdateModelVersion, GetModelVersion, "
        "ListModelVersions) that checks signatures and injects faults. It accepts the demo AccessKey "
        "batchupdate-demo (its secret is in the README). Stops on Ctrl-C.",
    )
    s.add_argument("--host", default="127.0.0.1", help="address to bind (loopback only by default)")
    s.add_argument("--port", type=int, default=8080, help="port; 0 picks a free one and prints it")
    s.add_argument(
        "--seed",
        action="append",
        default=[],
        metavar="JOBFILE",
        help="create every version a job file names, at Pending",
    )
    s.add_argument(
        "--state",
        metavar="FILE",
        help='JSON state: {"versions": [{"ModelId": ..., "VersionName": ..., ...}]}',
    )
    s.add_argument("--latency", type=float, default=0.0, help="mean seconds added to each answer")
    s.add_argument("--jitter", type=float, default=0.0, help="standard deviation of the latency")
    s.add_argument(
        "--rate-limit", type=positive_float, help="accepted requests per second; the excess is throttled"
    )
    s.add_argument(
        "--throttle-status",
        type=int,
        choices=(400, 429),
        default=400,
        help="status of throttled answers (default 400, as the gateway)",
    )
    s.add_argument(
        "--no-retry-after", action="store_true", help="send no x-acs-retry-after with throttled answers"
    )
    s.add_argument("--error-rate", type=float, default=0.0, help="share of 503 ServiceUnavailable answers")
    s.add_argument(
        "--reset-rate", type=float, default=0.0, help="share of connections reset without an answer"
    )
    s.add_argument(
        "--hang-rate", type=float, default=0.0, help="share of requests answered only after --hang-seconds"
    )
    s.add_argument("--hang-seconds", type=float, default=120.0, help=argparse.SUPPRESS)
    s.add_argument("--garbage-rate", type=float, default=0.0, help="share of 200 answers with an HTML body")
    s.add_argument("--random-seed", type=int, default=0, help="seed of the fault injection")
    s.add_argument("--no-verify", action="store_true", help=argparse.SUPPRESS)  # benchmarks only
    s.set_defaults(handler=cmd_simulator)

    from . import cli_more

    cli_more.add_commands(commands)


# -- options shared with plan and select ------------------------------------------------------


def add_connection_options(p: argparse.ArgumentParser) -> None:
    env = cli.env
    p.add_argument(
        "--endpoint",
        metavar="URL",
        default=env("ENDPOINT"),
        help="API base URL (default https://aiworkspace.<region>.aliyuncs.com)",
    )
    p.add_argument(
        "--region",
        metavar="ID",
        default=env("REGION"),
        help="region id, e.g. cn-hangzhou (default $ALIBABA_CLOUD_REGION_ID, else the profile's)",
    )
    p.add_argument(
        "--profile",
        metavar="NAME",
        default=env("PROFILE"),
        help="credentials profile in ~/.aliyun/config.json (default: the standard chain)",
    )
    p.add_argument(
        "--simulate",
        action="store_true",
        help="use an in-process simulator seeded from the job files; no credentials needed",
    )


def add_pool_options(p: argparse.ArgumentParser) -> None:
    env, positive_int, positive_float = cli.env, cli.positive_int, cli.positive_float
    p.add_argument(
        "--concurrency",
        metavar="N",
        type=positive_int,
        default=env("CONCURRENCY", "16"),
        help="requests in flight at most (default 16)",
    )
    p.add_argument(
        "--max-attempts",
        metavar="N",
        type=positive_int,
        default=env("MAX_ATTEMPTS", "6"),
        help="attempts per job (default 6)",
    )
    p.add_argument(
        "--timeout",
        metavar="S",
        type=positive_float,
        default=env("TIMEOUT", "30"),
        help="one attempt's time limit in seconds (default 30)",
    )


def resolve_region(args: argparse.Namespace) -> None:
    if args.region is None and not args.endpoint and not args.simulate:
        args.region = os.environ.get("ALIBABA_CLOUD_REGION_ID") or profile_region(args.profile)


@contextlib.asynccontextmanager
async def open_client(
    args: argparse.Namespace, seed: list[JobSource] | None = None
) -> AsyncIterator[PaiClient]:
    """The client `plan` and `select` read through: real (credentials resolved once, off the
    event loop) or, with --simulate, an in-process simulator seeded from the job files."""
    concurrency, timeout = int(args.concurrency), float(args.timeout)
    if args.simulate:
        from .simulator import Simulator

        sim = Simulator()
        sim.seed_from_jobs(seed or [])
        async with (
            sim,
            PaiClient(sim.url, DEMO_CREDENTIALS, concurrency=concurrency, timeout=timeout) as client,
        ):
            yield client
        return
    resolve_region(args)
    endpoint = Settings(endpoint=args.endpoint, region=args.region).resolved_endpoint()
    provider = CredentialProvider(profile=args.profile)
    await provider.resolve()
    async with PaiClient(endpoint, provider, concurrency=concurrency, timeout=timeout) as client:
        yield client


# -- run -------------------------------------------------------------------------------------


def _settings_from(args: argparse.Namespace, ledger: Path | None) -> Settings:
    return Settings(
        endpoint=args.endpoint,
        region=args.region,
        profile=args.profile,
        ledger=ledger,
        concurrency=int(args.concurrency),
        rate=float(args.rate) if args.rate is not None else None,
        max_attempts=int(args.max_attempts),
        timeout=float(args.timeout),
        force=args.force,
        max_failures=int(args.max_failures) if args.max_failures is not None else None,
        deadline=float(args.deadline) if args.deadline is not None else None,
        snapshot=args.snapshot,
        grace=float(args.grace),
    )


def prepare_jobs(args: argparse.Namespace, spool_dir: str) -> JobSet:
    """Read and validate every file (pass one). Invalid input: print and raise (exit 2)."""
    overrides = cli.parse_overrides(args.assignments)
    jobset = JobSet(open_sources(args.jobfiles, args.format, spool_dir), overrides)
    cli.check_jobset(jobset, sys.stderr)
    if jobset.error_count:
        raise UsageError(f"{jobset.error_count:,} errors in the job files; nothing was sent")
    return jobset


def cmd_run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="batchupdate-") as spool:
        jobset = prepare_jobs(args, spool)
        if args.dry_run:
            return _dry_run(jobset)
        resolve_region(args)
        default_ledger = SIMULATE_LEDGER if args.simulate else DEFAULT_LEDGER
        settings = _settings_from(args, Path(args.ledger or default_ledger))
        if not args.simulate:  # a missing region or a refused endpoint: a setup error before anything else
            check_endpoint(settings.resolved_endpoint())
        if not _confirmed(jobset, args):
            print("batchupdate: not confirmed; nothing was sent", file=sys.stderr)
            return cli.EXIT_USAGE
        show_progress = args.progress if args.progress is not None else sys.stderr.isatty()
        summary = anyio.run(_run_async, jobset, settings, args.simulate, show_progress)
    _print_summary(summary, as_json=args.json)
    return summary.exit_code


def _confirmed(jobset: JobSet, args: argparse.Namespace) -> bool:
    """Approval is one-way: on a terminal, ask once before doing it to many versions.
    Without a terminal (cron) the run proceeds, as it was told."""
    if args.yes or args.simulate or jobset.irreversible <= int(args.confirm_over) or not sys.stdin.isatty():
        return True
    sys.stderr.write(
        f"About to set ApprovalStatus to Approved/Rejected on {jobset.irreversible:,} versions. "
        "This cannot be undone (and approval can trigger deployments). Continue? [y/N] "
    )
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def _dry_run(jobset: JobSet) -> int:
    count = 0
    out = sys.stdout
    for job in jobset.jobs():
        path = PaiClient.version_path(job.model_id, job.version_name)
        out.write(f"PUT {path} {job.body_bytes.decode()}\n")
        count += 1
    print(f"dry run: {count:,} requests would be sent; nothing was sent", file=sys.stderr)
    return cli.EXIT_OK


async def _run_async(jobset: JobSet, settings: Settings, simulate: bool, show_progress: bool) -> Summary:
    progress = Progress()
    stopper = Stopper()
    with anyio.CancelScope() as hard:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_signals, stopper, hard)
            tg.start_soon(_render_progress, progress, show_progress)
            try:
                summary = await _run_with(jobset, settings, simulate, progress, stopper)
            finally:
                tg.cancel_scope.cancel()
        return summary
    # a second Ctrl-C cancelled everything at once; the ledger was closed in run()'s finally
    print("batchupdate: cancelled at once; the ledger holds every job that ended", file=sys.stderr)
    raise SystemExit(130)


async def _run_with(
    jobset: JobSet, settings: Settings, simulate: bool, progress: Progress, stopper: Stopper
) -> Summary:
    if not simulate:
        return await run(
            jobset.jobs(),
            settings=settings,
            credentials=CredentialProvider(profile=settings.profile),
            progress=progress,
            stop=stopper,
            total=jobset.distinct,
        )
    from .simulator import Simulator  # not on the runtime path otherwise

    sim = Simulator()
    sim.seed_from_jobs(jobset.sources)
    async with sim:
        simulated = dataclasses.replace(settings, endpoint=sim.url)
        return await run(
            jobset.jobs(),
            settings=simulated,
            credentials=DEMO_CREDENTIALS,
            progress=progress,
            stop=stopper,
            total=jobset.distinct,
        )


async def _watch_signals(stopper: Stopper, hard: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            if stopper.is_set() and signum == signal.SIGINT:
                hard.cancel()
                return
            reason = RunStop.SIGINT if signum == signal.SIGINT else RunStop.SIGTERM
            stopper.request(reason, f"interrupted by {signal.Signals(signum).name}")
            print(
                f"\nbatchupdate: {signal.Signals(signum).name}: no new requests; letting the ones in "
                "flight finish (Ctrl-C again to cancel at once)",
                file=sys.stderr,
            )


def _format_rate(rate: float | None) -> str:
    return "unlimited" if rate is None else f"{rate:,.1f}/s"


def progress_line(p: Progress) -> str:
    elapsed = max(time.monotonic() - p.started, 1e-6)
    done = p.done
    total = p.total
    pace = done / elapsed
    if total:
        left = max(0, total - done - p.skipped)
        eta = f"{left / pace:,.0f}s" if pace > 0 else "?"
        head = f"{done + p.skipped:,}/{total:,}"
    else:
        eta, head = "?", f"{done:,}"
    return (
        f"{head} done · {p.succeeded:,} ok · {p.failed:,} failed · {p.retrying:,} retrying · "
        f"{p.skipped:,} already done · rate {_format_rate(p.rate)} · {pace:,.1f} jobs/s · ETA {eta}"
    )


async def _render_progress(progress: Progress, live: bool) -> None:
    """A live line on a terminal; one plain log line every few seconds otherwise (cron)."""
    interval = 0.2 if live else float(os.environ.get("BATCHUPDATE_LOG_INTERVAL", "5"))
    err: TextIO = sys.stderr
    try:
        while True:
            await anyio.sleep(interval)
            line = progress_line(progress)
            if live:
                err.write("\r\x1b[2K" + line)
            else:
                err.write(time.strftime("%H:%M:%S ") + line + "\n")
            err.flush()
    finally:
        if live:
            err.write("\r\x1b[2K")
            err.flush()


def _print_summary(summary: Summary, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(summary.as_dict()).decode() + "\n")
    err = sys.stderr
    rows = [
        ("succeeded", summary.succeeded),
        ("failed", summary.failed),
        ("already done (skipped)", summary.skipped),
        ("remaining", summary.remaining if summary.remaining is not None else "-"),
        ("attempts sent", summary.attempts),
        ("throttled answers", summary.throttled),
    ]
    lines = [f"batchupdate run {summary.run_id}: " + _verdict(summary)]
    lines += [
        f"  {name:<24}{value:>10,}" if isinstance(value, int) else f"  {name:<24}{value:>10}"
        for name, value in rows
    ]
    lines.append(f"  {'elapsed':<24}{summary.elapsed:>9.1f}s")
    lines.append(f"  {'throughput':<24}{summary.throughput:>8.1f}/s")
    lines.append(f"  {'final rate':<24}{_format_rate(summary.final_rate):>10}")
    if summary.error_codes:
        lines.append("  top errors:")
        for code, count in sorted(summary.error_codes.items(), key=lambda kv: -kv[1])[:5]:
            sample = summary.error_samples.get(code) or "-"
            lines.append(f"    {count:>6,} × {code} (e.g. RequestId {sample})")
    if summary.ledger:
        lines.append(f"  ledger: {summary.ledger}")
    print("\n".join(lines), file=err)


def _verdict(summary: Summary) -> str:
    code = summary.exit_code
    if code == 0:
        return "all jobs done"
    if code == 1:
        return f"{summary.failed:,} jobs failed after retries (see `batchupdate report --failed-jobs retry.jsonl`)"
    if code == 3:
        return f"aborted: {summary.message}"
    if code == 4:
        return f"{summary.message}; {summary.remaining or 0:,} jobs remain: run the same command again to continue"
    return f"{summary.message}; the ledger is flushed, the same command continues"


# -- simulator -------------------------------------------------------------------------------


def cmd_simulator(args: argparse.Namespace) -> int:
    from .simulator import Faults, Simulator

    try:
        faults = Faults(
            latency=args.latency,
            jitter=args.jitter,
            rate_limit=args.rate_limit,
            throttle_status=args.throttle_status,
            retry_after=not args.no_retry_after,
            error_rate=args.error_rate,
            reset_rate=args.reset_rate,
            hang_rate=args.hang_rate,
            hang_seconds=args.hang_seconds,
            garbage_rate=args.garbage_rate,
            seed=args.random_seed,
        )
    except ValueError as exc:
        raise UsageError(f"simulator: {exc}") from None
    sim = Simulator(faults=faults, verify=not args.no_verify)
    if args.seed:
        sim.seed_from_jobs(open_sources(args.seed, None))
    if args.state:
        try:
            sim.load_state(Path(args.state).read_bytes())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--state {args.state}: {exc}") from None

    async def serve() -> None:
        try:
            url = await sim.start(args.host, args.port)
        except OSError as exc:
            raise ConfigurationError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
        versions = sum(len(v) for v in sim.state.values())
        print(f"simulator listening on {url} ({versions:,} versions; AccessKey batchupdate-demo)", flush=True)
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                break
        await sim.stop()
        c = sim.counters
        print(f"simulator stopped: {c.requests:,} requests, {c.throttled:,} throttled", file=sys.stderr)

    anyio.run(serve)
    return cli.EXIT_OK
