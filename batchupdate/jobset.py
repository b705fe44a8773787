"""A set of job files, checked as a whole before anything is sent, then streamed as Jobs.

Pass one (`check`) reads every row of every file, validates it and records one compact entry
per distinct version, to find conflicts (two rows for the same version with different bodies)
and identical duplicates. Pass two (`jobs`) reads the files again and yields each distinct
version's Job once. Nothing but that index is held: a million-row file never sits in memory.

The index maps a 60-bit hash of (ModelId, VersionName) to one int packing the body's 64-bit
fingerprint prefix and the row's file and line: two small ints per version, about 110 bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .errors import JobFileError
from .jobs import JobSource, Row, read_rows
from .schema import Job, build_job, check_row

__all__ = ["JobSet"]

_LINE_BITS = 40
_FILE_BITS = 16


def version_key(model_id: str, version_name: str) -> int:
    digest = hashlib.blake2b(model_id.encode() + b"\x00" + version_name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 4


class JobSet:
    """Job files plus the `--set` overrides given to every row."""

    def __init__(self, sources: Sequence[JobSource], overrides: Mapping[str, Any] | None = None) -> None:
        if len(sources) >= 1 << _FILE_BITS:
            raise ValueError("too many job files in one run")
        self.sources = list(sources)
        self.overrides = dict(overrides or {})
        self._index: dict[int, int] = {}
        self.rows = 0
        self.duplicates = 0
        self.error_count = 0
        #: distinct versions whose row sets ApprovalStatus to Approved or Rejected (one-way)
        self.irreversible = 0
        self.checked = False

    @property
    def distinct(self) -> int:
        return len(self._index)

    def _rows(self) -> Iterator[tuple[int, Row | JobFileError]]:
        for number, source in enumerate(self.sources):
            for item in read_rows(source):
                yield number, item

    def check(self) -> Iterator[JobFileError]:
        """Validate every row; yield each problem. Afterwards `error_count` says if all is well."""
        index = self._index
        index.clear()
        self.rows = self.duplicates = self.error_count = self.irreversible = 0
        first_seen: dict[int, str] = {}  # only for versions in conflict: where the first was
        for number, item in self._rows():
            if isinstance(item, JobFileError):
                self.error_count += 1
                yield item
                continue
            self.rows += 1
            result = check_row(item.source, item.fields, item.origin, self.overrides)
            if isinstance(result, list):
                self.error_count += len(result)
                yield from result
                continue
            model_id, version_name, _, data = result
            key = version_key(model_id, version_name)
            packed = (
                (int.from_bytes(hashlib.sha256(data).digest()[:8], "big") << (_FILE_BITS + _LINE_BITS))
                | (number << _LINE_BITS)
                | item.line
            )
            earlier = index.get(key)
            if earlier is None:
                index[key] = packed
                if result[2].get("ApprovalStatus") in ("Approved", "Rejected"):
                    self.irreversible += 1
                continue
            if earlier >> (_FILE_BITS + _LINE_BITS) == packed >> (_FILE_BITS + _LINE_BITS):
                self.duplicates += 1
                continue
            self.error_count += 1
            where = first_seen.get(key) or self._where(earlier)
            first_seen[key] = where
            yield JobFileError(
                item.source,
                None,
                f"conflicts with {where}: version {model_id}/{version_name} "
                "is given two different bodies; keep one row",
            )
        self.checked = True

    def _where(self, packed: int) -> str:
        number = (packed >> _LINE_BITS) & ((1 << _FILE_BITS) - 1)
        line = packed & ((1 << _LINE_BITS) - 1)
        return f"{self.sources[number].name}:{line}"

    def jobs(self) -> Iterator[Job]:
        """Each distinct version's Job, once, in file order. Call after a clean `check`."""
        if not self.checked or self.error_count:
            raise RuntimeError("JobSet.jobs() needs a check() that found no errors")
        mask = (1 << (_FILE_BITS + _LINE_BITS)) - 1
        for number, item in self._rows():
            if isinstance(item, JobFileError):  # the file changed since check()
                raise item
            result = build_job(item.source, item.fields, item.origin, self.overrides)
            if isinstance(result, list):
                raise result[0]
            if not self.duplicates:  # every row is its version's first: no lookup needed
                yield result
                continue
            packed = self._index.get(version_key(result.model_id, result.version_name))
            if packed is not None and packed & mask == (number << _LINE_BITS) | item.line:
                yield result
