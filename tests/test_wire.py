"""What goes on the wire: our client and the official SDK, recorded by one local server."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from urllib.parse import unquote

import pytest
from aiohttp import web
from alibabacloud_aiworkspace20210204 import models as sdk_models
from alibabacloud_aiworkspace20210204.client import Client as SdkClient
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_openapi.utils import Utils
from darabonba.url import Url as DaraURL

from batchupdate import signing
from batchupdate.client import PaiClient
from batchupdate.credentials import Credentials
from batchupdate.schema import build_job

AK, SK = "LTAI-wire-test", "wire-test-secret-9f1c"


@pytest.fixture
async def recorder():
    seen: list[dict] = []

    async def record(request: web.Request) -> web.Response:
        seen.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": await request.read(),
                "query": dict(request.query),
            }
        )
        return web.json_response({"RequestId": "REC-1"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"127.0.0.1:{port}", seen
    await runner.cleanup()


def verify_with_official_signer(req: dict, secret: str, path: str | None = None) -> None:
    auth = req["headers"]["authorization"]
    key, names, _ = signing.parse_authorization(auth)  # type: ignore[misc]
    if path is None:
        path, _, _ = req["raw_path"].partition("?")
    request = SimpleNamespace(
        method=req["method"],
        pathname=path,
        query=req["query"],
        headers={name: req["headers"][name] for name in names},
    )
    payload = hashlib.sha256(req["body"]).hexdigest()
    assert Utils.get_authorization(request, "ACS3-HMAC-SHA256", payload, key, secret) == auth


CASES = [
    ("model-abc", "1.0.0", {"ApprovalStatus": "Approved"}),
    (
        "model 1+a*b",
        "2.3.4_beta",
        {"VersionDescription": "模型说明 ✓", "Metrics": {"acc": 0.93, "f1": 6.103515625e-05}},
    ),
    (
        "m/with:colon@x!",
        "0.0.1",
        {"Options": '{"k": "v"}', "ExtraInfo": {"a": [1, None, True]}, "SourceType": "Custom"},
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("model", "version", "body"), CASES)
async def test_our_put_matches_the_official_sdk_on_the_wire(recorder, model, version, body):
    host, seen = recorder
    job = build_job("t:1", {"ModelId": model, "VersionName": version, **body}, "jsonl")
    assert not isinstance(job, list)
    async with PaiClient(f"http://{host}", Credentials(AK, SK)) as client:
        response = await client.put_version(model, version, job.body_bytes)
    assert response.request_id == "REC-1"

    sdk = SdkClient(Config(access_key_id=AK, access_key_secret=SK, endpoint=host, protocol="http"))
    request = sdk_models.UpdateModelVersionRequest(
        approval_status=body.get("ApprovalStatus"),
        version_description=body.get("VersionDescription"),
        metrics=body.get("Metrics"),
        options=body.get("Options"),
        extra_info=body.get("ExtraInfo"),
        source_type=body.get("SourceType"),
    )
    await sdk.update_model_version_async(model, version, request)

    ours, theirs = seen
    assert ours["method"] == theirs["method"] == "PUT"
    # The path the SDK signs. On the wire, its aiohttp re-quotes some escapes (%2A to *, %3A to :,
    # ...), so for such names the SDK's own signature no longer matches its request; ours sends
    # exactly what it signs. Decoded, both name the same resource.
    sdk_path = f"/api/v1/models/{DaraURL.percent_encode(model)}/versions/{DaraURL.percent_encode(version)}"
    assert ours["raw_path"] == sdk_path
    assert unquote(ours["raw_path"]) == unquote(theirs["raw_path"])
    assert ours["body"] == theirs["body"]
    ours_signed = set(signing.parse_authorization(ours["headers"]["authorization"])[1])  # type: ignore[index]
    theirs_signed = set(signing.parse_authorization(theirs["headers"]["authorization"])[1])  # type: ignore[index]
    # The SDK adds x-acs-credentials-provider (informational); everything else is the same set.
    assert ours_signed == theirs_signed - {"x-acs-credentials-provider"}
    for name in ("host", "x-acs-version", "x-acs-action", "accept", "content-type", "x-acs-content-sha256"):
        assert ours["headers"][name] == theirs["headers"][name], name
    verify_with_official_signer(ours, SK)
    verify_with_official_signer(theirs, SK, path=sdk_path)


@pytest.mark.asyncio
async def test_sts_credentials_and_list_query_on_the_wire(recorder):
    host, seen = recorder
    creds = Credentials(AK, SK, "sts-token-value")
    async with PaiClient(f"http://{host}", creds) as client:
        await client.list_versions_page("model*1", 2, 50, {"ApprovalStatus": "Pending", "Label": "a=b c"})
        await client.get_version("model*1", "1.0.0")
    listed, got = seen
    assert listed["raw_path"].startswith("/api/v1/models/model%2A1/versions?")
    assert listed["query"] == {
        "PageNumber": "2",
        "PageSize": "50",
        "ApprovalStatus": "Pending",
        "Label": "a=b c",
    }
    assert listed["headers"]["x-acs-action"] == "ListModelVersions"
    assert listed["headers"]["x-acs-security-token"] == "sts-token-value"
    assert listed["headers"]["x-acs-accesskey-id"] == AK
    assert got["body"] == b"" and "content-type" not in got["headers"]
    assert listed["headers"]["x-acs-signature-nonce"] != got["headers"]["x-acs-signature-nonce"]
    assert listed["headers"]["user-agent"].startswith("batchupdate/")
    verify_with_official_signer(listed, SK)
    verify_with_official_signer(got, SK)
