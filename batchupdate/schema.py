"""The UpdateModelVersion request: its fields, the documented rules, canonical body bytes.

Pure: no I/O. A raw row (strings from CSV, JSON values from JSONL) goes in; a frozen `Job` or
a list of `JobFileError`s comes out.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from .errors import JobFileError

__all__ = [
    "APPROVAL_STATUSES",
    "BODY_FIELDS",
    "KEY_FIELDS",
    "METRICS_MAX_CHARS",
    "OBJECT_FIELDS",
    "SOURCE_TYPES",
    "STRING_FIELDS",
    "Job",
    "body_bytes",
    "build_job",
    "canonical_json",
    "check_row",
    "fingerprint",
    "parse_assignment",
]

Origin = Literal["csv", "jsonl", "set"]

KEY_FIELDS = ("ModelId", "VersionName")
OBJECT_FIELDS = frozenset(
    {
        "Metrics",
        "TrainingSpec",
        "InferenceSpec",
        "EvaluationSpec",
        "CompressionSpec",
        "ExtraInfo",
        "DistillationSpec",
    }
)
STRING_FIELDS = frozenset({"VersionDescription", "Options", "SourceType", "SourceId", "ApprovalStatus"})
#: The body fields, in the order the official SDK (and so the wire) writes them: sorted.
BODY_FIELDS = tuple(sorted(OBJECT_FIELDS | STRING_FIELDS))
ALL_FIELDS = (*KEY_FIELDS, *BODY_FIELDS)

METRICS_MAX_CHARS = 8192
APPROVAL_STATUSES = ("Pending", "Approved", "Rejected")
SOURCE_TYPES = ("Custom", "PAIFlow", "TrainingService")
_VERSION_NAME = re.compile(r"\d+\.\d+\.\d+(_\w+)?", re.ASCII)
_SOURCE_ID = re.compile(r"region=[^,=]+,workspaceId=[^,=]+,kind=(PipelineRun|ServiceJob),id=[^,=]+")
_SOURCE_ID_TYPES = frozenset({"PAIFlow", "TrainingService"})

_FLOAT_MAY_DIFFER = re.compile(rb"[0-9][eE]")
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


@dataclass(frozen=True, slots=True)
class Job:
    """One validated UpdateModelVersion call."""

    model_id: str
    version_name: str
    #: the fields sent, as JSON values
    body: Mapping[str, Any]
    #: the exact bytes sent: compact JSON, raw UTF-8, keys sorted at every level
    body_bytes: bytes
    #: "sha256:<hex>" of body_bytes
    fingerprint: str
    #: "path:line" of the row it came from
    source: str


def canonical_json(value: Any) -> bytes:
    """Compact JSON, raw (unescaped) UTF-8, keys sorted at every level: the body bytes.

    The official SDK writes `json.dumps(ensure_ascii=False, separators=(",", ":"))`; with keys
    sorted, ours are the same bytes. orjson writes the same bytes ten times faster except for
    some floats (6.103515625e-05 vs 0.00006103515625, 1e+16 vs 1e16): every such float in
    orjson's output has a digit before an `e` or starts `0.0000`, so only then do we take the
    stdlib's slower path (a property test checks both agree)."""
    data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    if b"0.0000" in data or _FLOAT_MAY_DIFFER.search(data):
        data = _ENCODER.encode(value).encode()
    return data


def body_bytes(body: Mapping[str, Any]) -> bytes:
    """The exact bytes sent for a body."""
    return canonical_json(body)


def json_length(value: Any) -> int:
    """Characters (not bytes) of `value` serialized as sent."""
    data = canonical_json(value)
    return len(data) if data.isascii() else len(data.decode())


def fingerprint(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def closest_field(name: str) -> str | None:
    """The known field a misspelt `name` most likely meant."""
    folded = {f.lower(): f for f in ALL_FIELDS}
    if name.lower() in folded:
        return folded[name.lower()]
    match = difflib.get_close_matches(name.lower(), list(folded), n=1, cutoff=0.6)
    return folded[match[0]] if match else None


def unknown_field_message(name: str) -> str:
    hint = closest_field(name)
    if hint:
        return f"unknown field (did you mean {hint}?)"
    return "unknown field (the fields are: " + ", ".join(ALL_FIELDS) + ")"


def _enum_message(value: str, allowed: tuple[str, ...]) -> str:
    for choice in allowed:
        if value.lower() == choice.lower():
            return f"{value!r} is not allowed (did you mean {choice}?)"
    return f"{value!r} is not allowed (one of: {', '.join(allowed)})"


def _convert(name: str, value: Any, origin: Origin) -> tuple[Any, str | None]:
    """Turn one raw cell/value into the JSON value sent. Returns (value, error)."""
    if name in OBJECT_FIELDS:
        if origin in ("csv", "set"):
            if not isinstance(value, str):  # pragma: no cover - CSV cells are strings
                return None, "must be JSON text"
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                return None, f"is not valid JSON ({_json_reason(exc)})"
        if not isinstance(value, dict):
            kind = _json_kind(value)
            hint = (
                " (in JSONL write the object itself, not a string holding it)"
                if origin == "jsonl" and isinstance(value, str)
                else ""
            )
            return None, f"must be a JSON object, not {kind}{hint}"
        return value, None
    if not isinstance(value, str):
        hint = ' (Options is a string holding JSON: write "{\\"k\\": 1}")' if name == "Options" else ""
        return None, f"must be a string, not {_json_kind(value)}{hint}"
    return value, None


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"


def _json_reason(exc: orjson.JSONDecodeError) -> str:
    return str(exc.msg) if hasattr(exc, "msg") else str(exc)


def _check_value(name: str, value: Any) -> str | None:
    """The documented rule of one field, on its converted value."""
    if name == "ApprovalStatus" and value not in APPROVAL_STATUSES:
        return _enum_message(value, APPROVAL_STATUSES)
    if name == "SourceType" and value not in SOURCE_TYPES:
        return _enum_message(value, SOURCE_TYPES)
    if name == "Options":
        try:
            orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return f"must be a string holding valid JSON ({_json_reason(exc)})"
    if name == "Metrics":
        return _metrics_error(value)
    return None


def _metrics_error(value: Any) -> str | None:
    size = json_length(value)
    if size > METRICS_MAX_CHARS:
        return f"serialized to {size:,} characters; the API allows at most {METRICS_MAX_CHARS:,}"
    return None


def parse_assignment(text: str) -> tuple[str, Any]:
    """`--set FIELD=VALUE` into (field, value); raises ValueError with the reason."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise ValueError(f"{text!r}: expected FIELD=VALUE")
    if name in KEY_FIELDS:
        raise ValueError(f"{name}: a key field cannot be set for every row")
    if name not in BODY_FIELDS:
        raise ValueError(f"{name}: {unknown_field_message(name)}")
    value, error = _convert(name, raw, "set")
    if error is None:
        error = _check_value(name, value)
    if error is not None:
        raise ValueError(f"{name}: {error}")
    return name, value


def build_job(
    source: str,
    row: Mapping[str, Any],
    origin: Origin,
    overrides: Mapping[str, Any] | None = None,
) -> Job | list[JobFileError]:
    """Validate one row into a Job. All of its problems are reported, not just the first."""
    result = check_row(source, row, origin, overrides)
    if isinstance(result, list):
        return result
    model_id, version_name, body, data = result
    return Job(
        model_id=model_id,
        version_name=version_name,
        body=body,
        body_bytes=data,
        fingerprint=fingerprint(data),
        source=source,
    )


_CHECKED_STRINGS = frozenset({"ApprovalStatus", "SourceType", "Options"})


def check_row(
    source: str,
    row: Mapping[str, Any],
    origin: Origin,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[str, str, dict[str, Any], bytes] | list[JobFileError]:
    """Validate one row: (ModelId, VersionName, body, body bytes), or every problem found.

    The hot path of validation (a million rows): plain strings take the shortest way."""
    errors: list[JobFileError] = []
    body: dict[str, Any] = {}
    model_id = version_name = None
    for name, raw in row.items():
        if raw is None or (raw == "" and origin == "csv"):
            continue  # "not sent"
        if name == "ModelId" or name == "VersionName":
            if type(raw) is not str:
                errors.append(JobFileError(source, name, f"must be a string, not {_json_kind(raw)}"))
            elif name == "ModelId":
                model_id = raw
            else:
                version_name = raw
            continue
        if name in STRING_FIELDS and type(raw) is str:
            if name in _CHECKED_STRINGS:
                error = _check_value(name, raw)
                if error is not None:
                    errors.append(JobFileError(source, name, error))
                    continue
            body[name] = raw
            continue
        if name not in BODY_FIELDS:
            errors.append(JobFileError(source, name, unknown_field_message(name)))
            continue
        value, error = _convert(name, raw, origin)
        if error is None and name != "Metrics":  # Metrics is measured below, from the body
            error = _check_value(name, value)
        if error is not None:
            errors.append(JobFileError(source, name, error))
            continue
        body[name] = value
    if overrides:
        body.update(overrides)
    if model_id is None and not any(e.field == "ModelId" for e in errors):
        errors.append(JobFileError(source, "ModelId", "is required"))
    if version_name is None:
        if not any(e.field == "VersionName" for e in errors):
            errors.append(JobFileError(source, "VersionName", "is required"))
    elif not _VERSION_NAME.fullmatch(version_name):
        errors.append(
            JobFileError(
                source,
                "VersionName",
                f"{version_name!r} does not match ^\\d+\\.\\d+\\.\\d+(_\\w+)?$ (e.g. 1.1.0, 2.3.4_beta)",
            )
        )
    source_type = body.get("SourceType")
    if source_type in _SOURCE_ID_TYPES:
        source_id = body.get("SourceId")
        if source_id is None:
            errors.append(JobFileError(source, "SourceId", f"is required when SourceType is {source_type}"))
        elif not _SOURCE_ID.fullmatch(source_id):
            errors.append(
                JobFileError(
                    source,
                    "SourceId",
                    f"{source_id!r} must read region=<r>,workspaceId=<w>,"
                    "kind=PipelineRun|ServiceJob,id=<id> for SourceType " + str(source_type),
                )
            )
    if not body and not errors:
        errors.append(JobFileError(source, None, "sets no body field: nothing to update"))
    if errors:
        return errors
    assert model_id is not None and version_name is not None
    data = canonical_json(body)
    # Metrics serialized is part of the body serialized: only a long body needs measuring.
    if len(data) > METRICS_MAX_CHARS and "Metrics" in body:
        error = _metrics_error(body["Metrics"])
        if error is not None:
            return [JobFileError(source, "Metrics", error)]
    return model_id, version_name, body, data
