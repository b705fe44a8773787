"""A local simulator of PAI's model registry (aiohttp.web): try batchupdate, test it, break it.

It serves UpdateModelVersion, GetModelVersion and ListModelVersions over real HTTP, checks
ACS3-HMAC-SHA256 signatures as the gateway states its rules (every common header signed, body
hash, clock skew at most 15 minutes, nonce not reused), enforces the documented field rules and
the one-way ApprovalStatus, and answers errors in Alibaba's envelope. Faults are injected with
seeded randomness: latency, a rate limit answered as `Throttling.User`, 503s, connection resets,
hangs, and 200 answers with an HTML body. Counters say what it saw.

Not imported by the runtime path, except by `run --simulate`.
"""

from __future__ import annotations

import asyncio
import calendar
import collections
import functools
import hashlib
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from . import signing
from .credentials import DEMO_CREDENTIALS
from .jobs import JobSource, Row, read_rows
from .schema import APPROVAL_STATUSES, BODY_FIELDS, check_row

__all__ = ["Counters", "Faults", "Simulator"]

_FINAL_STATUSES = frozenset({"Approved", "Rejected"})
_REQUIRED_SIGNED = frozenset(
    {"host", "x-acs-action", "x-acs-version", "x-acs-date", "x-acs-signature-nonce", "x-acs-content-sha256"}
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
MAX_SKEW = 15 * 60
MAX_NONCES = 1_000_000
MAX_PAGE_SIZE = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Faults:
    """What to inject. Rates are probabilities per request; all randomness is seeded."""

    latency: float = 0.0  # mean seconds added to each answer
    jitter: float = 0.0  # standard deviation of that latency
    rate_limit: float | None = None  # accepted requests per second; the excess is throttled
    throttle_status: int = 400  # 400 (as Alibaba's gateway documents) or 429
    retry_after: bool = True  # send x-acs-retry-after with throttled answers
    error_rate: float = 0.0  # 503 ServiceUnavailable
    reset_rate: float = 0.0  # close the connection without an answer
    hang_rate: float = 0.0  # answer only after hang_seconds
    hang_seconds: float = 120.0
    garbage_rate: float = 0.0  # 200 with an HTML body
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("error_rate", "reset_rate", "hang_rate", "garbage_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
        if self.throttle_status not in (400, 429):
            raise ValueError("throttle_status must be 400 or 429")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive")


@dataclass(slots=True)
class Counters:
    """What the simulator saw, for tests and benchmarks to read."""

    requests: int = 0
    by_status: collections.Counter[int] = field(default_factory=collections.Counter)
    by_code: collections.Counter[str] = field(default_factory=collections.Counter)
    by_action: collections.Counter[str] = field(default_factory=collections.Counter)
    puts_applied: collections.Counter[tuple[str, str]] = field(default_factory=collections.Counter)
    throttled: int = 0
    resets: int = 0
    hangs: int = 0
    garbage: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    #: when each accepted request arrived (time.monotonic), the latest million
    accepted_times: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=1_000_000)
    )


class _Bucket:
    """The server's token bucket: `rate` per second, a burst of a tenth of a second's worth."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate / 10.0)
        self.tokens = self.capacity
        self.clock = clock
        self.stamp = clock()

    def take(self) -> float | None:
        """None when a token was taken, else the seconds until one is free."""
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return None
        return (1.0 - self.tokens) / self.rate


@functools.lru_cache(maxsize=64)
def _parse_date(date: str) -> int:
    """Seconds since the epoch of an `x-acs-date` (strptime is slow; dates repeat within a second)."""
    return calendar.timegm(time.strptime(date, "%Y-%m-%dT%H:%M:%SZ"))


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Simulator:
    """The simulated registry. `async with Simulator(...) as sim:` serves on `sim.url`."""

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        keys: Mapping[str, str] | None = None,
        versions: Iterable[Mapping[str, Any]] = (),
        clock: Callable[[], float] = time.time,
        verify: bool = True,
    ) -> None:
        self.faults = faults or Faults()
        #: check signatures (off only for benchmarks that compare with an unsigned baseline)
        self.verify = verify
        self.keys = dict(keys or {DEMO_CREDENTIALS.access_key_id: DEMO_CREDENTIALS.access_key_secret})
        self.clock = clock
        self.state: dict[str, dict[str, dict[str, Any]]] = {}
        self.counters = Counters()
        self._random = random.Random(self.faults.seed)
        self._bucket = _Bucket(self.faults.rate_limit, time.monotonic) if self.faults.rate_limit else None
        self._nonces: set[str] = set()
        self._nonce_order: collections.deque[tuple[float, str]] = collections.deque()
        self._runner: web.AppRunner | None = None
        self.url = ""
        for version in versions:
            self.add_version(version)

    # -- state -------------------------------------------------------------------------------

    def add_version(self, fields: Mapping[str, Any]) -> None:
        """Create (or reset) a version; missing ApprovalStatus is Pending."""
        model_id, version_name = str(fields["ModelId"]), str(fields["VersionName"])
        now = _now_iso()
        record: dict[str, Any] = {
            "ModelId": model_id,
            "VersionName": version_name,
            "ApprovalStatus": "Pending",
            "SourceType": "Custom",
            "GmtCreateTime": now,
            "GmtModifiedTime": now,
            "Labels": [],
            "Uri": f"oss://simulated-bucket/{model_id}/{version_name}/",
        }
        record.update({k: v for k, v in fields.items() if v is not None})
        self.state.setdefault(model_id, {})[version_name] = record

    def seed_from_jobs(self, sources: Iterable[JobSource]) -> int:
        """Every version a job file names exists, at Pending. Returns how many were added."""
        added = 0
        for source in sources:
            for item in read_rows(source):
                if not isinstance(item, Row):
                    continue
                model_id, version_name = item.fields.get("ModelId"), item.fields.get("VersionName")
                if not (
                    isinstance(model_id, str) and isinstance(version_name, str) and model_id and version_name
                ):
                    continue
                if version_name not in self.state.get(model_id, {}):
                    self.add_version({"ModelId": model_id, "VersionName": version_name})
                    added += 1
        return added

    def load_state(self, data: bytes) -> int:
        """A JSON state file: {"versions": [{"ModelId": ..., "VersionName": ..., fields...}]}."""
        parsed = orjson.loads(data)
        versions = parsed.get("versions") if isinstance(parsed, dict) else parsed
        if not isinstance(versions, list):
            raise ValueError('a state file holds {"versions": [...]}')
        for version in versions:
            self.add_version(version)
        return len(versions)

    def version(self, model_id: str, version_name: str) -> dict[str, Any]:
        return self.state[model_id][version_name]

    # -- serving -----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=4 << 20)
        app.router.add_route("PUT", "/api/v1/models/{model}/versions/{version}", self._put)
        app.router.add_route("GET", "/api/v1/models/{model}/versions/{version}", self._get)
        app.router.add_route("GET", "/api/v1/models/{model}/versions", self._list)
        app.router.add_route("GET", "/_simulator/counters", self._counters)
        return app

    def counters_dict(self) -> dict[str, Any]:
        c = self.counters
        return {
            "requests": c.requests,
            "by_status": {str(k): v for k, v in c.by_status.items()},
            "by_code": dict(c.by_code),
            "by_action": dict(c.by_action),
            "puts_applied": [[m, v, n] for (m, v), n in c.puts_applied.items()],
            "throttled": c.throttled,
            "resets": c.resets,
            "hangs": c.hangs,
            "garbage": c.garbage,
            "max_in_flight": c.max_in_flight,
        }

    async def _counters(self, request: web.Request) -> web.Response:
        """Not part of the API: what the simulator saw, for tests and demos (unsigned, read-only)."""
        return web.Response(body=orjson.dumps(self.counters_dict()), content_type="application/json")

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        # shutdown_timeout: a hung request (hang fault) must not hold up stop() for long
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        bound = sockets[0].getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{bound}"
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- the request path ---------------------------------------------------------------------

    def _error(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> web.Response:
        request_id = str(uuid.uuid4()).upper()
        body = {
            "RequestId": request_id,
            "HostId": "aiworkspace.simulator.local",
            "Code": code,
            "Message": message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={code}",
        }
        self.counters.by_code[code] += 1
        return web.Response(
            status=status,
            body=orjson.dumps(body),
            content_type="application/json",
            headers={"x-acs-request-id": request_id, **(headers or {})},
        )

    def _ok(self, data: dict[str, Any]) -> web.Response:
        request_id = str(uuid.uuid4()).upper()
        data["RequestId"] = request_id
        return web.Response(
            body=orjson.dumps(data),
            content_type="application/json",
            headers={"x-acs-request-id": request_id},
        )

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/_simulator/"):
            return await handler(request)
        counters = self.counters
        counters.requests += 1
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        try:
            response = await self._serve(request, handler)
        finally:
            counters.in_flight -= 1
        counters.by_status[response.status] += 1
        return response

    async def _serve(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        faults, rnd, counters = self.faults, self._random, self.counters
        body = await request.read()
        if faults.hang_rate and rnd.random() < faults.hang_rate:
            counters.hangs += 1
            await asyncio.sleep(faults.hang_seconds)
        if faults.reset_rate and rnd.random() < faults.reset_rate:
            counters.resets += 1
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # aiohttp drops the request quietly
        if faults.latency or faults.jitter:
            await asyncio.sleep(max(0.0, rnd.gauss(faults.latency, faults.jitter)))
        if self.verify:
            denied = self._verify(request, body)
            if denied is not None:
                return denied
        if self._bucket is not None:
            wait = self._bucket.take()
            if wait is not None:
                counters.throttled += 1
                headers = {"x-acs-retry-after": str(max(1, round(wait * 1000)))} if faults.retry_after else {}
                return self._error(
                    faults.throttle_status,
                    "Throttling.User",
                    "Request was denied due to user flow control.",
                    headers,
                )
        if faults.error_rate and rnd.random() < faults.error_rate:
            return self._error(
                503, "ServiceUnavailable", "The request has failed due to a temporary failure of the server."
            )
        if faults.garbage_rate and rnd.random() < faults.garbage_rate:
            counters.garbage += 1
            return web.Response(text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")
        counters.accepted_times.append(time.monotonic())
        return await handler(request)

    def _verify(self, request: web.Request, body: bytes) -> web.Response | None:
        """The gateway's signature checks, in its order."""
        auth = request.headers.get("Authorization", "")
        parsed = signing.parse_authorization(auth)
        if parsed is None:
            return self._error(
                400,
                "IncompleteSignature",
                "The request signature does not conform to Aliyun standards (ACS3-HMAC-SHA256).",
            )
        key_id, signed, signature = parsed
        secret = self.keys.get(key_id)
        if secret is None:
            return self._error(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        counters = self.counters
        counters.by_action[request.headers.get("x-acs-action", "")] += 1
        present = {name.lower() for name in request.headers}
        required = _REQUIRED_SIGNED | {name for name in present if name.startswith("x-acs-")}
        if body:
            required = required | {"content-type"}
        missing = sorted((required - set(signed)) | (required - present))
        if missing:
            return self._error(
                400, "IncompleteSignature", f"The request signature does not sign: {', '.join(missing)}."
            )
        date = request.headers["x-acs-date"]
        if not _DATE.fullmatch(date):
            return self._error(
                400, "InvalidTimeStamp.Format", "Specified time stamp or date value is not well formatted."
            )
        when = _parse_date(date)
        if abs(self.clock() - when) > MAX_SKEW:
            return self._error(
                400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired."
            )
        payload = hashlib.sha256(body).hexdigest()
        if request.headers["x-acs-content-sha256"] != payload:
            return self._error(400, "SignatureDoesNotMatch", "x-acs-content-sha256 does not match the body.")
        path = request.raw_path.split("?", 1)[0]
        headers = {name: request.headers.get(name, "") for name in signed}
        expected = signing.authorization(
            request.method, path, dict(request.query), headers, payload, key_id, secret
        )
        if expected.rsplit("Signature=", 1)[1] != signature:
            return self._error(
                400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation."
            )
        nonce = request.headers["x-acs-signature-nonce"]
        now = self.clock()
        if nonce in self._nonces:
            return self._error(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
        self._nonces.add(nonce)
        order = self._nonce_order
        order.append((now, nonce))
        # remember nonces for the skew window (a replay older than that fails on its date), and
        # at most MAX_NONCES of them, so a long benchmark does not grow the simulator without end
        while order and (now - order[0][0] > MAX_SKEW or len(order) > MAX_NONCES):
            self._nonces.discard(order.popleft()[1])
        return None

    def _find(self, request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
        model_id, version_name = request.match_info["model"], request.match_info["version"]
        versions = self.state.get(model_id)
        if versions is None:
            return None, self._error(404, "Model.NotFound", f"Model {model_id} is not found.")
        record = versions.get(version_name)
        if record is None:
            return None, self._error(
                404, "ModelVersion.NotFound", f"Version {version_name} of model {model_id} is not found."
            )
        return record, None

    async def _put(self, request: web.Request) -> web.Response:
        record, missing = self._find(request)
        if missing is not None:
            return missing
        assert record is not None
        try:
            body = orjson.loads(await request.read() or b"{}")  # read() is cached
        except orjson.JSONDecodeError:
            return self._error(400, "InvalidParameter", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return self._error(400, "InvalidParameter", "The request body must be a JSON object.")
        unknown = sorted(set(body) - set(BODY_FIELDS))
        if unknown:
            return self._error(400, "InvalidParameter", f"Unknown parameter: {', '.join(unknown)}.")
        checked = check_row(
            "body", {"ModelId": record["ModelId"], "VersionName": record["VersionName"], **body}, "jsonl"
        )
        if isinstance(checked, list):
            return self._error(400, "InvalidParameter", "; ".join(f"{e.field}: {e.message}" for e in checked))
        status = body.get("ApprovalStatus")
        current = record.get("ApprovalStatus")
        if status is not None and current in _FINAL_STATUSES and status != current:
            return self._error(
                400,
                "InvalidParameter.ApprovalStatus",
                f"The ApprovalStatus of a version that is {current} cannot be changed (to {status}).",
            )
        record.update(body)
        record["GmtModifiedTime"] = _now_iso()
        self.counters.puts_applied[(record["ModelId"], record["VersionName"])] += 1
        return self._ok({})

    async def _get(self, request: web.Request) -> web.Response:
        record, missing = self._find(request)
        if missing is not None:
            return missing
        assert record is not None
        return self._ok(dict(record))

    async def _list(self, request: web.Request) -> web.Response:
        model_id = request.match_info["model"]
        versions = self.state.get(model_id)
        if versions is None:
            return self._error(404, "Model.NotFound", f"Model {model_id} is not found.")
        query = request.query
        try:
            page = int(query.get("PageNumber", "1"))
            size = int(query.get("PageSize", "10"))
        except ValueError:
            return self._error(400, "InvalidParameter", "PageNumber and PageSize are integers.")
        if page < 1 or not 1 <= size <= MAX_PAGE_SIZE:
            return self._error(
                400, "InvalidParameter", f"PageNumber >= 1; PageSize from 1 to {MAX_PAGE_SIZE}."
            )
        status = query.get("ApprovalStatus")
        if status is not None and status not in APPROVAL_STATUSES:
            return self._error(400, "InvalidParameter", f"ApprovalStatus {status!r} is not valid.")
        selected = []
        for record in versions.values():
            if any(
                name in query and record.get(name) != query[name]
                for name in ("ApprovalStatus", "SourceType", "SourceId", "VersionName")
            ):
                continue
            if "Label" in query and not _has_label(record, query["Label"]):
                continue
            selected.append(record)
        selected.sort(key=lambda r: r["GmtCreateTime"] + "\x00" + r["VersionName"])
        chunk = selected[(page - 1) * size : page * size]
        return self._ok({"Versions": [dict(r) for r in chunk], "TotalCount": len(selected)})


def _has_label(record: Mapping[str, Any], wanted: str) -> bool:
    key, _, value = wanted.partition("=")
    for label in record.get("Labels") or []:
        if isinstance(label, dict) and label.get("Key") == key and (not value or label.get("Value") == value):
            return True
    return False
