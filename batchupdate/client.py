"""The HTTP client: one aiohttp session per run, signed requests, responses mapped to our errors.

It sends each request once. Retrying and sleeping belong to `retry.py`; this module only turns
every outcome into a `Response` or one of our exceptions, and aiohttp's exceptions are
translated in exactly one place (`translate_transport_error`).
"""

from __future__ import annotations

import asyncio
import email.utils
import ipaddress
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from yarl import URL

from . import signing
from ._version import __version__
from .credentials import CredentialProvider, Credentials
from .errors import (
    BadResponseError,
    BatchUpdateError,
    CertificateError,
    ConfigurationError,
    ConnectError,
    RemoteError,
    RequestTimeout,
    TransportError,
)

__all__ = ["PaiClient", "Response", "endpoint_for", "translate_transport_error"]

USER_AGENT = f"batchupdate/{__version__}"
_REGION = re.compile(r"[a-z0-9][a-z0-9-]*[a-z0-9]")
LIST_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class Response:
    """A successful answer: status, the server's RequestId, and the JSON object it sent."""

    status: int
    request_id: str | None
    data: dict[str, Any]


def endpoint_for(region: str, *, vpc: bool = False) -> str:
    """The public (or VPC) endpoint of a region, built by hand: the SDK's table has bad entries."""
    if not _REGION.fullmatch(region):
        raise ConfigurationError(f"--region {region!r}: not a region id (e.g. cn-hangzhou)")
    return f"https://aiworkspace{'-vpc' if vpc else ''}.{region}.aliyuncs.com"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_endpoint(endpoint: str) -> URL:
    """https always; plain http only to a loopback host."""
    url = URL(endpoint)
    if url.scheme not in ("https", "http") or not url.host:
        raise ConfigurationError(f"--endpoint {endpoint!r}: expected https://HOST")
    if url.scheme == "http" and not _is_loopback(url.host):
        raise ConfigurationError(
            f"--endpoint {endpoint!r}: plain http is refused except to a loopback host; use https://"
        )
    if url.path not in ("", "/") or url.query_string:
        raise ConfigurationError(f"--endpoint {endpoint!r}: give only scheme and host, no path")
    return url


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The server's wait hint: `x-acs-retry-after` (milliseconds) or `Retry-After` (seconds or a date)."""
    raw = headers.get("x-acs-retry-after")
    if raw:
        try:
            return max(0.0, float(raw) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("Retry-After")
    if raw:
        try:
            return max(0.0, float(raw))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(raw)
            except (TypeError, ValueError):
                return None
            return max(0.0, when.timestamp() - time.time())
    return None


# Every aiohttp client exception, most specific first, mapped to ours. A test checks that each
# ClientError subclass aiohttp exports is listed, so a new aiohttp version cannot slip through.
_TRANSLATIONS: tuple[tuple[type[BaseException], type[TransportError]], ...] = (
    (aiohttp.ClientConnectorCertificateError, CertificateError),
    (aiohttp.ServerFingerprintMismatch, CertificateError),
    (aiohttp.ClientConnectorSSLError, CertificateError),
    (aiohttp.ClientSSLError, CertificateError),
    (aiohttp.ConnectionTimeoutError, RequestTimeout),
    (aiohttp.SocketTimeoutError, RequestTimeout),
    (aiohttp.ServerTimeoutError, RequestTimeout),
    (asyncio.TimeoutError, RequestTimeout),
    (aiohttp.ClientConnectorDNSError, ConnectError),
    (aiohttp.ClientProxyConnectionError, ConnectError),
    (aiohttp.ClientHttpProxyError, ConnectError),
    (aiohttp.ClientConnectorError, ConnectError),
    (aiohttp.ServerDisconnectedError, ConnectError),
    (aiohttp.ClientOSError, ConnectError),
    (aiohttp.ServerConnectionError, ConnectError),
    (aiohttp.ClientConnectionResetError, ConnectError),
    (aiohttp.ClientConnectionError, ConnectError),
    (aiohttp.ClientPayloadError, ConnectError),
    (aiohttp.ContentTypeError, BadResponseError),
    (aiohttp.TooManyRedirects, BadResponseError),
    (aiohttp.WSServerHandshakeError, BadResponseError),
    (aiohttp.ClientResponseError, BadResponseError),
    (aiohttp.UploadAbortedError, ConnectError),
    (aiohttp.InvalidUrlRedirectClientError, BadResponseError),
    (aiohttp.NonHttpUrlRedirectClientError, BadResponseError),
    (aiohttp.InvalidUrlClientError, ConnectError),
    (aiohttp.InvalidURL, ConnectError),
    (aiohttp.RedirectClientError, BadResponseError),
    (aiohttp.NonHttpUrlClientError, ConnectError),
    (aiohttp.ClientError, ConnectError),
    (OSError, ConnectError),
)


def translate_transport_error(exc: BaseException) -> TransportError:
    """The one place where aiohttp's (and the socket layer's) exceptions become ours."""
    for source, target in _TRANSLATIONS:
        if isinstance(exc, source):
            try:
                detail = str(exc)
            except Exception:  # a half-built exception must not hide the real failure
                detail = ""
            text = f"{type(exc).__name__}: {detail}".rstrip(": ")
            if target is BadResponseError:
                return BadResponseError(text, status=getattr(exc, "status", 0) or 0)
            return target(text)
    raise TypeError(f"not a transport error: {exc!r}")


def _error_fields(data: Any) -> tuple[str | None, str | None, str | None]:
    if not isinstance(data, dict):
        return None, None, None
    code = data.get("Code", data.get("code"))
    message = data.get("Message", data.get("message"))
    request_id = data.get("RequestId", data.get("requestId"))
    return (
        str(code) if code is not None else None,
        str(message) if message is not None else None,
        str(request_id) if request_id is not None else None,
    )


class PaiClient:
    """Signed calls to the PAI model registry. Use as `async with PaiClient(...) as client:`."""

    def __init__(
        self,
        endpoint: str,
        credentials: CredentialProvider | Credentials,
        *,
        concurrency: int = 16,
        timeout: float = 30.0,
        user_agent: str = USER_AGENT,
    ) -> None:
        self._url = check_endpoint(endpoint)
        self._host = self._url.raw_authority
        self._base = f"{self._url.scheme}://{self._host}"
        self._credentials = (
            credentials
            if isinstance(credentials, CredentialProvider)
            else CredentialProvider(static=credentials)
        )
        self._concurrency = concurrency
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None

    @property
    def endpoint(self) -> str:
        return str(self._url)

    async def __aenter__(self) -> PaiClient:
        context = ssl.create_default_context()  # verification always on
        connector = aiohttp.TCPConnector(
            limit=self._concurrency,
            limit_per_host=self._concurrency,
            ssl=context if self._url.scheme == "https" else False,
            keepalive_timeout=30,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @staticmethod
    def version_path(model_id: str, version_name: str) -> str:
        return (
            f"/api/v1/models/{signing.encode_segment(model_id)}"
            f"/versions/{signing.encode_segment(version_name)}"
        )

    async def put_version(self, model_id: str, version_name: str, body: bytes) -> Response:
        """UpdateModelVersion: body is the canonical JSON bytes of the fields being set."""
        return await self.request(
            "PUT", self.version_path(model_id, version_name), action="UpdateModelVersion", body=body
        )

    async def get_version(self, model_id: str, version_name: str) -> Response:
        """GetModelVersion."""
        return await self.request("GET", self.version_path(model_id, version_name), action="GetModelVersion")

    async def list_versions_page(
        self, model_id: str, page: int, page_size: int, filters: Mapping[str, str] | None = None
    ) -> Response:
        query = {"PageNumber": str(page), "PageSize": str(page_size), **(filters or {})}
        return await self.request(
            "GET",
            f"/api/v1/models/{signing.encode_segment(model_id)}/versions",
            action="ListModelVersions",
            query=query,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        action: str,
        query: Mapping[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        """One signed attempt (a fresh date and nonce each call). Raises RemoteError or
        TransportError; returns only a 2xx answer holding a JSON object."""
        session = self._session
        if session is None:
            raise BatchUpdateError("PaiClient used outside `async with`")
        creds = self._credentials.current
        headers = signing.signed_headers(
            method=method,
            host=self._host,
            path=path,
            query=query,
            action=action,
            body=body,
            access_key_id=creds.access_key_id,
            access_key_secret=creds.access_key_secret,
            security_token=creds.security_token,
            user_agent=self._user_agent,
            date=signing.timestamp(),
            nonce=signing.new_nonce(),
        )
        query_string = "&".join(
            f"{signing.encode_segment(k)}={signing.encode_segment(v)}" for k, v in (query or {}).items()
        )
        # encoded=True: aiohttp would otherwise turn %2A into * (and more), breaking the signature
        target = self._base + path + ("?" + query_string if query_string else "")
        url = URL(target, encoded=True)
        try:
            async with session.request(method, url, data=body, headers=headers) as answer:
                raw = await answer.read()
                status = answer.status
                answer_headers = answer.headers
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise translate_transport_error(exc) from None
        return parse_answer(status, answer_headers, raw)


def parse_answer(status: int, headers: Mapping[str, str], raw: bytes) -> Response:
    """Map one HTTP answer to a Response, RemoteError or BadResponseError."""
    header_request_id = headers.get("x-acs-request-id")
    try:
        data = orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        data = None
        if 200 <= status < 300 or status >= 500:
            snippet = raw[:80].decode("utf-8", "replace").replace("\n", " ")
            raise BadResponseError(
                f"HTTP {status} with a body that is not JSON: {snippet!r}",
                status=status,
                request_id=header_request_id,
            ) from None
    if 200 <= status < 300:
        if not isinstance(data, dict):
            raise BadResponseError(
                f"HTTP {status} without a JSON object", status=status, request_id=header_request_id
            )
        request_id = data.get("RequestId", data.get("requestId")) or header_request_id
        return Response(status, str(request_id) if request_id else None, data)
    code, message, request_id = _error_fields(data)
    if data is None and status < 500:
        message = raw[:200].decode("utf-8", "replace") or None
    if data is None and 200 <= status < 300:
        raise BadResponseError(f"HTTP {status} with an empty body", status=status)
    raise RemoteError(
        status,
        code,
        message,
        request_id or header_request_id,
        retry_after=retry_after_seconds(headers),
    )
