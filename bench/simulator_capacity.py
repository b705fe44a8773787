"""The simulator's own capacity, measured with a raw aiohttp client (pre-signed requests), so a
benchmark can tell when the simulator, not batchupdate, is the bottleneck.

Run: python bench/simulator_capacity.py [--requests 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiohttp
from _common import SimulatorProcess, demo_signed_headers, make_jobs

from batchupdate.client import PaiClient


async def hammer(url: str, count: int, *, sign: bool, concurrency: int = 64) -> float:
    host = url.split("//", 1)[1]
    body = b'{"ApprovalStatus":"Approved"}'
    requests = []
    for i in range(count):
        path = PaiClient.version_path("model-bench", f"1.{i // 1000}.{i % 1000}")
        headers = {"content-type": "application/json"}
        if sign:  # signed ahead of time: the client does nothing per request but send
            headers = demo_signed_headers(host, path, body)
        requests.append((url + path, headers))
    queue: asyncio.Queue = asyncio.Queue()
    for item in requests:
        queue.put_nowait(item)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def worker() -> None:
            while not queue.empty():
                target, headers = queue.get_nowait()
                async with session.put(target, data=body, headers=headers) as answer:
                    await answer.read()
                    assert answer.status == 200, await answer.text()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - start


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as tmp:
        jobs = make_jobs(Path(tmp) / "j.jsonl", args.requests)
        with SimulatorProcess("--seed", str(jobs)) as sim:
            signed = await hammer(sim.url, args.requests, sign=True)
        with SimulatorProcess("--seed", str(jobs), "--no-verify") as sim:
            unsigned = await hammer(sim.url, args.requests, sign=False)
    print(f"simulator capacity, {args.requests:,} PUTs at latency 0, concurrency 64, raw aiohttp client:")
    print(f"  signatures checked: {args.requests / signed:8,.0f} req/s")
    print(f"  --no-verify:        {args.requests / unsigned:8,.0f} req/s")


if __name__ == "__main__":
    asyncio.run(main())
