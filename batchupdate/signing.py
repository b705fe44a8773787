"""ACS3-HMAC-SHA256, the request signature of Alibaba Cloud's API gateway. Pure functions, no I/O.

    CanonicalRequest = METHOD \\n encoded-path \\n canonical-query \\n
                       (sorted signed headers, "name:trimmed-value\\n" each) \\n
                       signed-header-names joined by ";" \\n hex(sha256(body))
    StringToSign     = "ACS3-HMAC-SHA256\\n" + hex(sha256(CanonicalRequest))
    Authorization    = "ACS3-HMAC-SHA256 Credential=<id>,SignedHeaders=<names>,Signature=<hex>"

Every header we send is signed. Tests compare with the official
`alibabacloud_tea_openapi.utils.Utils.get_authorization` byte for byte.
"""

from __future__ import annotations

import functools
import hashlib
import random
import re
import secrets
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

__all__ = [
    "ALGORITHM",
    "API_VERSION",
    "EMPTY_BODY_SHA256",
    "authorization",
    "canonical_query",
    "canonical_request",
    "encode_segment",
    "new_nonce",
    "signed_headers",
    "timestamp",
]

ALGORITHM = "ACS3-HMAC-SHA256"
API_VERSION = "2021-02-04"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()


def encode_segment(text: str) -> str:
    """Percent-encode one path segment: UTF-8, everything but A-Z a-z 0-9 _ . - ~ escaped
    (what the SDK's `percent_encode` produces: `model 1+a*b` becomes `model%201%2Ba%2Ab`)."""
    if _UNRESERVED.fullmatch(text):  # most ids and version names: nothing to escape
        return text
    return quote(text, safe="", encoding="utf-8")


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def canonical_query(query: Mapping[str, str] | None) -> str:
    """Keys sorted; `key=` + the value percent-encoded keeping only `~`; joined by `&`."""
    if not query:
        return ""
    return "&".join(f"{key}={quote(query[key], safe='~')}" for key in sorted(query))


def canonical_request(
    method: str,
    path: str,
    query: Mapping[str, str] | None,
    headers: Mapping[str, str],
    payload_sha256: str,
) -> tuple[str, str]:
    """(CanonicalRequest, signed header names). `headers` are the signed ones, any case."""
    return _canonical(method, path, query, {k.lower(): v.strip() for k, v in headers.items()}, payload_sha256)


def _canonical(
    method: str, path: str, query: Mapping[str, str] | None, lowered: Mapping[str, str], payload_sha256: str
) -> tuple[str, str]:
    """The canonical request of headers whose names are lower case and values trimmed."""
    names = sorted(lowered)
    block = "".join([f"{name}:{lowered[name]}\n" for name in names])
    signed = ";".join(names)
    text = f"{method}\n{path or '/'}\n{canonical_query(query)}\n{block}\n{signed}\n{payload_sha256}"
    return text, signed


def _authorize(canonical: tuple[str, str], access_key_id: str, access_key_secret: str) -> str:
    text, signed = canonical
    to_sign = f"{ALGORITHM}\n{hashlib.sha256(text.encode()).hexdigest()}"
    inner, outer = _hmac_states(access_key_secret)
    inner, outer = inner.copy(), outer.copy()
    inner.update(to_sign.encode())
    outer.update(inner.digest())
    signature = outer.hexdigest()
    return f"{ALGORITHM} Credential={access_key_id},SignedHeaders={signed},Signature={signature}"


@functools.lru_cache(maxsize=8)
def _hmac_states(secret: str) -> tuple[Any, Any]:
    """HMAC-SHA256 (RFC 2104) with the key schedule done once per secret, not once per request:
    the SHA-256 states after the inner and outer padded keys. Tests check it against hmac."""
    key = secret.encode()
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    return inner, outer


def authorization(
    method: str,
    path: str,
    query: Mapping[str, str] | None,
    headers: Mapping[str, str],
    payload_sha256: str,
    access_key_id: str,
    access_key_secret: str,
) -> str:
    """The Authorization header's value for a request whose every header in `headers` is signed."""
    canonical = canonical_request(method, path, query, headers, payload_sha256)
    return _authorize(canonical, access_key_id, access_key_secret)


def parse_authorization(value: str) -> tuple[str, list[str], str] | None:
    """(AccessKeyId, signed header names, signature) from an Authorization value, or None."""
    prefix = ALGORITHM + " "
    if not value.startswith(prefix):
        return None
    parts: dict[str, str] = {}
    for item in value[len(prefix) :].split(","):
        key, sep, val = item.strip().partition("=")
        if not sep:
            return None
        parts[key] = val
    if not {"Credential", "SignedHeaders", "Signature"} <= parts.keys():
        return None
    return parts["Credential"], parts["SignedHeaders"].split(";"), parts["Signature"]


def timestamp(now: float | None = None) -> str:
    """`x-acs-date`: UTC, second precision, `YYYY-MM-DDTHH:MM:SSZ`."""
    return _utc_second(int(time.time() if now is None else now))


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


def new_nonce() -> str:
    """`x-acs-signature-nonce`: random, unique per attempt. It must be unique, not secret: 128
    bits from a generator seeded from the OS at start (a system call per nonce costs more)."""
    return f"{_NONCES.getrandbits(128):032x}"


_NONCES = random.Random(secrets.randbits(128))


def signed_headers(
    *,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str] | None,
    action: str,
    body: bytes | None,
    access_key_id: str,
    access_key_secret: str,
    security_token: str | None = None,
    user_agent: str,
    date: str,
    nonce: str,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every header of one signed request, Authorization included."""
    headers = {
        "host": host.strip(),
        "x-acs-version": API_VERSION,
        "x-acs-action": action.strip(),
        "user-agent": user_agent.strip(),
        "x-acs-date": date,
        "x-acs-signature-nonce": nonce,
        "accept": "application/json",
    }
    if extra:
        headers.update({name.lower(): value.strip() for name, value in extra.items()})
    if body is not None:
        headers["content-type"] = "application/json; charset=utf-8"
        payload = hashlib.sha256(body).hexdigest()
    else:
        payload = EMPTY_BODY_SHA256
    headers["x-acs-content-sha256"] = payload
    if security_token:
        headers["x-acs-accesskey-id"] = access_key_id.strip()
        headers["x-acs-security-token"] = security_token.strip()
    # our header names are lower case already: skip re-normalizing them on the hot path
    canonical = _canonical(method, path, query, headers, payload)
    headers["Authorization"] = _authorize(canonical, access_key_id, access_key_secret)
    return headers
