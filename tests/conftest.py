from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# Never let the credential chain reach for the ECS metadata address from a test.
os.environ["ALIBABA_CLOUD_ECS_METADATA_DISABLED"] = "true"
for _name in (
    "ALIBABA_CLOUD_ACCESS_KEY_ID",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    "ALIBABA_CLOUD_SECURITY_TOKEN",
    "ALIBABA_CLOUD_PROFILE",
    "ALIBABA_CLOUD_CREDENTIALS_URI",
    "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
):
    os.environ.pop(_name, None)

ROOT = Path(__file__).resolve().parent.parent


def run_cli(
    *args: str,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """The real entry point in a child process: exit code, stdout, stderr as a user sees them."""
    full_env = dict(os.environ)
    full_env.setdefault("HOME", str(cwd or ROOT))
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-m", "batchupdate", *args],
        input=input.decode() if input is not None else None,
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or ROOT,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def write(tmp_path: Path):
    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        if isinstance(content, str):
            content = content.encode()
        path.write_bytes(content)
        return path

    return _write


DEMO_ENV = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "batchupdate-demo",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "batchupdate-demo-secret",
}


class SimulatorProcess:
    """`batchupdate simulator` in a child process, as a user would start it."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "batchupdate", "simulator", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.startswith("simulator listening on "), line + self.proc.stderr.read()  # type: ignore[union-attr]
        self.url = line.split()[3]
        self.banner = line

    def counters(self) -> dict:
        import json
        import urllib.request

        with urllib.request.urlopen(self.url + "/_simulator/counters", timeout=10) as answer:  # noqa: S310 - loopback
            return json.loads(answer.read())

    def puts(self) -> dict[tuple[str, str], int]:
        return {(m, v): n for m, v, n in self.counters()["puts_applied"]}

    def stop(self) -> None:
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.communicate(timeout=10)  # drains and closes the pipes
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()


@pytest.fixture
def simulator_process():
    started: list[SimulatorProcess] = []

    def start(*args: str) -> SimulatorProcess:
        sim = SimulatorProcess(*args)
        started.append(sim)
        return sim

    yield start
    for sim in started:
        sim.stop()


def make_jobs(
    path: Path, count: int, *, model: str = "model-t", status: str = "Approved", start: int = 0
) -> Path:
    import json

    with path.open("w") as out:
        for i in range(start, start + count):
            out.write(
                json.dumps(
                    {
                        "ModelId": model,
                        "VersionName": f"1.{i // 1000}.{i % 1000}",
                        "ApprovalStatus": status,
                        "VersionDescription": f"job {i}",
                    }
                )
                + "\n"
            )
    return path
