"""Validation: memory per row and rows per second, for 100,000 and 1,000,000 distinct versions.

Run: python bench/validate_bench.py [--rows 1000000]
Each measurement runs in a fresh child process so that peak RSS (ru_maxrss) is its own. The
baseline is a bare `orjson.loads` loop over the same file, in the same script.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson


def make_file(path: Path, rows: int) -> None:
    with path.open("wb") as out:
        for i in range(rows):
            row = {
                "ModelId": f"model-{i % 97:04d}",
                "VersionName": f"{i // 10000}.{(i // 100) % 100}.{i % 100}_r{i}",
                "ApprovalStatus": "Approved",
                "Metrics": {"Results": [{"Dataset": {"DatasetId": f"d-{i}"}, "Metrics": {"auc": 0.9}}]},
            }
            out.write(orjson.dumps(row) + b"\n")


CHILD_VALIDATE = """
import resource, sys, time
from pathlib import Path
from batchupdate.jobs import JobSource
from batchupdate.jobset import JobSet
t = time.perf_counter()
js = JobSet([JobSource(Path(sys.argv[1]), sys.argv[1], "jsonl")])
errors = sum(1 for _ in js.check())
elapsed = time.perf_counter() - t
assert errors == 0 and js.distinct == js.rows, (errors, js.distinct, js.rows)
print(js.rows, elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

CHILD_BASELINE = """
import resource, sys, time, orjson
t = time.perf_counter()
n = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        orjson.loads(line); n += 1
print(n, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

CHILD_EMPTY = """
import resource
from batchupdate.jobset import JobSet
print(0, 0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def child(code: str, path: Path | None = None) -> tuple[int, float, int]:
    out = subprocess.run(
        [sys.executable, "-c", code, *([str(path)] if path else [])],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return int(out[0]), float(out[1]), int(out[2]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    small_n, big_n = args.rows // 10, args.rows
    with tempfile.TemporaryDirectory() as tmp:
        small, big = Path(tmp) / "small.jsonl", Path(tmp) / "big.jsonl"
        make_file(small, small_n)
        make_file(big, big_n)
        _, _, rss0 = child(CHILD_EMPTY)
        _, t_small, rss_small = child(CHILD_VALIDATE, small)
        _, t_big, rss_big = child(CHILD_VALIDATE, big)
        _, t_base, _ = child(CHILD_BASELINE, big)
    per_row = (rss_big - rss_small) / (big_n - small_n)
    print(f"interpreter + imports peak RSS: {rss0 / 1e6:.1f} MB")
    print(f"validate {small_n:>9,} rows: peak RSS {rss_small / 1e6:.1f} MB, {small_n / t_small:,.0f} rows/s")
    print(f"validate {big_n:>9,} rows: peak RSS {rss_big / 1e6:.1f} MB, {big_n / t_big:,.0f} rows/s")
    print(f"added memory per added row: {per_row:.1f} bytes (bar: <= 150)")
    print(f"bare orjson.loads loop: {big_n / t_base:,.0f} rows/s; validate/baseline = {t_base / t_big:.2f}")


if __name__ == "__main__":
    main()
