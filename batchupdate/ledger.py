"""The results ledger: JSON Lines, append-only, one line per job per run, keyed by RequestId.

Writing: one writer (the run's ledger task) appends each record as a complete line with a single
`write()` to a file opened with O_APPEND, as soon as the job ends. A process crash (kill -9)
loses no written record; the OS has them. `fsync` runs at most every `fsync_interval` seconds
or `fsync_every` records, and at close: a power cut loses at most that much.

Reading tolerates a torn last line (a crash mid-write): it is reported and ignored, and the next
run starts its first record on a fresh line.

One run per ledger: an OS file lock (`fcntl.flock`) on `<ledger>.lock`, held for the whole run.
The kernel drops it when its process dies, so a dead run never blocks the next one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson

from .errors import ConfigurationError, LedgerLockedError

__all__ = ["Ledger", "LedgerWarning", "Outcome", "done_key", "read_done_index", "read_ledger"]

DEFAULT_LEDGER = "batchupdate-ledger.jsonl"


class LedgerWarning(UserWarning):
    """A ledger line could not be read (a torn last line after a crash)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One job's end, as one ledger line (field order as in CONTRACT.md)."""

    request_id: str | None
    model_id: str
    version_name: str
    status: str  # "succeeded" | "failed"
    http_status: int | None
    error_code: str | None
    error_message: str | None
    attempts: int
    attempt_request_ids: list[str | None] = field(default_factory=list)
    fingerprint: str
    body: Mapping[str, Any]
    before: Mapping[str, Any] | None = None
    source: str
    run_id: str
    started_at: str
    finished_at: str

    def line(self) -> bytes:
        # field by field: dataclasses.asdict deep-copies every body, a third of a run's CPU
        return orjson.dumps({name: getattr(self, name) for name in _FIELDS}) + b"\n"


_FIELDS = tuple(f.name for f in fields(Outcome))


def done_key(model_id: str, version_name: str, fingerprint: str) -> int:
    """A compact key for the resume index: 64 bits of (model, version, fingerprint)."""
    digest = hashlib.blake2b(
        f"{model_id}\x00{version_name}\x00{fingerprint}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big")


def read_ledger(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Every readable record, streamed. A torn or unreadable line is warned about and skipped."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the ledger: {exc.strerror or exc}") from None
    with handle:
        lineno = 0
        for raw in handle:
            lineno += 1
            if not raw.strip():
                continue
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                torn = not raw.endswith(b"\n")
                what = "torn last line (a crash mid-write)" if torn else "unreadable line"
                warnings.warn(f"{path}:{lineno}: {what}; ignored", LedgerWarning, stacklevel=2)
                continue
            if isinstance(record, dict):
                yield record


def read_done_index(path: str | os.PathLike[str]) -> set[int]:
    """Keys of (model, version, fingerprint) with a `succeeded` line: what resume skips."""
    index: set[int] = set()
    for record in read_ledger(path):
        if record.get("status") == "succeeded":
            try:
                index.add(done_key(record["model_id"], record["version_name"], record["fingerprint"]))
            except (KeyError, TypeError):
                continue
    return index


class Ledger:
    """The append side of a ledger, with its lock. `with Ledger(path) as ledger: ledger.append(o)`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync_interval: float = 1.0,
        fsync_every: int = 1000,
    ) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.fsync_interval = fsync_interval
        self.fsync_every = fsync_every
        self._fd: int | None = None
        self._lock_fd: int | None = None
        self._unsynced = 0
        self._last_sync = time.monotonic()
        self.written = 0

    # -- lock ------------------------------------------------------------------------------

    def _lock(self) -> None:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            os.close(fd)
            try:
                info = orjson.loads(holder)
                text = f"PID {info['pid']} on {info['host']}, started {info['started_at']}"
            except (orjson.JSONDecodeError, KeyError, TypeError):
                text = "holder unknown"
            raise LedgerLockedError(str(self.path), text) from None
        info = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(info), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._lock_fd, 0)
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # -- open / close ----------------------------------------------------------------------

    def open(self) -> Ledger:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock()
        except OSError as exc:
            raise ConfigurationError(f"{self.path}: cannot open the ledger: {exc.strerror or exc}") from None
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            size = os.fstat(fd).st_size
            if size:
                with open(self.path, "rb") as handle:
                    handle.seek(size - 1)
                    if handle.read(1) != b"\n":  # a torn last line: start ours on a fresh one
                        os.write(fd, b"\n")
        except OSError as exc:
            self._unlock()
            raise ConfigurationError(f"{self.path}: cannot open the ledger: {exc.strerror or exc}") from None
        except BaseException:
            self._unlock()
            raise
        self._fd = fd
        return self

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        self._unlock()

    def __enter__(self) -> Ledger:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------

    def append(self, outcomes: list[Outcome]) -> bool:
        """Write whole lines in one write(). Returns True when an fsync is due."""
        if self._fd is None:
            raise RuntimeError("ledger is not open")
        data = b"".join(o.line() for o in outcomes)
        view = memoryview(data)
        while view:  # write() to a regular file writes all; loop only for safety
            written = os.write(self._fd, view)
            view = view[written:]
        self.written += len(outcomes)
        self._unsynced += len(outcomes)
        return self._unsynced >= self.fsync_every or (
            self._unsynced > 0 and time.monotonic() - self._last_sync >= self.fsync_interval
        )

    def sync(self) -> None:
        """fsync (call it in a worker thread from async code)."""
        if self._fd is not None and self._unsynced:
            os.fsync(self._fd)
            self._unsynced = 0
            self._last_sync = time.monotonic()


def rate_path(ledger: str | os.PathLike[str]) -> Path:
    """Where the learned sending rate is kept, beside the ledger."""
    path = Path(ledger)
    return path.with_name(path.name + ".rate.json")


def load_learned_rate(ledger: str | os.PathLike[str]) -> float | None:
    try:
        data = orjson.loads(rate_path(ledger).read_bytes())
        rate = float(data["rate"])
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return rate if rate > 0 else None


def save_learned_rate(ledger: str | os.PathLike[str], rate: float) -> None:
    path = rate_path(ledger)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(
        orjson.dumps({"rate": rate, "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    )
    os.replace(tmp, path)
