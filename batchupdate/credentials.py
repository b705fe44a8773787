"""Credentials: the standard Alibaba Cloud chain, resolved off the event loop, refreshed in one place.

The chain (as `alibabacloud-credentials` implements it): environment variables
`ALIBABA_CLOUD_ACCESS_KEY_ID` / `ALIBABA_CLOUD_ACCESS_KEY_SECRET` (+ `ALIBABA_CLOUD_SECURITY_TOKEN`),
OIDC/RRSA, `~/.aliyun/config.json` profiles, `~/.alibabacloud/credentials.ini`, the ECS instance
RAM role, `ALIBABA_CLOUD_CREDENTIALS_URI`.

That library reads the environment when imported and takes a blocking thread lock inside its
refresh, so it is imported lazily and only ever called in a worker thread: once before the
workers start, then by one refresher task. Workers read `provider.current`, never the chain.
Secrets never appear in a repr, a str, a log line or an exception message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
import orjson

from .errors import ConfigurationError

__all__ = ["DEMO_CREDENTIALS", "CredentialProvider", "Credentials", "profile_region"]

ENV_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"  # noqa: S105 - a variable's name, not a secret
ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"  # noqa: S105 - a variable's name


@dataclass(frozen=True, slots=True)
class Credentials:
    """An AccessKey pair, maybe with an STS token. The secret parts never show in a repr."""

    access_key_id: str
    access_key_secret: str = field(repr=False)
    security_token: str | None = field(default=None, repr=False)
    provider: str = "static"

    def __str__(self) -> str:
        return f"Credentials({self.access_key_id}, from {self.provider})"

    @property
    def temporary(self) -> bool:
        return bool(self.security_token)


#: Accepted by the built-in simulator; useless anywhere else.
DEMO_CREDENTIALS = Credentials("batchupdate-demo", "batchupdate-demo-secret", provider="demo")

_MISSING = (
    "no Alibaba Cloud credentials found. Set ALIBABA_CLOUD_ACCESS_KEY_ID and "
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET (and ALIBABA_CLOUD_SECURITY_TOKEN for STS), or pass "
    "--profile NAME for a ~/.aliyun/config.json profile, or run where a RAM role is attached "
    "(OIDC/RRSA, ECS). To try batchupdate without an account: --simulate"
)


def _from_library(profile: str | None) -> Credentials:
    """Ask alibabacloud-credentials (blocking: call in a worker thread)."""
    try:
        if profile:
            from alibabacloud_credentials.provider.cli_profile import CLIProfileCredentialsProvider

            chain: Any = CLIProfileCredentialsProvider(profile_name=profile)
        else:
            from alibabacloud_credentials.provider.default import DefaultCredentialsProvider

            chain = DefaultCredentialsProvider()
        got = chain.get_credentials()
    except Exception as exc:
        where = f"profile {profile!r}" if profile else "the default chain"
        raise ConfigurationError(f"{_MISSING}\n({where}: {_scrub(str(exc))})") from None
    key_id, secret = got.get_access_key_id(), got.get_access_key_secret()
    if not key_id or not secret:
        raise ConfigurationError(_MISSING)
    return Credentials(
        key_id,
        secret,
        got.get_security_token() or None,
        provider=str(got.get_provider_name() or "chain"),
    )


def _scrub(text: str) -> str:
    """Drop anything that looks like a secret value from a library's error message."""
    for name in (ENV_SECRET, ENV_TOKEN):
        value = os.environ.get(name)
        if value:
            text = text.replace(value, "***")
    return text[:500]


def profile_region(profile: str | None, home: str | None = None) -> str | None:
    """The region_id of a ~/.aliyun/config.json profile (`profile`, else the file's current)."""
    path = os.path.join(home or os.path.expanduser("~"), ".aliyun", "config.json")
    try:
        with open(path, "rb") as handle:
            data = orjson.loads(handle.read())
        name = profile or os.environ.get("ALIBABA_CLOUD_PROFILE") or data.get("current")
        for entry in data.get("profiles") or []:
            if entry.get("name") == name and entry.get("region_id"):
                return str(entry["region_id"])
    except (OSError, orjson.JSONDecodeError, AttributeError, TypeError):
        return None
    return None


class CredentialProvider:
    """Holds the current credentials. `resolve()` once before work starts; `refresh_forever()`
    in one task keeps temporary credentials fresh; workers only read `current`."""

    def __init__(
        self,
        *,
        profile: str | None = None,
        static: Credentials | None = None,
        environ: Mapping[str, str] | None = None,
        loader: Callable[[], Credentials] | None = None,
    ) -> None:
        self._profile = profile
        self._static = static
        self._environ = os.environ if environ is None else environ
        self._loader = loader
        self._current: Credentials | None = static

    def __repr__(self) -> str:
        return f"CredentialProvider(current={self._current!r})"

    @property
    def current(self) -> Credentials:
        if self._current is None:
            raise ConfigurationError("credentials were not resolved before the first request")
        return self._current

    def _load(self) -> Credentials:
        if self._static is not None:
            return self._static
        if self._loader is not None:
            return self._loader()
        env = self._environ
        if not self._profile and env.get(ENV_ID) and env.get(ENV_SECRET):
            return Credentials(env[ENV_ID], env[ENV_SECRET], env.get(ENV_TOKEN) or None, provider="env")
        return _from_library(self._profile)

    async def resolve(self) -> Credentials:
        """Resolve the chain once, in a worker thread (it may block on files or the network)."""
        self._current = await anyio.to_thread.run_sync(self._load)
        return self._current

    async def refresh_forever(self, interval: float = 300.0) -> None:
        """Re-read temporary credentials every `interval` seconds, ahead of their expiry (STS
        tokens last an hour or more; the library refreshes its own cache when asked). A failed
        refresh keeps the current credentials: the server's answer will say if they expired."""
        if self._static is not None or (self._current is not None and not self._current.temporary):
            return
        while True:
            await anyio.sleep(interval)
            try:
                self._current = await anyio.to_thread.run_sync(self._load)
            except ConfigurationError:
                continue
