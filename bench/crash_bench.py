"""kill -9 at random points of a 5,000-job run, then the same command again.

Run: python bench/crash_bench.py [--jobs 5000] [--kills 5] [--seed 1]
Prints, for the final re-run: its exit code, jobs applied, the most PUTs any version received,
and how many versions received two (at most concurrency x kills may: those in flight at a kill).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import DEMO_ENV, SimulatorProcess, make_jobs


def wait_for_lines(path: Path, count: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.005)
    raise RuntimeError(f"{path} never reached {count} lines")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    env = {**os.environ, **DEMO_ENV}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        jobs = make_jobs(work / "j.jsonl", args.jobs)
        ledger = work / "batchupdate-ledger.jsonl"
        command = [
            sys.executable,
            "-m",
            "batchupdate",
            "run",
            str(jobs),
            "--concurrency",
            str(args.concurrency),
        ]
        with SimulatorProcess("--seed", str(jobs), "--latency", "0.003") as sim:
            points = sorted(random.Random(args.seed).sample(range(50, args.jobs - 50), args.kills))
            for point in points:
                proc = subprocess.Popen(
                    [*command, "--endpoint", sim.url],
                    cwd=work,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                wait_for_lines(ledger, point)
                proc.kill()
                proc.wait()
            final = subprocess.run(
                [*command, "--endpoint", sim.url, "--json"],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            puts = {(m, v): n for m, v, n in sim.counters()["puts_applied"]}
        records = [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]
    succeeded = {r["version_name"] for r in records if r["status"] == "succeeded"}
    twice = sum(1 for n in puts.values() if n > 1)
    print(f"kill -9 at ledger lines {points}; then the same command:")
    print(
        f"  final exit code {final.returncode}; versions with a succeeded line {len(succeeded):,}/{args.jobs:,}"
    )
    print(
        f"  versions applied by the simulator {len(puts):,}/{args.jobs:,}; most PUTs to one version {max(puts.values())}"
    )
    print(
        f"  versions that got two PUTs: {twice} (at most concurrency x kills = {args.concurrency * args.kills})"
    )
    print(f"  ledger lines parsed: {len(records):,}")


if __name__ == "__main__":
    main()
