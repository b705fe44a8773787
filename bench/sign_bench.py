"""What signing and request building cost, as a share of the client's per-request CPU.

Run: python bench/sign_bench.py [--requests 10000]

1. A 10,000-request run of PaiClient.put_version (concurrency 64) against a simulator in its own
   process: the client's CPU time per request (time.process_time), without a profiler.
2. The same run under cProfile: the share of cumulative time spent in signing.signed_headers and
   PaiClient.version_path (the path's encoding), against the whole run.
3. Signing and building alone, 10,000 times in a tight loop.
4. A 10,000-job `batchupdate.run` (the whole client: validation, pacing, retries, ledger) under
   cProfile: the share of signing and path encoding in it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

from _common import SimulatorProcess, demo_signed_headers, make_jobs
from yarl import URL

from batchupdate.client import PaiClient
from batchupdate.credentials import DEMO_CREDENTIALS

BODY = b'{"ApprovalStatus":"Approved","VersionDescription":"bench"}'


async def drive(client: PaiClient, count: int, concurrency: int = 64) -> None:
    names = iter(range(count))

    async def worker() -> None:
        for i in names:
            await client.put_version("model-bench", f"1.{i // 1000}.{i % 1000}", BODY)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def sign_and_build(i: int) -> None:
    path = PaiClient.version_path("model-bench", f"1.{i // 1000}.{i % 1000}")
    demo_signed_headers("127.0.0.1:8080", path, BODY)
    URL("http://127.0.0.1:8080" + path, encoded=True)  # as PaiClient.request builds it


def _share(profile: cProfile.Profile, names: tuple[str, ...]) -> float:
    stats = pstats.Stats(profile)
    table = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in table.values())
    return sum(v[3] for k, v in table.items() if k[2] in names) / total


async def profiled_run(n: int) -> float:
    """The share of signing in a profile of a whole `batchupdate.run` of n jobs."""
    from batchupdate.jobs import JobSource
    from batchupdate.jobset import JobSet
    from batchupdate.runner import run
    from batchupdate.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        jobs = make_jobs(Path(tmp) / "r.jsonl", n)
        js = JobSet([JobSource(jobs, "r.jsonl", "jsonl")])
        assert not list(js.check())
        with SimulatorProcess("--seed", str(jobs), "--no-verify") as sim:
            profile = cProfile.Profile()
            profile.enable()
            summary = await run(
                js.jobs(),
                settings=Settings(endpoint=sim.url, ledger=Path(tmp) / "l.jsonl", concurrency=64),
                credentials=DEMO_CREDENTIALS,
            )
            profile.disable()
        assert summary.succeeded == n
    return _share(profile, ("signed_headers", "version_path"))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=10_000)
    args = parser.parse_args()
    n = args.requests
    with tempfile.TemporaryDirectory() as tmp:
        jobs = make_jobs(Path(tmp) / "j.jsonl", n)
        with SimulatorProcess("--seed", str(jobs), "--no-verify") as sim:
            async with PaiClient(sim.url, DEMO_CREDENTIALS, concurrency=64) as client:
                await drive(client, 500)  # warm up connections
                cpu0 = time.process_time()
                await drive(client, n)
                cpu = time.process_time() - cpu0
                profile = cProfile.Profile()
                profile.enable()
                await drive(client, n)
                profile.disable()
    run_share = await profiled_run(n)
    stats = pstats.Stats(profile)
    total = sum(entry[2] for entry in stats.stats.values())  # type: ignore[attr-defined]

    def cum(name: str) -> float:
        return sum(v[3] for k, v in stats.stats.items() if k[2] == name)  # type: ignore[attr-defined]

    signing_cum = cum("signed_headers") + cum("version_path")
    start = time.perf_counter()
    for i in range(n):
        sign_and_build(i)
    alone = (time.perf_counter() - start) / n
    per_request = cpu / n
    print(f"client CPU per request ({n:,} PUTs, concurrency 64): {per_request * 1e6:,.0f} µs")
    print(
        f"signing + request building alone: {alone * 1e6:,.1f} µs per request = "
        f"{100 * alone / per_request:.1f}% of the client's per-request CPU (bar < 5%)"
    )
    print(
        f"under cProfile: signed_headers + version_path = {100 * signing_cum / total:.1f}% of the run's time"
    )
    print(
        f"in a profile of a {n:,}-job batchupdate run: signed_headers + version_path = "
        f"{100 * run_share:.1f}% of its time (bar < 5%)"
    )


if __name__ == "__main__":
    asyncio.run(main())
