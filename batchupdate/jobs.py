"""Reading job files as a stream of raw rows, each tagged with `source` = "path:line".

CSV (header row, RFC 4180, UTF-8 with or without BOM, LF or CRLF) and JSON Lines. Files are read
in binary, line by line, and decoded per line, so that a bad byte, an over-long row or an
unclosed quote is reported at its own line and no more than one row (at most `MAX_ROW_BYTES`) is
ever held. Problems come out of the stream as `JobFileError` values, not exceptions: a reader
goes on after a bad JSONL line, and stops a file only where it cannot find the next row.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import orjson

from .errors import JobFileError, UsageError

__all__ = [
    "MAX_ROW_BYTES",
    "Format",
    "JobSource",
    "Row",
    "format_of",
    "open_sources",
    "read_rows",
    "write_rows",
]

Format = Literal["csv", "jsonl"]
MAX_ROW_BYTES = 1 << 20  # 1 MiB
_EXTENSIONS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a job file: names to raw values (strings for CSV, JSON values for JSONL)."""

    source: str
    line: int
    fields: dict[str, Any]
    origin: Format


@dataclass(frozen=True, slots=True)
class JobSource:
    """A job file to read: its path on disk, the name shown in messages, and its format."""

    path: Path
    name: str
    format: Format


def format_of(path: str, given: str | None) -> Format:
    if given is not None:
        if given not in ("csv", "jsonl"):
            raise UsageError(f"--format {given!r}: use csv or jsonl")
        return given  # type: ignore[return-value]
    if path == "-":
        raise UsageError("-: reading standard input needs --format csv|jsonl")
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise UsageError(
            f"{path}: cannot tell the format from {suffix or 'no extension'!r}; "
            "name it .csv, .jsonl or .ndjson, or pass --format csv|jsonl"
        )
    return _EXTENSIONS[suffix]


def open_sources(
    paths: Iterable[str], given_format: str | None, spool_dir: str | None = None
) -> list[JobSource]:
    """Resolve the command line's job files. `-` (standard input) is copied to a temporary file
    as a stream, because a run reads its files twice (validate all, then send)."""
    sources: list[JobSource] = []
    for path in paths:
        fmt = format_of(path, given_format)
        if path == "-":
            fd, spooled = tempfile.mkstemp(prefix="batchupdate-stdin-", dir=spool_dir)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(sys.stdin.buffer, out, 1 << 20)
            sources.append(JobSource(Path(spooled), "<stdin>", fmt))
        else:
            sources.append(JobSource(Path(path), path, fmt))
    return sources


def read_rows(source: JobSource) -> Iterator[Row | JobFileError]:
    """Stream one job file's rows; problems are yielded as `JobFileError`."""
    try:
        handle = open(source.path, "rb")  # noqa: SIM115 - closed in the finally below
    except OSError as exc:
        yield JobFileError(source.name, None, f"cannot open: {exc.strerror or exc}")
        return
    try:
        if source.format == "csv":
            yield from _read_csv(handle, source.name)
        else:
            yield from _read_jsonl(handle, source.name)
    except OSError as exc:
        yield JobFileError(source.name, None, f"cannot read: {exc.strerror or exc}")
    finally:
        handle.close()


class _StopFile(Exception):
    def __init__(self, error: JobFileError) -> None:
        self.error = error


def _lines(handle: IO[bytes], name: str) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) with the BOM removed. An over-long line is skipped to its end
    without being held, and comes out as the `_TOO_LONG` sentinel."""
    lineno = 0
    while True:
        line = handle.readline(MAX_ROW_BYTES + 1)
        if not line:
            return
        lineno += 1
        if lineno == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        if len(line) > MAX_ROW_BYTES and not line.endswith(b"\n"):
            while True:  # skip the rest of this line without holding it
                rest = handle.readline(MAX_ROW_BYTES)
                if not rest or rest.endswith(b"\n"):
                    break
            yield lineno, _TOO_LONG
            continue
        yield lineno, line


_TOO_LONG = b"\x00too-long"


def _decode(line: bytes, name: str, lineno: int) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _StopFile(
            JobFileError(
                f"{name}:{lineno}",
                None,
                f"not UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1}); save the file as UTF-8",
            )
        ) from None


def _read_jsonl(handle: IO[bytes], name: str) -> Iterator[Row | JobFileError]:
    for lineno, line in _lines(handle, name):
        where = f"{name}:{lineno}"
        if line is _TOO_LONG:
            yield JobFileError(where, None, f"line longer than {MAX_ROW_BYTES:,} bytes")
            continue
        if not line.strip():
            continue
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as bad:
                yield JobFileError(
                    where, None, f"not UTF-8 (byte 0x{line[bad.start]:02x} at column {bad.start + 1})"
                )
                continue
            yield JobFileError(where, None, f"not valid JSON: {exc}")
            continue
        if not isinstance(value, dict):
            yield JobFileError(where, None, "each line must be a JSON object {...}")
            continue
        yield Row(where, lineno, value, "jsonl")


def _read_csv(handle: IO[bytes], name: str) -> Iterator[Row | JobFileError]:
    # A cell may hold up to a whole row; the stdlib's default cap is 128 KiB.
    if csv.field_size_limit() < MAX_ROW_BYTES:
        csv.field_size_limit(MAX_ROW_BYTES)
    state = {"lineno": 0, "row_bytes": 0}

    def text_lines() -> Iterator[str]:
        for lineno, line in _lines(handle, name):
            state["lineno"] = lineno
            if line is _TOO_LONG:
                raise _StopFile(
                    JobFileError(f"{name}:{lineno}", None, f"row longer than {MAX_ROW_BYTES:,} bytes")
                )
            state["row_bytes"] += len(line)
            if state["row_bytes"] > MAX_ROW_BYTES:
                raise _StopFile(
                    JobFileError(f"{name}:{lineno}", None, f"row longer than {MAX_ROW_BYTES:,} bytes")
                )
            yield _decode(line, name, lineno)

    reader = csv.reader(text_lines(), strict=True)
    header: list[str] | None = None
    header_line = 0
    try:
        while True:
            start = state["lineno"] + 1
            state["row_bytes"] = 0
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                message = str(exc)
                if "unexpected end of data" in message or "EOF" in message:
                    message = f"a quoted cell opened on line {start} is never closed"
                yield JobFileError(f"{name}:{start}", None, f"bad CSV: {message}")
                return
            # the row started at the first line that was not blank
            if not cells:
                continue
            if header is None:
                header, header_line = [c.strip() for c in cells], start
                seen: set[str] = set()
                for column in header:
                    if column in seen:
                        yield JobFileError(f"{name}:{start}", column, "column named twice in the header")
                        return
                    seen.add(column)
                    if not column:
                        yield JobFileError(f"{name}:{start}", None, "a header cell is empty")
                        return
                continue
            row_start = _first_line_of(start, state["lineno"], cells)
            where = f"{name}:{row_start}"
            if len(cells) > len(header):
                yield JobFileError(
                    where,
                    None,
                    f"{len(cells)} cells but the header (line {header_line}) names {len(header)}",
                )
                continue
            yield Row(where, row_start, dict(zip(header, cells, strict=False)), "csv")
    except _StopFile as stop:
        yield stop.error
    if header is None:
        yield JobFileError(f"{name}:1", None, "empty file: a CSV job file starts with a header row")


def _first_line_of(start: int, end: int, cells: list[str]) -> int:
    """The physical line where a row begins: the reader skips blank lines before it, so count
    back from its last line by the line breaks inside its cells."""
    inner = sum(cell.count("\n") for cell in cells)
    return max(start, end - inner)


def write_rows(rows: Iterable[dict[str, Any]], out: str, *, columns: Sequence[str] | None = None) -> int:
    """Write job rows as a job file that `run` reads back as is: JSONL, or CSV by the name's
    extension (object fields as JSON text, an empty cell for "not sent"). `-` is stdout (CSV).
    Returns the number of rows written."""
    from .schema import ALL_FIELDS, OBJECT_FIELDS

    fmt: Format = "csv" if out == "-" else format_of(out, None)
    try:
        handle: IO[str] = sys.stdout if out == "-" else open(out, "w", encoding="utf-8", newline="")  # noqa: SIM115
    except OSError as exc:
        raise UsageError(f"{out}: cannot write: {exc.strerror or exc}") from None
    count = 0
    try:
        if fmt == "jsonl":
            for row in rows:
                handle.write(orjson.dumps(row).decode() + "\n")
                count += 1
        else:
            header = list(columns or ALL_FIELDS)
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(header)
            for row in rows:
                writer.writerow(
                    [
                        ""
                        if row.get(name) is None
                        else orjson.dumps(row[name]).decode()
                        if name in OBJECT_FIELDS
                        else str(row[name])
                        for name in header
                    ]
                )
                count += 1
    finally:
        if handle is not sys.stdout:
            handle.close()
        else:
            handle.flush()
    return count
