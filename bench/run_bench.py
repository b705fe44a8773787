"""`run` against the simulator: overhead, latency-bound throughput, adaptive rate, faults, and the
official SDK under the same load. Prints figures; asserts nothing.

Run: python bench/run_bench.py [--jobs 5000] [--only overhead,latency,adaptive,faults,sdk,cron]

Each scenario starts a simulator in its own process (its own core) and runs the client here.
Ratios compare two clients in the same script against the same server, since machines are noisy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from _common import SimulatorProcess, demo_signed_headers, make_jobs

from batchupdate.credentials import DEMO_CREDENTIALS
from batchupdate.jobs import JobSource
from batchupdate.jobset import JobSet
from batchupdate.ledger import read_ledger
from batchupdate.runner import Progress, run
from batchupdate.settings import Settings


def jobset(path: Path) -> JobSet:
    js = JobSet([JobSource(path, path.name, "jsonl")])
    errors = list(js.check())
    assert not errors, errors[:3]
    return js


async def ours(
    path: Path, url: str, tmp: Path, *, concurrency: int, ledger: bool = True, **kw
) -> tuple[float, object]:
    js = jobset(path)
    settings = Settings(
        endpoint=url,
        concurrency=concurrency,
        ledger=(tmp / f"l-{time.monotonic_ns()}.jsonl") if ledger else None,
        learn_rate=False,
        **kw,
    )
    start = time.perf_counter()
    summary = await run(js.jobs(), settings=settings, credentials=DEMO_CREDENTIALS, total=js.distinct)
    return time.perf_counter() - start, summary


async def bare_loop(path: Path, url: str, *, concurrency: int, signed: bool = False) -> float:
    """One session, prebuilt bodies, no ledger, no retries: the floor of the cost. With `signed`,
    each request also gets the signature headers the API requires (and nothing else)."""
    requests = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        body = json.dumps(
            {k: v for k, v in row.items() if k not in ("ModelId", "VersionName")},
            ensure_ascii=False,
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
        requests.append((f"/api/v1/models/{row['ModelId']}/versions/{row['VersionName']}", body))
    queue: asyncio.Queue = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    plain = {"content-type": "application/json; charset=utf-8", "accept": "application/json"}
    host = url.split("//", 1)[1]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            while not queue.empty():
                target, body = queue.get_nowait()
                headers = plain
                if signed:
                    headers = demo_signed_headers(host, target, body)
                async with session.put(url + target, data=body, headers=headers) as answer:
                    await answer.read()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start


async def scenario_overhead(tmp: Path, jobs: int, rounds: int = 7) -> None:
    path = make_jobs(tmp / "o.jsonl", jobs)
    rates: dict[str, list[float]] = {"bare": [], "signed": [], "ours": []}
    cpu: dict[str, list[float]] = {"bare": [], "signed": [], "ours": []}
    with SimulatorProcess("--seed", str(path), "--no-verify") as sim:
        for _ in range(rounds):  # alternate, and take medians: these machines are noisy
            for name in rates:
                start = time.process_time()
                if name == "ours":
                    elapsed, summary = await ours(path, sim.url, tmp, concurrency=64, force=True)
                    assert summary.succeeded == jobs, summary  # type: ignore[attr-defined]
                else:
                    elapsed = await bare_loop(path, sim.url, concurrency=64, signed=name == "signed")
                cpu[name].append((time.process_time() - start) / jobs)
                rates[name].append(jobs / elapsed)
    med = {name: statistics.median(values) for name, values in rates.items()}
    us = {name: statistics.median(values) * 1e6 for name, values in cpu.items()}
    ratios = sorted(o / b for o, b in zip(rates["ours"], rates["bare"], strict=True))
    print(
        f"overhead: {jobs:,} jobs, concurrency 64, latency 0 (simulator without signature checks), "
        f"median of {rounds} alternating rounds"
    )
    print(f"  bare aiohttp loop          {med['bare']:8,.0f} req/s, client CPU {us['bare']:4.0f} µs/request")
    print(
        f"  bare loop + signature only {med['signed']:8,.0f} req/s, client CPU {us['signed']:4.0f} µs/request "
        f"(ratio to bare {med['signed'] / med['bare']:.2f})"
    )
    print(
        f"  batchupdate run            {med['ours']:8,.0f} req/s, client CPU {us['ours']:4.0f} µs/request "
        "(+ validation, pacing, retries, ledger)"
    )
    print(
        f"  ratio ours/bare   {med['ours'] / med['bare']:.2f}  (per round: {', '.join(f'{r:.2f}' for r in ratios)}; "
        "bar >= 0.85)"
    )


async def scenario_latency(tmp: Path, jobs: int) -> None:
    path = make_jobs(tmp / "l.jsonl", jobs)
    ideal = 64 / 0.020

    def show(label: str, seconds: float, bar: str = "") -> None:
        print(f"  {label:<46}{jobs / seconds:8,.0f} req/s = {jobs / seconds / ideal:.2f} of ideal{bar}")

    print(f"latency-bound: {jobs:,} jobs, 20 ms latency, concurrency 64; ideal 64/0.020 = {ideal:,.0f}/s")
    with SimulatorProcess("--seed", str(path), "--latency", "0.020") as sim:
        elapsed, _ = await ours(path, sim.url, tmp, concurrency=64)
    show("batchupdate run, simulator checking signatures", elapsed, " (bar >= 0.9)")
    with SimulatorProcess("--seed", str(path), "--latency", "0.020", "--no-verify") as sim:
        elapsed, _ = await ours(path, sim.url, tmp, concurrency=64)
        bare = await bare_loop(path, sim.url, concurrency=64)
    show("batchupdate run, simulator not checking", elapsed)
    show("bare aiohttp loop, simulator not checking", bare)
    port = 18000 + os.getpid() % 1000
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_min_server.py")), str(port), "0.020"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None and server.stdout.readline().startswith("listening")
        url = f"http://127.0.0.1:{port}"
        elapsed, _ = await ours(path, url, tmp, concurrency=64)
        bare = await bare_loop(path, url, concurrency=64)
    finally:
        server.terminate()
        server.communicate()
    show("batchupdate run, a server that only sleeps", elapsed)
    show("bare aiohttp loop, a server that only sleeps", bare)


async def scenario_adaptive(tmp: Path, jobs: int) -> None:
    path = make_jobs(tmp / "a.jsonl", jobs)
    with SimulatorProcess("--seed", str(path), "--rate-limit", "100") as sim:
        js = jobset(path)
        ledger = tmp / "adaptive.jsonl"
        progress = Progress()
        start = time.time()
        summary = await run(
            js.jobs(),
            settings=Settings(endpoint=sim.url, ledger=ledger, learn_rate=False),
            credentials=DEMO_CREDENTIALS,
            progress=progress,
            total=js.distinct,
        )
    finished = sorted(
        time.mktime(time.strptime(r["finished_at"][:19], "%Y-%m-%dT%H:%M:%S"))
        - time.timezone
        + float("0." + r["finished_at"][20:23])
        for r in read_ledger(ledger)
    )
    after = [t for t in finished if t >= start + 5.0]
    goodput = len(after) / (finished[-1] - (start + 5.0)) if after else 0.0
    print(f"adaptive: {jobs:,} jobs, simulator limited to 100 req/s, no --rate")
    print(
        f"  all succeeded: {summary.succeeded == jobs}; goodput after the first 5 s: {goodput:.1f}/s (bar >= 90)"
    )
    print(
        f"  throttled answers: {summary.throttled} of {summary.attempts} requests = "
        f"{100 * summary.throttled / summary.attempts:.2f}% (bar < 5%); final rate {summary.final_rate:.1f}/s"
    )


async def scenario_faults(tmp: Path, jobs: int) -> None:
    path = make_jobs(tmp / "f.jsonl", jobs)
    with SimulatorProcess("--seed", str(path), "--error-rate", "0.2", "--reset-rate", "0.05") as sim:
        elapsed, summary = await ours(path, sim.url, tmp, concurrency=64, max_attempts=10)
        puts = {(m, v): n for m, v, n in sim.counters()["puts_applied"]}
    ledger = Path(summary.ledger)  # type: ignore[attr-defined]
    attempts = {r["version_name"]: r["attempts"] for r in read_ledger(ledger)}
    over = sum(1 for (_, v), n in puts.items() if n > attempts.get(v, 0))
    print(f"faults: {jobs:,} jobs, 20% 503 + 5% connection resets, concurrency 64")
    print(
        f"  succeeded {summary.succeeded:,}/{jobs:,} in {elapsed:.1f}s ({jobs / elapsed:,.0f}/s); "  # type: ignore[attr-defined]
        f"versions applied more often than the ledger's attempts: {over}"
    )
    return None


async def scenario_sdk(tmp: Path, jobs: int) -> None:
    from alibabacloud_aiworkspace20210204 import models as sdk_models
    from alibabacloud_aiworkspace20210204.client import Client
    from alibabacloud_tea_openapi.models import Config
    from darabonba.policy.retry import RetryOptions

    # With faults, the SDK's async path sleeps with a blocking time.sleep between retries, which
    # freezes every call in flight: 5,000 jobs would take most of an hour. 500 show the effect.
    for label, count, args in (
        ("no faults", jobs, ()),
        ("20% 503 + 5% resets", min(jobs, 500), ("--error-rate", "0.2", "--reset-rate", "0.05")),
    ):
        path = make_jobs(tmp / f"s-{count}.jsonl", count)
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        with SimulatorProcess("--seed", str(path), *args) as sim:
            retry = RetryOptions(
                {
                    "retryable": True,
                    "retryCondition": [
                        {
                            "maxAttempts": 6,
                            "exception": ["ServerException", "ThrottlingException"],
                            "errorCode": [
                                "ServiceUnavailable",
                                "InternalError",
                                "Throttling.User",
                                "Throttling",
                            ],
                            "backoff": {"policy": "ExponentialWithFullJitter", "period": 500, "cap": 20000},
                        }
                    ],
                }
            )
            client = Client(
                Config(
                    access_key_id="batchupdate-demo",
                    access_key_secret="batchupdate-demo-secret",
                    endpoint=sim.url.split("//")[1],
                    protocol="http",
                    retry_options=retry,
                )
            )
            semaphore = asyncio.Semaphore(64)
            lost = 0

            async def one(row: dict) -> None:
                nonlocal lost
                async with semaphore:
                    try:
                        await client.update_model_version_async(
                            row["ModelId"],
                            row["VersionName"],
                            sdk_models.UpdateModelVersionRequest(
                                approval_status=row["ApprovalStatus"],
                                version_description=row["VersionDescription"],
                            ),
                        )
                    except Exception:
                        lost += 1

            start = time.perf_counter()
            await asyncio.gather(*(one(r) for r in rows))
            t_sdk = time.perf_counter() - start
        with SimulatorProcess("--seed", str(path), *args) as sim:
            t_ours, summary = await ours(path, sim.url, tmp, concurrency=64)
        print(f"versus the official SDK ({label}): {count:,} jobs, concurrency 64")
        print(f"  SDK  {count / t_sdk:8,.0f} jobs/s, lost {lost:,}")
        print(
            f"  ours {count / t_ours:8,.0f} jobs/s, lost {summary.failed:,}; "  # type: ignore[attr-defined]
            f"throughput ratio ours/SDK {t_sdk / t_ours:.1f}"
        )


async def scenario_cron(tmp: Path, jobs: int) -> None:
    """Two nightly runs against a 100 req/s simulator: the second starts from the learned rate."""
    first_jobs = make_jobs(tmp / "night1.jsonl", jobs, model="model-night-1")
    second_jobs = make_jobs(tmp / "night2.jsonl", jobs, model="model-night-2")
    ledger = tmp / "cron-ledger.jsonl"
    figures = []
    with SimulatorProcess(
        "--seed", str(first_jobs), "--seed", str(second_jobs), "--rate-limit", "100"
    ) as sim:
        for path in (first_jobs, second_jobs):
            js = jobset(path)
            progress = Progress()
            at_10s: list[tuple[int, int]] = []

            async def watch(progress: Progress = progress, at_10s: list[tuple[int, int]] = at_10s) -> None:
                await asyncio.sleep(10.0)
                at_10s.append((progress.throttled, progress.attempts))

            watcher = asyncio.ensure_future(watch())
            summary = await run(
                js.jobs(),
                settings=Settings(endpoint=sim.url, ledger=ledger),
                credentials=DEMO_CREDENTIALS,
                progress=progress,
                total=js.distinct,
            )
            watcher.cancel()
            throttled, attempts = at_10s[0] if at_10s else (summary.throttled, summary.attempts)
            figures.append((throttled, attempts, summary))
    print(f"cron: two runs of {jobs:,} new jobs each, simulator limited to 100 req/s, one ledger")
    for night, (throttled, attempts, summary) in enumerate(figures, 1):
        print(
            f"  run {night}: first 10 s: {throttled} throttled of {attempts} requests = "
            f"{100 * throttled / max(1, attempts):.2f}%; whole run {summary.throttled} of {summary.attempts}; "
            f"rate at the end {summary.final_rate:.1f}/s"
        )
    print("  (bar: the second run under 1% throttled in its first 10 s)")


SCENARIOS = {
    "overhead": scenario_overhead,
    "latency": scenario_latency,
    "adaptive": scenario_adaptive,
    "faults": scenario_faults,
    "sdk": scenario_sdk,
    "cron": scenario_cron,
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.only.split(","):
            count = {"adaptive": 3000, "cron": 1500}.get(name, args.jobs)
            asyncio.run(SCENARIOS[name](Path(tmp), count))


if __name__ == "__main__":
    main()
