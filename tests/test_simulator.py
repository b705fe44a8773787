"""The simulator: a faithful, misbehaving PAI model registry on a real socket."""

from __future__ import annotations

import hashlib
import time

import anyio
import pytest
from alibabacloud_aiworkspace20210204 import models as sdk_models
from alibabacloud_aiworkspace20210204.client import Client as SdkClient
from alibabacloud_tea_openapi.models import Config

from batchupdate import signing
from batchupdate.client import PaiClient
from batchupdate.credentials import DEMO_CREDENTIALS, Credentials
from batchupdate.errors import BadResponseError, ConnectError, RemoteError, RequestTimeout
from batchupdate.jobs import JobSource
from batchupdate.select import select_versions
from batchupdate.simulator import Faults, Simulator

V = [{"ModelId": "m-1", "VersionName": f"1.0.{i}"} for i in range(5)]


def sdk_for(sim: Simulator, ak: str = "batchupdate-demo", sk: str = "batchupdate-demo-secret") -> SdkClient:
    host = sim.url.split("//", 1)[1]
    return SdkClient(Config(access_key_id=ak, access_key_secret=sk, endpoint=host, protocol="http"))


async def test_official_sdk_update_succeeds_against_the_simulator():
    async with Simulator(versions=V) as sim:
        request = sdk_models.UpdateModelVersionRequest(approval_status="Approved", metrics={"auc": 0.9})
        response = await sdk_for(sim).update_model_version_async("m-1", "1.0.0", request)
        assert response.body.request_id
        assert sim.version("m-1", "1.0.0")["ApprovalStatus"] == "Approved"
        assert sim.version("m-1", "1.0.0")["Metrics"] == {"auc": 0.9}
        got = await sdk_for(sim).get_model_version_async("m-1", "1.0.0", sdk_models.GetModelVersionRequest())
        assert got.body.approval_status == "Approved"


async def test_errors_in_the_alibaba_envelope_with_fresh_request_ids():
    async with Simulator(versions=V) as sim, PaiClient(sim.url, DEMO_CREDENTIALS) as client:
        ids = set()
        for _ in range(3):
            ids.add((await client.put_version("m-1", "1.0.1", b'{"VersionDescription":"x"}')).request_id)
        assert len(ids) == 3
        with pytest.raises(RemoteError) as info:
            await client.get_version("m-1", "9.9.9")
        assert (info.value.status, info.value.code) == (404, "ModelVersion.NotFound")
        assert info.value.request_id
        with pytest.raises(RemoteError) as info:
            await client.get_version("no-model", "1.0.0")
        assert info.value.code == "Model.NotFound"


async def test_documented_rules_are_enforced():
    async with Simulator(versions=V) as sim, PaiClient(sim.url, DEMO_CREDENTIALS) as client:
        long_metrics = b'{"Metrics":{"k":"' + b"x" * 8200 + b'"}}'
        for body, words in [
            (long_metrics, "8,192"),
            (b'{"ApprovalStatus":"approved"}', "did you mean Approved"),
            (b'{"SourceType":"PAIFlow","SourceId":"x"}', "SourceId"),
            (b'{"Nope":1}', "Unknown parameter"),
        ]:
            with pytest.raises(RemoteError, match=words) as info:
                await client.put_version("m-1", "1.0.0", body)
            assert info.value.code == "InvalidParameter"
        await client.put_version("m-1", "1.0.0", b'{"ApprovalStatus":"Approved"}')
        await client.put_version("m-1", "1.0.0", b'{"ApprovalStatus":"Approved"}')  # same value: fine
        with pytest.raises(RemoteError, match="cannot be changed") as info:
            await client.put_version("m-1", "1.0.0", b'{"ApprovalStatus":"Rejected"}')
        assert info.value.status == 400
        assert sim.version("m-1", "1.0.0")["ApprovalStatus"] == "Approved"


async def test_signature_checks_answer_as_the_gateway_does():
    async with Simulator(versions=V) as sim:
        async with PaiClient(sim.url, Credentials("batchupdate-demo", "wrong-secret")) as client:
            with pytest.raises(RemoteError) as info:
                await client.put_version("m-1", "1.0.0", b'{"VersionDescription":"x"}')
            assert (info.value.status, info.value.code) == (400, "SignatureDoesNotMatch")
        async with PaiClient(sim.url, Credentials("unknown-key", "s")) as client:
            with pytest.raises(RemoteError) as info:
                await client.put_version("m-1", "1.0.0", b'{"VersionDescription":"x"}')
            assert (info.value.status, info.value.code) == (404, "InvalidAccessKeyId.NotFound")
        assert sim.counters.puts_applied == {}


async def _raw(
    sim: Simulator,
    *,
    date: str | None = None,
    nonce: str = "n-1",
    body: bytes = b'{"VersionDescription":"x"}',
    drop: str | None = None,
    tamper_body: bytes | None = None,
) -> RemoteError | dict:
    import aiohttp

    host = sim.url.split("//", 1)[1]
    path = "/api/v1/models/m-1/versions/1.0.0"
    headers = signing.signed_headers(
        method="PUT",
        host=host,
        path=path,
        query=None,
        action="UpdateModelVersion",
        body=body,
        access_key_id="batchupdate-demo",
        access_key_secret="batchupdate-demo-secret",
        user_agent="t",
        date=date or signing.timestamp(),
        nonce=nonce,
    )
    if drop:  # re-sign without one header: the signature is valid, but incomplete
        del headers[drop]
        headers.pop("Authorization")
        headers["Authorization"] = signing.authorization(
            "PUT",
            path,
            None,
            headers,
            hashlib.sha256(body).hexdigest(),
            "batchupdate-demo",
            "batchupdate-demo-secret",
        )
    async with (
        aiohttp.ClientSession() as session,
        session.put(sim.url + path, data=tamper_body or body, headers=headers) as r,
    ):
        return {"status": r.status, **(await r.json())}


async def test_clock_skew_nonce_reuse_body_hash_and_unsigned_headers():
    async with Simulator(versions=V) as sim:
        old = signing.timestamp(time.time() - 16 * 60)
        assert (await _raw(sim, date=old))["Code"] == "InvalidTimeStamp.Expired"  # type: ignore[index]
        assert (await _raw(sim, date="yesterday"))["Code"] == "InvalidTimeStamp.Format"  # type: ignore[index]
        assert (await _raw(sim, nonce="same"))["status"] == 200  # type: ignore[index]
        assert (await _raw(sim, nonce="same"))["Code"] == "SignatureNonceUsed"  # type: ignore[index]
        got = await _raw(sim, nonce="n-2", tamper_body=b'{"VersionDescription":"y"}')
        assert got["Code"] == "SignatureDoesNotMatch"  # type: ignore[index]
        got = await _raw(sim, nonce="n-3", drop="x-acs-action")
        assert got["Code"] == "IncompleteSignature"  # type: ignore[index]
        assert sim.version("m-1", "1.0.0")["VersionDescription"] == "x"


async def test_list_pages_and_filters():
    versions = [
        {
            "ModelId": "m",
            "VersionName": f"1.0.{i}",
            "ApprovalStatus": "Approved" if i % 3 == 0 else "Pending",
            "Labels": [{"Key": "team", "Value": "a" if i % 2 else "b"}],
        }
        for i in range(1234)
    ]
    async with Simulator(versions=versions) as sim, PaiClient(sim.url, DEMO_CREDENTIALS) as client:
        names = [v["VersionName"] async for v in select_versions(client, "m", page_size=100)]
        assert len(names) == 1234 and len(set(names)) == 1234
        approved = [v async for v in select_versions(client, "m", filters={"ApprovalStatus": "Approved"})]
        assert len(approved) == 412 and all(v["ApprovalStatus"] == "Approved" for v in approved)
        team_a = [v async for v in select_versions(client, "m", filters={"Label": "team=a"})]
        assert len(team_a) == 617
        assert sim.counters.by_action["ListModelVersions"] == 13 + 5 + 7


async def test_seed_from_job_files(tmp_path):
    path = tmp_path / "j.csv"
    path.write_text("ModelId,VersionName,ApprovalStatus\nm-1,1.0.0,Approved\nm-2,2.0.0_b,Rejected\n")
    sim = Simulator()
    assert sim.seed_from_jobs([JobSource(path, "j.csv", "csv")]) == 2
    assert sim.version("m-2", "2.0.0_b")["ApprovalStatus"] == "Pending"
    assert (
        sim.load_state(
            b'{"versions": [{"ModelId": "m-3", "VersionName": "3.0.0", "ApprovalStatus": "Approved"}]}'
        )
        == 1
    )
    assert sim.version("m-3", "3.0.0")["ApprovalStatus"] == "Approved"


async def test_fault_injection_is_seeded_and_counted():
    async def hits(faults: Faults) -> tuple[list[str], Simulator]:
        outcomes = []
        async with (
            Simulator(versions=V, faults=faults) as sim,
            PaiClient(sim.url, DEMO_CREDENTIALS, timeout=0.3) as client,
        ):
            for _ in range(40):
                try:
                    await client.get_version("m-1", "1.0.0")
                    outcomes.append("ok")
                except (RemoteError, ConnectError, RequestTimeout, BadResponseError) as exc:
                    outcomes.append(type(exc).__name__ + str(getattr(exc, "code", "")))
        return outcomes, sim

    faults = Faults(
        error_rate=0.2, garbage_rate=0.1, reset_rate=0.1, hang_rate=0.05, hang_seconds=1.0, seed=7
    )
    first, sim = await hits(faults)
    second, _ = await hits(faults)
    assert first == second  # seeded
    assert sim.counters.by_code["ServiceUnavailable"] > 0 and sim.counters.garbage > 0
    assert sim.counters.resets > 0 and sim.counters.hangs > 0
    assert any(o.startswith("BadResponseError") for o in first)
    assert any(o.startswith("RequestTimeout") for o in first)


async def test_throttling_status_and_retry_after_flags():
    for status, hint in ((400, True), (429, False)):
        faults = Faults(rate_limit=5, throttle_status=status, retry_after=hint)
        async with (
            Simulator(versions=V, faults=faults) as sim,
            PaiClient(sim.url, DEMO_CREDENTIALS) as client,
        ):
            errors = []
            for _ in range(10):
                try:
                    await client.get_version("m-1", "1.0.0")
                except RemoteError as exc:
                    errors.append(exc)
            assert errors and all(e.code == "Throttling.User" and e.status == status for e in errors)
            assert all((e.retry_after is not None) == hint for e in errors)
            assert sim.counters.throttled == len(errors)


async def test_counters_see_max_in_flight():
    async with (
        Simulator(versions=V, faults=Faults(latency=0.05)) as sim,
        PaiClient(sim.url, DEMO_CREDENTIALS, concurrency=8) as client,
    ):
        async with anyio.create_task_group() as tg:
            for _ in range(16):
                tg.start_soon(client.get_version, "m-1", "1.0.0")
        assert sim.counters.max_in_flight == 8
        assert sim.counters.by_status[200] == 16


async def test_rate_limit_holds_within_five_percent_over_five_seconds():
    rate = 40.0
    async with (
        Simulator(versions=V, faults=Faults(rate_limit=rate)) as sim,
        PaiClient(sim.url, DEMO_CREDENTIALS, concurrency=4) as client,
    ):
        start = time.monotonic()

        async def hammer() -> None:
            while time.monotonic() - start < 5.5:
                try:
                    await client.get_version("m-1", "1.0.0")
                except RemoteError:
                    await anyio.sleep(0.002)

        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(hammer)
        times = [t for t in sim.counters.accepted_times if start + 0.5 <= t < start + 5.5]
        assert abs(len(times) / 5.0 - rate) <= 0.05 * rate, len(times) / 5.0
        assert sim.counters.throttled > 0


def test_the_simulator_command_serves_and_the_official_sdk_updates_through_it(simulator_process, tmp_path):
    import asyncio
    from pathlib import Path

    from .conftest import ROOT

    sim = simulator_process("--seed", str(Path(ROOT / "jobs/approve.csv")))
    host = sim.url.split("//", 1)[1]
    assert host.startswith("127.0.0.1:")
    client = SdkClient(
        Config(
            access_key_id="batchupdate-demo",
            access_key_secret="batchupdate-demo-secret",
            endpoint=host,
            protocol="http",
        )
    )
    request = sdk_models.UpdateModelVersionRequest(
        approval_status="Approved", version_description="via the SDK"
    )
    response = asyncio.run(client.update_model_version_async("model-7a1b2c3d4e5f", "1.0.0", request))
    assert response.body.request_id
    assert sim.puts() == {("model-7a1b2c3d4e5f", "1.0.0"): 1}
