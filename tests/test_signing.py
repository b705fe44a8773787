"""ACS3-HMAC-SHA256 against the official signer, byte for byte."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

from alibabacloud_tea_openapi.utils import Utils
from darabonba.url import Url as DaraURL
from hypothesis import given, settings
from hypothesis import strategies as st

from batchupdate import signing

ALG = "ACS3-HMAC-SHA256"


def official(method, path, query, headers, payload, ak, secret):
    request = SimpleNamespace(method=method, pathname=path, query=query, headers=headers)
    return Utils.get_authorization(request, ALG, payload, ak, secret)


segments = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=20,
)
header_values = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


@settings(max_examples=400)
@given(
    method=st.sampled_from(["PUT", "GET"]),
    model=segments,
    version=segments,
    query=st.none()
    | st.dictionaries(
        st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=1, max_size=10),
        segments,
        max_size=4,
    ),
    body=st.none() | st.binary(max_size=200),
    token=st.none() | st.text(alphabet="abcdefABCDEF0123456789+/=", min_size=1, max_size=40),
    ak=st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=24
    ),
    secret=st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s),
    ua=header_values,
)
def test_authorization_equals_the_official_signer(method, model, version, query, body, token, ak, secret, ua):
    path = f"/api/v1/models/{signing.encode_segment(model)}/versions/{signing.encode_segment(version)}"
    headers = signing.signed_headers(
        method=method,
        host="aiworkspace.cn-hangzhou.aliyuncs.com",
        path=path,
        query=query,
        action="UpdateModelVersion",
        body=body,
        access_key_id=ak,
        access_key_secret=secret,
        security_token=token,
        user_agent=ua,
        date="2026-11-29T10:00:00Z",
        nonce="0123abcd",
    )
    ours = headers.pop("Authorization")
    payload = hashlib.sha256(body or b"").hexdigest()
    assert headers["x-acs-content-sha256"] == payload
    assert ours == official(method, path, query, headers, payload, ak, secret)
    assert ("x-acs-security-token" in headers) == bool(token)
    assert ("content-type" in headers) == (body is not None)


@settings(max_examples=300)
@given(segments)
def test_path_segments_are_encoded_as_the_sdk_encodes_them(text):
    assert signing.encode_segment(text) == DaraURL.percent_encode(text)


def test_reserved_characters_example_from_the_docs():
    assert signing.encode_segment("model 1+a*b") == "model%201%2Ba%2Ab"
    assert signing.encode_segment("模型~1") == "%E6%A8%A1%E5%9E%8B~1"


def test_empty_body_hash_is_still_sent_and_signed():
    headers = signing.signed_headers(
        method="GET",
        host="h",
        path="/api/v1/models/m/versions",
        query={"PageNumber": "1"},
        action="ListModelVersions",
        body=None,
        access_key_id="id",
        access_key_secret="s",
        user_agent="ua",
        date="2026-11-29T10:00:00Z",
        nonce="n",
    )
    assert headers["x-acs-content-sha256"] == signing.EMPTY_BODY_SHA256
    assert "x-acs-content-sha256" in headers["Authorization"]
    canonical, names = signing.canonical_request("GET", "/p", {"b": "2", "a": "x y"}, {"Host": " h "}, "e")
    assert canonical == "GET\n/p\na=x%20y&b=2\nhost:h\n\nhost\ne"
    assert names == "host"


def test_parse_authorization_round_trip():
    value = signing.authorization("GET", "/", None, {"host": "h"}, signing.EMPTY_BODY_SHA256, "AK", "SK")
    key, names, sig = signing.parse_authorization(value)  # type: ignore[misc]
    assert (key, names, len(sig)) == ("AK", ["host"], 64)
    assert signing.parse_authorization("Bearer x") is None
    assert signing.parse_authorization("ACS3-HMAC-SHA256 Credential=a") is None


@settings(max_examples=200)
@given(secret=st.text(max_size=100), message=st.binary(max_size=300))
def test_precomputed_hmac_states_equal_the_standard_hmac(secret, message):
    import hmac

    inner, outer = signing._hmac_states(secret)
    inner, outer = inner.copy(), outer.copy()
    inner.update(message)
    outer.update(inner.digest())
    assert outer.hexdigest() == hmac.new(secret.encode(), message, "sha256").hexdigest()
