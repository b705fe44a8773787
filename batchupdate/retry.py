"""The retry policy, in one place: what retries, how long to wait, when to give up.

One predicate (`errors.classify`: transient and throttled answers retry, other 4xx never) plus
bounded waits (exponential backoff with full jitter, capped; a server's wait hint wins), bounded
by `max_attempts`. Built on tenacity; the final error is the real one, never a RetryError.
Sleeps go through anyio, so they never block the event loop.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import anyio
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from .errors import Verdict, classify

__all__ = ["RetryPolicy", "is_retryable"]

T = TypeVar("T")


_JITTER = random.Random()  # shared: seeding a generator per job costs more than the jitter


def is_retryable(error: BaseException) -> bool:
    return classify(error) in (Verdict.RETRY, Verdict.THROTTLED)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    max_attempts: int = 6
    base: float = 0.5  # seconds: the first backoff is drawn from [0, base]
    cap: float = 20.0  # no single wait is longer
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 < self.base <= self.cap:
            raise ValueError("backoff needs 0 < base <= cap")

    def backoff(self, attempt: int, error: BaseException | None, rnd: random.Random) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        hint = getattr(error, "retry_after", None)
        if hint is not None:
            return float(min(self.cap, max(0.0, hint)))
        return rnd.uniform(0.0, min(self.cap, self.base * 2.0 ** (attempt - 1)))

    def retrying(
        self,
        *,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        before_sleep: Callable[[RetryCallState], None] | None = None,
        done: int = 0,
    ) -> AsyncRetrying:
        """A tenacity controller for one call's attempts after the first `done` ones:
        `async for attempt in policy.retrying(): with attempt: ...`."""
        rnd = random.Random(self.seed) if self.seed is not None else _JITTER

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            return self.backoff(state.attempt_number + done, error, rnd)

        return AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts - done),
            wait=wait,
            retry=retry_if_exception(is_retryable),
            reraise=True,
            sleep=sleep,
            before_sleep=before_sleep,
        )

    async def call(
        self,
        attempt: Callable[[], Awaitable[T]],
        *,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        on_retry: Callable[[], None] | None = None,
    ) -> T:
        """Run `attempt` until it succeeds, fails for good, or the attempts run out; the last
        error comes back as itself. The first try runs bare (most calls succeed at once, and
        tenacity's bookkeeping would cost more than the request's own CPU); the retries go
        through tenacity with the same predicate and waits."""
        try:
            return await attempt()
        except Exception as error:
            if self.max_attempts == 1 or not is_retryable(error):
                raise
            first = error
        rnd = random.Random(self.seed) if self.seed is not None else _JITTER
        if on_retry is not None:
            on_retry()
        await sleep(self.backoff(1, first, rnd))

        def before_sleep(_: RetryCallState) -> None:
            if on_retry is not None:
                on_retry()

        async for trial in self.retrying(sleep=sleep, before_sleep=before_sleep, done=1):
            with trial:
                return await attempt()
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover
