"""The adaptive rate and the retry policy, alone, on a fake clock: no test sleeps for real."""

from __future__ import annotations

import heapq
import random

import pytest

from batchupdate.errors import BadResponseError, ConnectError, RemoteError
from batchupdate.retry import RetryPolicy, is_retryable
from batchupdate.throttle import MIN_RATE, AdaptiveRate


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def model_run(
    limit: float,
    *,
    jobs: int = 3000,
    workers: int = 16,
    latency: float = 0.002,
    hint: bool = True,
    initial: float | None = None,
    ceiling: float | None = None,
) -> dict:
    """A discrete-event model: `workers` senders, a server token bucket of `limit`/s."""
    clock = FakeClock()
    limiter = AdaptiveRate(clock=clock, initial=initial, ceiling=ceiling)
    burst = max(1.0, limit / 10)
    tokens, stamp = burst, 0.0
    events = [(0.0, i) for i in range(workers)]
    heapq.heapify(events)
    remaining, retries, done, throttled, total = jobs, 0, [], 0, 0
    while events and (remaining or retries):
        t, w = heapq.heappop(events)
        if retries:
            retries -= 1
        else:
            remaining -= 1
        clock.now = t
        start = limiter.reserve(t)
        arrive = start + latency / 2
        tokens = min(burst, tokens + (arrive - stamp) * limit)
        stamp = arrive
        clock.now = start + latency
        total += 1
        if tokens >= 1:
            tokens -= 1
            limiter.succeeded(latency)
            done.append(clock.now)
            heapq.heappush(events, (clock.now, w))
        else:
            throttled += 1
            wait = (1 - tokens) / limit
            limiter.throttled(wait if hint else None)
            retries += 1
            heapq.heappush(events, (clock.now + (wait if hint else random.Random(total).uniform(0, 0.5)), w))
    end = max(done)
    after = [x for x in done if x >= 5.0]
    return {
        "goodput_after_5s": len(after) / (end - 5.0),
        "throttled_share": throttled / total,
        "rate": limiter.rate,
        "limiter": limiter,
        "throttled": throttled,
        "total": total,
    }


@pytest.mark.parametrize("hint", [True, False])
@pytest.mark.parametrize("latency", [0.001, 0.020])
def test_adaptive_rate_converges_on_the_server_limit(hint, latency):
    got = model_run(100.0, latency=latency, hint=hint)
    assert got["goodput_after_5s"] >= 90.0
    assert got["throttled_share"] < 0.05
    assert 80.0 < got["rate"] < 125.0


@pytest.mark.parametrize("limit", [10.0, 1000.0])
def test_adaptive_rate_scales(limit):
    got = model_run(limit, jobs=int(limit * 30), workers=64)
    assert got["goodput_after_5s"] >= 0.85 * limit
    assert got["throttled_share"] < 0.10


def test_a_learned_rate_starts_without_a_throttling_burst():
    cold = model_run(100.0)
    warm = model_run(100.0, initial=95.0)
    assert warm["throttled"] < cold["throttled"]
    assert warm["throttled_share"] < 0.01


def test_ceiling_caps_growth():
    got = model_run(1000.0, jobs=2000, ceiling=50.0)
    assert got["rate"] == 50.0 and got["throttled"] == 0


async def test_pacing_and_retry_after_pause_everyone():
    clock = FakeClock()
    limiter = AdaptiveRate(clock=clock, sleep=clock.sleep, ceiling=10.0)
    for _ in range(5):
        await limiter.wait()
    assert clock.now == pytest.approx(0.4)  # 10/s: slots 0.1 s apart
    limiter.throttled(retry_after=2.0)
    before = clock.now
    await limiter.wait()
    assert clock.now >= before + 2.0


def test_one_cut_per_round_trip_and_a_floor():
    clock = FakeClock()
    limiter = AdaptiveRate(clock=clock, initial=100.0)
    limiter.succeeded(0.05)
    limiter.throttled()
    first = limiter.rate
    limiter.throttled()  # an answer to a request already in flight: no second cut
    assert limiter.rate == first and limiter.cuts == 1
    for _ in range(200):
        clock.now += 1.0
        limiter.throttled()
    assert limiter.rate == MIN_RATE


def test_non_adaptive_keeps_the_rate():
    limiter = AdaptiveRate(ceiling=20.0, adaptive=False)
    limiter.throttled()
    limiter.succeeded()
    assert limiter.rate == 20.0


# -- retry ----------------------------------------------------------------------------------


def test_backoff_is_full_jitter_capped_and_hints_win():
    policy = RetryPolicy(base=0.5, cap=4.0)
    rnd = random.Random(1)
    for attempt in range(1, 12):
        waits = [policy.backoff(attempt, ConnectError("x"), rnd) for _ in range(200)]
        assert min(waits) >= 0.0 and max(waits) <= min(4.0, 0.5 * 2 ** (attempt - 1))
    throttled = RemoteError(400, "Throttling.User", "m", "r", retry_after=1.25)
    assert policy.backoff(1, throttled, rnd) == 1.25
    assert policy.backoff(1, RemoteError(429, None, None, None, retry_after=99.0), rnd) == 4.0


def test_what_retries():
    assert is_retryable(ConnectError("x"))
    assert is_retryable(BadResponseError("x", status=200))
    assert is_retryable(RemoteError(400, "Throttling.User", None, None))
    assert not is_retryable(RemoteError(400, "InvalidParameter", None, None))
    assert not is_retryable(RemoteError(400, "SignatureDoesNotMatch", None, None))


async def test_retrying_gives_back_the_real_error_and_counts_attempts():
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=4, base=0.1, cap=1.0, seed=3)
    calls = 0
    with pytest.raises(RemoteError) as info:
        async for attempt in policy.retrying(sleep=clock.sleep):
            with attempt:
                calls += 1
                raise RemoteError(503, "ServiceUnavailable", "down", f"R{calls}")
    assert calls == 4 and info.value.request_id == "R4"
    assert len(clock.slept) == 3
    calls = 0
    with pytest.raises(RemoteError):
        async for attempt in policy.retrying(sleep=clock.sleep):
            with attempt:
                calls += 1
                raise RemoteError(404, "ModelVersion.NotFound", "no", "R")
    assert calls == 1


def test_policy_validation():
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base=2.0, cap=1.0)
