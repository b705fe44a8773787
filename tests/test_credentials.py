"""Credentials: the chain, the missing case, and secrets that never show."""

from __future__ import annotations

import json

import pytest

from batchupdate.client import PaiClient, check_endpoint, endpoint_for
from batchupdate.credentials import CredentialProvider, Credentials
from batchupdate.errors import ConfigurationError

SECRET = "s3cr3t-VALUE-do-not-print"


def test_repr_and_str_hide_the_secret_and_token():
    creds = Credentials("AKID", SECRET, "TOKEN-VALUE-xyz")
    for text in (repr(creds), str(creds), repr(CredentialProvider(static=creds))):
        assert SECRET not in text and "TOKEN-VALUE-xyz" not in text
        assert "AKID" in text


async def test_environment_variables_first():
    provider = CredentialProvider(
        environ={
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "AKID",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
            "ALIBABA_CLOUD_SECURITY_TOKEN": "tok",
        }
    )
    creds = await provider.resolve()
    assert (creds.access_key_id, creds.access_key_secret, creds.security_token) == ("AKID", SECRET, "tok")
    assert creds.temporary and provider.current is creds


async def test_missing_credentials_name_the_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    provider = CredentialProvider(environ={}, loader=None, profile="nope")
    with pytest.raises(ConfigurationError) as info:
        await provider.resolve()
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in str(info.value)
    assert "--simulate" in str(info.value)


def test_current_before_resolve_is_a_configuration_error():
    with pytest.raises(ConfigurationError):
        _ = CredentialProvider(environ={}).current


async def test_temporary_credentials_are_refreshed_from_one_place():
    calls = []

    def loader() -> Credentials:
        calls.append(1)
        return Credentials("AK", f"secret-{len(calls)}", "token")

    provider = CredentialProvider(loader=loader)
    await provider.resolve()
    import anyio

    with anyio.move_on_after(0.35):
        await provider.refresh_forever(interval=0.1)
    assert len(calls) >= 3
    assert provider.current.access_key_secret == f"secret-{len(calls)}"


async def test_profile_from_aliyun_config(tmp_path, monkeypatch):
    config = {
        "current": "default",
        "profiles": [
            {"name": "default", "mode": "AK", "access_key_id": "AK-DEFAULT", "access_key_secret": "x"},
            {"name": "prod", "mode": "AK", "access_key_id": "AK-PROD", "access_key_secret": SECRET},
        ],
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    from alibabacloud_credentials.provider.cli_profile import CLIProfileCredentialsProvider

    def loader() -> Credentials:
        got = CLIProfileCredentialsProvider(
            profile_name="prod", profile_file=str(tmp_path / "config.json")
        ).get_credentials()
        return Credentials(got.get_access_key_id(), got.get_access_key_secret())

    creds = await CredentialProvider(loader=loader).resolve()
    assert creds.access_key_id == "AK-PROD"


def test_endpoints_tls_always_http_only_to_loopback():
    assert endpoint_for("cn-hangzhou") == "https://aiworkspace.cn-hangzhou.aliyuncs.com"
    assert endpoint_for("ap-southeast-1", vpc=True) == "https://aiworkspace-vpc.ap-southeast-1.aliyuncs.com"
    with pytest.raises(ConfigurationError):
        endpoint_for("cn-hangzhou\t")
    for ok in ("http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9", "https://example.com"):
        check_endpoint(ok)
    for bad in ("http://example.com", "http://10.0.0.1:80", "ftp://x", "https://h/path"):
        with pytest.raises(ConfigurationError):
            check_endpoint(bad)
    with pytest.raises(ConfigurationError, match="plain http is refused"):
        PaiClient("http://aiworkspace.cn-hangzhou.aliyuncs.com", Credentials("a", "b"))


def _write_profiles(home, key_id: str, secret: str) -> None:
    (home / ".aliyun").mkdir(parents=True, exist_ok=True)
    (home / ".aliyun" / "config.json").write_text(
        json.dumps(
            {
                "current": "default",
                "profiles": [
                    {
                        "name": "default",
                        "mode": "AK",
                        "access_key_id": "AK-DEFAULT",
                        "access_key_secret": "x",
                        "region_id": "cn-beijing",
                    },
                    {
                        "name": "prod",
                        "mode": "AK",
                        "access_key_id": key_id,
                        "access_key_secret": secret,
                        "region_id": "cn-shanghai",
                    },
                ],
            }
        )
    )


def test_profile_region_is_the_profiles_or_the_current_ones(tmp_path):
    from batchupdate.credentials import profile_region

    _write_profiles(tmp_path, "k", "s")
    assert profile_region("prod", home=str(tmp_path)) == "cn-shanghai"
    assert profile_region(None, home=str(tmp_path)) == "cn-beijing"
    assert profile_region("nope", home=str(tmp_path)) is None
    assert profile_region(None, home=str(tmp_path / "missing")) is None


def test_cli_run_with_a_profile_from_aliyun_config(tmp_path, simulator_process):
    from pathlib import Path

    from .conftest import ROOT, run_cli

    _write_profiles(tmp_path, "batchupdate-demo", "batchupdate-demo-secret")
    sim = simulator_process("--seed", str(Path(ROOT / "jobs/approve.csv")))
    result = run_cli(
        "run",
        str(ROOT / "jobs/approve.csv"),
        "--profile",
        "prod",
        "--endpoint",
        sim.url,
        "--json",
        cwd=tmp_path,
        env={"HOME": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["succeeded"] == 6
    wrong = run_cli(
        "run",
        str(ROOT / "jobs/approve.csv"),
        "--profile",
        "default",
        "--endpoint",
        sim.url,
        "--force",
        cwd=tmp_path,
        env={"HOME": str(tmp_path)},
    )
    assert wrong.returncode == 3 and "InvalidAccessKeyId.NotFound" in wrong.stderr
