"""The error model: classification by Code first, every aiohttp exception translated."""

from __future__ import annotations

import inspect

import aiohttp
import pytest

from batchupdate.client import _TRANSLATIONS, parse_answer, retry_after_seconds, translate_transport_error
from batchupdate.errors import (
    BadResponseError,
    CertificateError,
    ConnectError,
    RemoteError,
    RequestTimeout,
    TransportError,
    Verdict,
    classify,
)


def remote(status: int, code: str | None) -> RemoteError:
    return RemoteError(status, code, "m", "RID")


@pytest.mark.parametrize(
    ("status", "code", "verdict"),
    [
        (400, "Throttling.User", Verdict.THROTTLED),  # the gateway's documented status
        (429, "Throttling.User", Verdict.THROTTLED),
        (400, "Throttling", Verdict.THROTTLED),
        (503, "Throttling.Api", Verdict.THROTTLED),
        (429, None, Verdict.THROTTLED),
        (503, "ServiceUnavailable", Verdict.RETRY),
        (500, "InternalError", Verdict.RETRY),
        (502, None, Verdict.RETRY),
        (504, None, Verdict.RETRY),
        (400, "SignatureNonceUsed", Verdict.RETRY),
        (400, "SignatureDoesNotMatch", Verdict.ABORT),
        (400, "IncompleteSignature", Verdict.ABORT),
        (404, "InvalidAccessKeyId.NotFound", Verdict.ABORT),  # 404, yet not "version not found"
        (400, "InvalidAccessKeyId.Inactive", Verdict.ABORT),
        (400, "InvalidTimeStamp.Expired", Verdict.ABORT),
        (400, "InvalidTimeStamp.Format", Verdict.ABORT),
        (403, "Forbidden.RAM", Verdict.ABORT),
        (403, "NoPermission", Verdict.ABORT),
        (404, "ModelVersion.NotFound", Verdict.FAIL),
        (400, "InvalidParameter", Verdict.FAIL),
        (409, None, Verdict.FAIL),
    ],
)
def test_classify_by_code_first(status, code, verdict):
    assert classify(remote(status, code)) is verdict


def test_transport_errors_retry_but_certificate_errors_abort():
    assert classify(ConnectError("x")) is Verdict.RETRY
    assert classify(RequestTimeout("x")) is Verdict.RETRY
    assert classify(BadResponseError("x", status=200)) is Verdict.RETRY
    assert classify(CertificateError("x")) is Verdict.ABORT
    assert classify(ValueError("x")) is Verdict.FAIL


def _aiohttp_client_errors() -> list[type[BaseException]]:
    return sorted(
        {
            obj
            for _, obj in inspect.getmembers(aiohttp, inspect.isclass)
            if issubclass(obj, aiohttp.ClientError)
        },
        key=lambda c: c.__name__,
    )


def test_every_aiohttp_client_exception_is_mapped_explicitly():
    listed = {source for source, _ in _TRANSLATIONS}
    missing = [c.__name__ for c in _aiohttp_client_errors() if c not in listed]
    assert missing == []
    # and the order is right: no entry is shadowed by a broader one before it
    for i, (source, _) in enumerate(_TRANSLATIONS):
        for earlier, _ in _TRANSLATIONS[:i]:
            assert not issubclass(source, earlier), f"{source.__name__} shadowed by {earlier.__name__}"


def _instance(cls: type[BaseException]) -> BaseException:
    exc = cls.__new__(cls)
    BaseException.__init__(exc, "boom")
    return exc


@pytest.mark.parametrize("cls", _aiohttp_client_errors(), ids=lambda c: c.__name__)
def test_translation_gives_our_transport_error(cls):
    translated = translate_transport_error(_instance(cls))
    assert isinstance(translated, TransportError)
    assert cls.__name__ in str(translated)


def test_timeouts_and_os_errors():
    assert isinstance(translate_transport_error(TimeoutError()), RequestTimeout)
    assert isinstance(translate_transport_error(ConnectionResetError()), ConnectError)
    with pytest.raises(TypeError):
        translate_transport_error(ValueError("not transport"))


def test_parse_answer_cases():
    ok = parse_answer(200, {}, b'{"RequestId": "R1"}')
    assert ok.request_id == "R1"
    ok = parse_answer(200, {"x-acs-request-id": "H1"}, b"{}")
    assert ok.request_id == "H1"
    with pytest.raises(BadResponseError, match="not JSON"):
        parse_answer(200, {}, b"<html>oops</html>")
    with pytest.raises(BadResponseError):
        parse_answer(502, {}, b"<html>Bad Gateway</html>")
    with pytest.raises(BadResponseError):
        parse_answer(200, {}, b"[1]")
    with pytest.raises(RemoteError) as info:
        parse_answer(
            400,
            {"x-acs-retry-after": "1500"},
            b'{"requestId": "R2", "code": "Throttling.User", "message": "slow down"}',
        )
    assert (info.value.code, info.value.request_id, info.value.retry_after) == ("Throttling.User", "R2", 1.5)
    assert classify(info.value) is Verdict.THROTTLED
    with pytest.raises(RemoteError) as info:
        parse_answer(404, {}, b"not json")
    assert info.value.code is None and info.value.status == 404


def test_retry_after_headers():
    assert retry_after_seconds({"x-acs-retry-after": "250"}) == 0.25
    assert retry_after_seconds({"Retry-After": "3"}) == 3.0
    assert retry_after_seconds({"Retry-After": "Thu, 01 Jan 1970 00:00:00 GMT"}) == 0.0
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None
