"""The ledger stays off the hot path: run throughput with the ledger on disk, against the same run
with the ledger on a RAM-backed path (/dev/shm), alternating, several rounds.

Run: python bench/ledger_bench.py [--jobs 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from _common import SimulatorProcess, make_jobs

from batchupdate.credentials import DEMO_CREDENTIALS
from batchupdate.jobs import JobSource
from batchupdate.jobset import JobSet
from batchupdate.runner import run
from batchupdate.settings import Settings


async def one(path: Path, url: str, ledger: Path) -> float:
    js = JobSet([JobSource(path, path.name, "jsonl")])
    assert not list(js.check())
    start = time.perf_counter()
    summary = await run(
        js.jobs(),
        settings=Settings(endpoint=url, ledger=ledger, concurrency=64, learn_rate=False),
        credentials=DEMO_CREDENTIALS,
    )
    elapsed = time.perf_counter() - start
    assert summary.succeeded == js.distinct, summary
    return js.distinct / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ram_root = Path("/dev/shm") if Path("/dev/shm").is_dir() else None
    with (
        tempfile.TemporaryDirectory(dir=Path.cwd()) as disk,
        tempfile.TemporaryDirectory(dir=ram_root) as ram,
    ):
        jobs = make_jobs(Path(disk) / "j.jsonl", args.jobs)
        disk_rates, ram_rates = [], []
        with SimulatorProcess("--seed", str(jobs), "--no-verify") as sim:
            for i in range(args.rounds):
                disk_rates.append(await one(jobs, sim.url, Path(disk) / f"ledger-{i}.jsonl"))
                ram_rates.append(await one(jobs, sim.url, Path(ram) / f"ledger-{i}.jsonl"))
        fs = os.statvfs(disk)
    d, r = statistics.median(disk_rates), statistics.median(ram_rates)
    print(f"ledger on disk ({disk}, block size {fs.f_bsize}): median {d:,.0f} jobs/s over {args.rounds} runs")
    print(f"ledger in RAM ({ram}): median {r:,.0f} jobs/s")
    print(f"ratio disk/RAM: {d / r:.3f} (bar >= 0.95)")


if __name__ == "__main__":
    asyncio.run(main())
