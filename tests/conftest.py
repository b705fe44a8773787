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
