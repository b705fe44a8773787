"""The worker pool: dispatch jobs, send them throttled and retried, record every outcome.

    jobs ──producer──▶ [bounded channel] ──▶ N workers: wait for a slot ▶ PUT ▶ classify ▶ retry
                                                 │ outcomes
                                                 ▼
                                          one ledger writer

A stop (deadline, `--max-failures`, credentials rejected, a signal, `stop.set()`) ends dispatch:
no new job and no new attempt starts; requests already in flight finish (a bounded grace) and
their outcomes are written. Jobs that did not end get no ledger line, so the same command later
sends exactly them.
"""

from __future__ import annotations

import collections
import functools
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from .client import PaiClient, Response
from .credentials import CredentialProvider, Credentials
from .errors import RemoteError, TransportError, Verdict, abort_hint, classify
from .ledger import Ledger, Outcome, done_key, load_learned_rate, read_done_index, save_learned_rate
from .retry import RetryPolicy
from .schema import Job
from .settings import Settings
from .throttle import AdaptiveRate

__all__ = ["Progress", "RunStop", "Stopper", "Summary", "run"]


class RunStop:
    """Why dispatch stopped (the first reason wins)."""

    DEADLINE = "deadline"
    MAX_FAILURES = "max-failures"
    ABORTED = "aborted"
    SIGINT = "sigint"
    SIGTERM = "sigterm"
    STOPPED = "stopped"


@dataclass(slots=True)
class Progress:
    """Live counters of a run; the CLI renders them, a library caller may poll them."""

    total: int | None = None
    skipped: int = 0
    succeeded: int = 0
    failed: int = 0
    in_flight: int = 0
    retrying: int = 0
    attempts: int = 0
    throttled: int = 0
    rate: float | None = None
    started: float = field(default_factory=time.monotonic)
    error_codes: collections.Counter[str] = field(default_factory=collections.Counter)
    error_samples: dict[str, str | None] = field(default_factory=dict)

    @property
    def done(self) -> int:
        return self.succeeded + self.failed


@dataclass(frozen=True, slots=True)
class Summary:
    """How a run ended. `exit_code` follows CONTRACT.md."""

    run_id: str
    exit_code: int
    stop_reason: str | None
    message: str | None
    total: int | None
    succeeded: int
    failed: int
    skipped: int
    remaining: int | None
    attempts: int
    throttled: int
    elapsed: float
    final_rate: float | None
    error_codes: Mapping[str, int]
    error_samples: Mapping[str, str | None]
    ledger: str | None

    @property
    def throughput(self) -> float:
        return self.succeeded / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "exit_code": self.exit_code,
            "stop_reason": self.stop_reason,
            "message": self.message,
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "already_done": self.skipped,
            "remaining": self.remaining,
            "attempts": self.attempts,
            "throttled": self.throttled,
            "elapsed_seconds": round(self.elapsed, 3),
            "throughput_per_second": round(self.throughput, 2),
            "final_rate": None if self.final_rate is None else round(self.final_rate, 2),
            "error_codes": [
                {"code": code, "count": count, "sample_request_id": self.error_samples.get(code)}
                for code, count in sorted(self.error_codes.items(), key=lambda kv: -kv[1])
            ],
            "ledger": self.ledger,
        }


class Stopper:
    """Stops a run's dispatch from outside (a signal handler, an orchestrator's cancel)."""

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.reason: str | None = None
        self.message: str | None = None

    def request(self, reason: str = RunStop.STOPPED, message: str | None = None) -> None:
        """Stop dispatching; in-flight requests finish. The first reason given wins."""
        if self.reason is None:
            self.reason, self.message = reason, message
        self.event.set()

    def is_set(self) -> bool:
        return self.event.is_set()

    async def wait(self) -> None:
        await self.event.wait()


class _Stopped(Exception):
    """Dispatch stopped before this job could take another attempt."""


def utc_now() -> str:
    """ISO 8601 UTC with milliseconds, as the ledger's started_at / finished_at."""
    now = time.time()
    seconds = int(now)
    return f"{_second(seconds)}.{int((now - seconds) * 1000):03d}Z"


@functools.lru_cache(maxsize=4)
def _second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))  # the cost: once a second


_EXIT_FOR_STOP = {
    RunStop.SIGINT: 130,
    RunStop.SIGTERM: 143,
    RunStop.ABORTED: 3,
    RunStop.MAX_FAILURES: 3,
}


class _Run:
    def __init__(
        self,
        settings: Settings,
        client: PaiClient,
        limiter: AdaptiveRate,
        ledger: Ledger | None,
        done: set[int],
        progress: Progress,
        stop: Stopper,
    ) -> None:
        self.settings = settings
        self.client = client
        self.limiter = limiter
        self.ledger = ledger
        self.done = done
        self.progress = progress
        self.stop = stop
        self.run_id = uuid.uuid4().hex
        self.policy = RetryPolicy(
            max_attempts=settings.max_attempts, base=settings.backoff_base, cap=settings.backoff_cap
        )
        self.work_scope: anyio.CancelScope | None = None
        self.unfinished = 0
        self._pending: collections.deque[Outcome] = collections.deque()
        self._wake = anyio.Event()
        self._closed = False

    def halt(self, reason: str, message: str | None = None) -> None:
        self.stop.request(reason, message)

    # -- the pipeline ------------------------------------------------------------------------

    async def work(self, jobs: Iterator[Job] | AsyncIterator[Job], lock: anyio.Lock) -> None:
        """A worker: take the next job not done yet, process it; until jobs or dispatch end.
        Workers share one iterator: a synchronous one needs no lock (next() never awaits)."""
        skip = not self.settings.force and bool(self.done)  # a fresh ledger: nothing to look up
        done, progress = self.done, self.progress
        while not self.stop.is_set():
            if isinstance(jobs, AsyncIterator):
                async with lock:
                    job = await anext(jobs, None)
            else:
                job = next(jobs, None)
            if job is None:
                return
            if skip and done_key(job.model_id, job.version_name, job.fingerprint) in done:
                progress.skipped += 1
                if progress.skipped % 1000 == 0:
                    await anyio.lowlevel.checkpoint()  # a long run of done jobs must not starve the loop
                continue
            await self.process(job)

    def record(self, outcome: Outcome) -> None:
        """Hand one outcome to the ledger writer (never blocks a worker)."""
        self._pending.append(outcome)
        self._wake.set()

    async def write(self) -> None:
        """The one ledger writer: whole lines, one write() per batch, fsync by the ledger's policy."""
        ledger, pending = self.ledger, self._pending
        while True:
            if not pending:
                if self._closed:
                    return
                await self._wake.wait()
                self._wake = anyio.Event()
                continue
            batch = list(pending)
            pending.clear()
            if ledger is not None and ledger.append(batch):
                await anyio.to_thread.run_sync(ledger.sync)

    def close_ledger(self) -> None:
        self._closed = True
        self._wake.set()

    async def drive(
        self, jobs: Iterable[Job] | AsyncIterator[Job], provider: CredentialProvider | None
    ) -> None:
        """The whole run: workers, the ledger writer, and the timers (deadline, grace, refresh)."""
        source: Iterator[Job] | AsyncIterator[Job] = jobs if isinstance(jobs, AsyncIterator) else iter(jobs)
        lock = anyio.Lock()
        async with anyio.create_task_group() as outer:
            outer.start_soon(self.write)
            async with anyio.create_task_group() as aux:
                if provider is not None:
                    aux.start_soon(provider.refresh_forever)
                if self.settings.deadline is not None:
                    aux.start_soon(_deadline, self, self.settings.deadline)
                aux.start_soon(_grace_after_stop, self, self.settings.grace)
                async with anyio.create_task_group() as work:
                    self.work_scope = work.cancel_scope
                    for _ in range(self.settings.concurrency):
                        work.start_soon(self.work, source, lock)
                aux.cancel_scope.cancel()
            self.close_ledger()

    # -- one job ---------------------------------------------------------------------------

    async def process(self, job: Job) -> None:
        progress = self.progress
        started_at = utc_now()
        ids: list[str | None] = []
        before: dict[str, Any] | None = None
        progress.in_flight += 1
        try:
            if self.settings.snapshot:
                response = await self._call(
                    lambda: self.client.get_version(job.model_id, job.version_name), None
                )
                before = {name: response.data.get(name) for name in job.body}
            response = await self._call(
                lambda: self.client.put_version(job.model_id, job.version_name, job.body_bytes), ids
            )
            self._finish(
                job, "succeeded", response.request_id, response.status, None, None, ids, before, started_at
            )
            progress.succeeded += 1
        except _Stopped:
            self.unfinished += 1
        except (RemoteError, TransportError) as error:
            progress.failed += 1
            code = error.code or f"HTTP{error.status}"
            progress.error_codes[code] += 1
            progress.error_samples.setdefault(code, error.request_id)
            self._finish(
                job,
                "failed",
                error.request_id,
                error.status,
                code,
                str(error.message or error),
                ids,
                before,
                started_at,
            )
            verdict = classify(error)
            if verdict is Verdict.ABORT:
                hint = abort_hint(error) if isinstance(error, RemoteError) else "TLS verification failed"
                self.halt(RunStop.ABORTED, f"{error} — {hint}")
            elif self.settings.max_failures and progress.failed >= self.settings.max_failures:
                self.halt(RunStop.MAX_FAILURES, f"--max-failures {self.settings.max_failures} reached")
        finally:
            progress.in_flight -= 1

    async def _call(self, send: Any, ids: list[str | None] | None) -> Response:
        """One call with the retry policy: every attempt waits for a slot and is signed afresh."""
        progress, limiter, stop = self.progress, self.limiter, self.stop
        waiting = False  # between a failed attempt and the next: counted in progress.retrying

        async def attempt() -> Response:
            nonlocal waiting
            if waiting:
                progress.retrying -= 1
                waiting = False
            if stop.is_set():
                raise _Stopped
            await limiter.wait()
            if stop.is_set():
                raise _Stopped
            progress.attempts += 1
            started = time.monotonic()
            try:
                response: Response = await send()
            except RemoteError as error:
                if ids is not None:
                    ids.append(error.request_id)
                if classify(error) is Verdict.THROTTLED:
                    progress.throttled += 1
                    limiter.throttled(error.retry_after)
                raise
            except TransportError:
                if ids is not None:
                    ids.append(None)
                raise
            limiter.succeeded(time.monotonic() - started)
            progress.rate = limiter.rate
            if ids is not None:
                ids.append(response.request_id)
            return response

        def on_retry() -> None:
            nonlocal waiting
            progress.retrying += 1
            waiting = True

        return await self.policy.call(attempt, on_retry=on_retry)

    def _finish(
        self,
        job: Job,
        status: str,
        request_id: str | None,
        http_status: int | None,
        code: str | None,
        message: str | None,
        ids: list[str | None],
        before: dict[str, Any] | None,
        started_at: str,
    ) -> None:
        """Record how a job ended. `ids` has one entry per attempt (None where no answer came)."""
        outcome = Outcome(
            request_id=request_id,
            model_id=job.model_id,
            version_name=job.version_name,
            status=status,
            http_status=http_status,
            error_code=code,
            error_message=message,
            attempts=len(ids),
            attempt_request_ids=list(ids),
            fingerprint=job.fingerprint,
            body=job.body,
            before=before,
            source=job.source,
            run_id=self.run_id,
            started_at=started_at,
            finished_at=utc_now(),
        )
        self.record(outcome)


async def run(
    jobs: Iterable[Job] | AsyncIterator[Job],
    /,
    *,
    settings: Settings,
    client: PaiClient | None = None,
    credentials: CredentialProvider | Credentials | None = None,
    progress: Progress | None = None,
    stop: Stopper | None = None,
    total: int | None = None,
) -> Summary:
    """Apply `jobs` (validated Jobs, e.g. `JobSet.jobs()`) and return how the run ended.

    With no `client`, one is made from `settings` and `credentials` (default: the standard
    chain, resolved once in a worker thread before any request). `stop.request()` stops
    dispatch as a signal would. The ledger named in `settings` is locked for the whole run."""
    progress = progress or Progress()
    progress.total = total
    stop = stop or Stopper()
    ledger = Ledger(settings.ledger, fsync_interval=settings.fsync_interval) if settings.ledger else None
    if ledger is not None:
        ledger.open()  # the lock first: a second run exits before reading anything
    try:
        done = read_done_index(settings.ledger) if settings.ledger and not settings.force else set()
        learned = load_learned_rate(settings.ledger) if settings.ledger and settings.learn_rate else None
        limiter = AdaptiveRate(ceiling=settings.rate, initial=learned, adaptive=settings.adaptive)
        provider: CredentialProvider | None = None
        if client is None:
            if isinstance(credentials, Credentials):
                provider = CredentialProvider(static=credentials)
            else:
                provider = credentials or CredentialProvider(profile=settings.profile)
            await provider.resolve()
            client = PaiClient(
                settings.resolved_endpoint(),
                provider,
                concurrency=settings.concurrency,
                timeout=settings.timeout,
            )
            state = _Run(settings, client, limiter, ledger, done, progress, stop)
            async with client:
                await state.drive(jobs, provider)
        else:
            state = _Run(settings, client, limiter, ledger, done, progress, stop)
            await state.drive(jobs, None)
        if settings.ledger and settings.learn_rate and limiter.rate is not None and limiter.cuts:
            save_learned_rate(settings.ledger, limiter.rate)
    finally:
        if ledger is not None:
            ledger.close()
    elapsed = time.monotonic() - progress.started
    remaining = None
    if total is not None:
        remaining = max(0, total - progress.done - progress.skipped)
    elif state.unfinished:
        remaining = state.unfinished
    reason = stop.reason
    if reason in _EXIT_FOR_STOP:
        code = _EXIT_FOR_STOP[reason]
    elif reason in (RunStop.DEADLINE, RunStop.STOPPED) and (remaining or state.unfinished):
        code = 4
    elif progress.failed:
        code = 1
    else:
        code = 0
    return Summary(
        run_id=state.run_id,
        exit_code=code,
        stop_reason=reason,
        message=stop.message,
        total=total,
        succeeded=progress.succeeded,
        failed=progress.failed,
        skipped=progress.skipped,
        remaining=remaining,
        attempts=progress.attempts,
        throttled=progress.throttled,
        elapsed=elapsed,
        final_rate=limiter.rate,
        error_codes=dict(progress.error_codes),
        error_samples=dict(progress.error_samples),
        ledger=str(settings.ledger) if settings.ledger else None,
    )


async def _deadline(state: _Run, seconds: float) -> None:
    await anyio.sleep(seconds)
    state.halt(RunStop.DEADLINE, f"--deadline {seconds:g}s reached")


async def _grace_after_stop(state: _Run, grace: float) -> None:
    """After a stop, in-flight requests get `grace` seconds; then the workers are cancelled
    (the ledger writer is not: what ended is still written)."""
    await state.stop.wait()
    await anyio.sleep(grace)
    if state.work_scope is not None:
        state.work_scope.cancel()
