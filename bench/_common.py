"""Shared pieces of the benchmarks: a simulator in its own process, job files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path


class SimulatorProcess:
    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batchupdate", "simulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("simulator listening on "):
            raise RuntimeError(line + self.proc.stderr.read())  # type: ignore[union-attr]
        self.url = line.split()[3]

    def counters(self) -> dict:
        with urllib.request.urlopen(self.url + "/_simulator/counters", timeout=10) as answer:  # noqa: S310
            return json.loads(answer.read())

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()

    def __enter__(self) -> SimulatorProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_jobs(path: Path, count: int, model: str = "model-bench") -> Path:
    with path.open("w") as out:
        for i in range(count):
            out.write(
                json.dumps(
                    {
                        "ModelId": model,
                        "VersionName": f"1.{i // 1000}.{i % 1000}",
                        "ApprovalStatus": "Approved",
                        "VersionDescription": f"bench {i}",
                    }
                )
                + "\n"
            )
    return path


DEMO_ENV = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "batchupdate-demo",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "batchupdate-demo-secret",
}


def demo_signed_headers(host: str, path: str, body: bytes) -> dict[str, str]:
    """A PUT's headers signed with the simulator's demo key (for baselines that sign, nothing else)."""
    from batchupdate import signing

    return signing.signed_headers(
        method="PUT",
        host=host,
        path=path,
        query=None,
        action="UpdateModelVersion",
        body=body,
        access_key_id="batchupdate-demo",
        access_key_secret="batchupdate-demo-secret",
        user_agent="bench",
        date=signing.timestamp(),
        nonce=signing.new_nonce(),
    )
