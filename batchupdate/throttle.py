"""How fast to send: a paced token bucket whose rate adapts to the server's throttling.

A limiter is a tiny object with a tiny interface (after aiometer's meters): `await wait()` before
each attempt, then `succeeded(rtt)` or `throttled(retry_after)` when its answer comes back.

The adaptive rate, with no `--rate`, starts unthrottled. On a throttling answer it cuts the
shared rate, at most once per round trip, to 90% of what the server accepted over the last
second (above its limit, that is the limit itself; measured over at least a quarter second, so
an initial burst allowance does not read as the rate). Between cuts it regrows along CUBIC's
curve (as AWS SDKs' adaptive retry mode does): quickly back towards the rate that was throttled,
a plateau there, then a slow, accelerating probe above it. So a run converges on what the server
allows, with few throttled answers. A server's wait hint (`x-acs-retry-after` / `Retry-After`)
pauses every sender, not only the throttled one.

The clock and the sleep are injected, so tests drive it with a fake clock.
"""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Awaitable, Callable

import anyio

__all__ = ["AdaptiveRate"]

_WINDOW = 1.0  # seconds of history for the accepted rate
_CUBIC_C = 0.4  # CUBIC's scaling constant (RFC 8312)
_BETA = 0.9  # cut to this share of the accepted rate
_MIN_SPAN = 0.25  # seconds: the accepted rate is never measured over less
MIN_RATE = 0.5  # requests per second; never stop entirely


class AdaptiveRate:
    """A shared sending rate. `rate is None` means unlimited (until the first throttle)."""

    def __init__(
        self,
        *,
        ceiling: float | None = None,
        initial: float | None = None,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self.ceiling = ceiling
        self.adaptive = adaptive
        start = initial if initial is not None else ceiling
        if start is not None and ceiling is not None:
            start = min(start, ceiling)
        self.rate: float | None = start
        self._clock = clock
        self._sleep = sleep
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._w_max = start or 0.0
        self._epoch = clock()
        self._k = 0.0
        self._cooldown_until = 0.0
        self._rtt = 0.0
        self._recent: collections.deque[tuple[float, bool]] = collections.deque()
        self._sent: collections.deque[float] = collections.deque()
        self.cuts = 0
        self.throttles = 0

    # -- the meter interface --------------------------------------------------------------

    async def wait(self) -> None:
        """Wait for this attempt's slot: after any server pause, then paced at the rate."""
        now = self._clock()
        start = self.reserve(now)
        if start > now:
            await self._sleep(start - now)

    def reserve(self, now: float) -> float:
        """Book the next sending slot; returns when it starts (`now` or later)."""
        start = max(now, self._paused_until)
        rate = self.rate
        if rate is not None:
            start = max(start, self._next_slot)
            self._next_slot = start + 1.0 / rate
        sent = self._sent
        sent.append(start)
        while sent[0] < start - _WINDOW:
            sent.popleft()
        return start

    def succeeded(self, rtt: float = 0.0) -> None:
        now = self._clock()
        self._rtt = rtt if self._rtt == 0.0 else 0.8 * self._rtt + 0.2 * rtt
        self._note(now, throttled=False)
        if not self.adaptive or self.rate is None:
            return
        t = now - self._epoch
        target = _CUBIC_C * (t - self._k) ** 3 + self._w_max
        grown = max(self.rate, target)
        if self.ceiling is not None:
            grown = min(grown, self.ceiling)
        self.rate = grown

    def throttled(self, retry_after: float | None = None) -> None:
        now = self._clock()
        self.throttles += 1
        self._note(now, throttled=True)
        if retry_after:
            self._paused_until = max(self._paused_until, now + retry_after)
        if not self.adaptive or now < self._cooldown_until:
            return
        current = self.rate if self.rate is not None else self._send_rate(now)
        # Above the limit, what the server accepted over the last second is the limit itself:
        # cut to a little under it (or under the current rate, if that is lower). CUBIC then
        # regrows towards the rate that was throttled, and probes gently above it.
        self._w_max = current
        self.rate = max(MIN_RATE, _BETA * min(current, self._accepted_rate(now)))
        if self.ceiling is not None:
            self.rate = min(self.rate, self.ceiling)
        self._epoch = now
        self._k = math.cbrt(max(0.0, current - self.rate) / _CUBIC_C)
        # answers to requests already in flight at this rate say nothing new: one cut per round trip
        self._cooldown_until = now + max(2.0 * self._rtt, 0.02)
        self._next_slot = max(self._next_slot, now)
        self.cuts += 1

    # -- measurements ---------------------------------------------------------------------

    def _note(self, now: float, *, throttled: bool) -> None:
        recent = self._recent
        recent.append((now, throttled))
        while recent and recent[0][0] < now - _WINDOW:
            recent.popleft()

    def _accepted_rate(self, now: float) -> float:
        """Answers not throttled per second, over the last window (at least `_MIN_SPAN`, so that
        a server's initial burst allowance does not read as its rate)."""
        accepted = sum(1 for _, throttled in self._recent if not throttled)
        first = self._sent[0] if self._sent else now
        span = max(min(_WINDOW, now - first), _MIN_SPAN)
        return accepted / span

    def _send_rate(self, now: float) -> float:
        """Attempts started per second over the last window (how fast we went unthrottled)."""
        sent = self._sent
        while sent and sent[0] < now - _WINDOW:
            sent.popleft()
        if not sent:
            return MIN_RATE * 2
        span = max(now - sent[0], 1e-3)
        return max(MIN_RATE, len(sent) / span)
