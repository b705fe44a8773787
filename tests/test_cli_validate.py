"""`batchupdate validate` through the real entry point: exit codes and exact error lines."""

from __future__ import annotations

import json

import pytest

from .conftest import ROOT, run_cli


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "jobs").iterdir()))
def test_validate_passes_on_every_example(example):
    result = run_cli("validate", f"jobs/{example}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("ok: ")
    assert "Traceback" not in result.stderr


BAD_INPUTS = {
    "unknown-field.csv": (
        "ModelId,VersionName,ApprovalStaus\nm,1.0.0,Approved\n",
        "{p}:2: ApprovalStaus: unknown field (did you mean ApprovalStatus?)",
    ),
    "case-slip.csv": (
        "ModelId,VersionName,ApprovalStatus\nm,1.0.0,approved\n",
        "{p}:2: ApprovalStatus: 'approved' is not allowed (did you mean Approved?)",
    ),
    "bad-version.jsonl": (
        '{"ModelId":"m","VersionName":"v1","VersionDescription":"x"}\n',
        "{p}:1: VersionName: 'v1' does not match",
    ),
    "bad-json-cell.csv": (
        'ModelId,VersionName,Metrics\nm,1.0.0,"{""a"":"\n',
        "{p}:2: Metrics: is not valid JSON",
    ),
    "unclosed.csv": (
        'ModelId,VersionName,VersionDescription\nm,1.0.0,"open\n',
        "{p}:2: bad CSV: a quoted cell opened on line 2 is never closed",
    ),
    "latin1.csv": (
        b"ModelId,VersionName,VersionDescription\nm,1.0.0,caf\xe9\n",
        "{p}:2: not UTF-8 (byte 0xe9 at column 12)",
    ),
    "not-object.jsonl": ('["m", "1.0.0"]\n', "{p}:1: each line must be a JSON object"),
    "empty-body.jsonl": ('{"ModelId":"m","VersionName":"1.0.0"}\n', "{p}:1: sets no body field"),
    "conflict.jsonl": (
        '{"ModelId":"m","VersionName":"1.0.0","VersionDescription":"a"}\n'
        '{"ModelId":"m","VersionName":"1.0.0","VersionDescription":"b"}\n',
        "{p}:2: conflicts with {p}:1",
    ),
    "metrics-long.jsonl": (
        '{"ModelId":"m","VersionName":"1.0.0","Metrics":{"k":"' + "x" * 8200 + '"}}\n',
        "{p}:1: Metrics: serialized to 8,208 characters",
    ),
    "options.jsonl": (
        '{"ModelId":"m","VersionName":"1.0.0","Options":"{x"}\n',
        "{p}:1: Options: must be a string holding valid JSON",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_validate_names_file_line_and_field_and_exits_2(write, name):
    content, expected = BAD_INPUTS[name]
    path = write(name, content)
    result = run_cli("validate", str(path))
    assert result.returncode == 2, result
    assert expected.format(p=path) in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
    assert "nothing would be sent" in result.stdout


def test_missing_file_and_unknown_format_are_clean_errors(tmp_path, write):
    result = run_cli("validate", str(tmp_path / "nope.csv"))
    assert result.returncode == 2
    assert f"{tmp_path / 'nope.csv'}: cannot open: No such file or directory" in result.stdout
    txt = write("jobs.txt", "x")
    result = run_cli("validate", str(txt))
    assert result.returncode == 2
    assert "cannot tell the format" in result.stderr and "Traceback" not in result.stderr


def test_identical_duplicates_across_files_are_applied_once(write):
    a = write("a.csv", "ModelId,VersionName,ApprovalStatus\nm,1.0.0,Approved\n")
    b = write("b.jsonl", '{"ModelId":"m","VersionName":"1.0.0","ApprovalStatus":"Approved"}\n')
    result = run_cli("validate", str(a), str(b))
    assert result.returncode == 0
    assert result.stdout.strip() == "ok: 2 rows, 1 versions, 1 identical duplicates applied once; all valid"


def test_conflict_across_files(write):
    a = write("a.csv", "ModelId,VersionName,ApprovalStatus\nm,1.0.0,Approved\n")
    b = write("b.jsonl", '{"ModelId":"m","VersionName":"1.0.0","ApprovalStatus":"Rejected"}\n')
    result = run_cli("validate", str(a), str(b))
    assert result.returncode == 2
    assert f"{b}:1: conflicts with {a}:2: version m/1.0.0" in result.stdout


def test_stdin_needs_format_and_reads_with_it():
    result = run_cli("validate", "-", input=b"ModelId,VersionName,ApprovalStatus\nm,1.0.0,Approved\n")
    assert result.returncode == 2 and "needs --format" in result.stderr
    result = run_cli(
        "validate",
        "-",
        "--format",
        "csv",
        input=b"ModelId,VersionName,ApprovalStatus\nm,1.0.0,Approved\nm,1.0.1,x\n",
    )
    assert result.returncode == 2
    assert "<stdin>:3: ApprovalStatus: 'x' is not allowed" in result.stdout


def test_set_fills_every_row_and_bad_set_is_a_usage_error(write):
    path = write("ids.csv", "ModelId,VersionName\nm,1.0.0\nm,1.0.1\n")
    assert run_cli("validate", str(path)).returncode == 2
    ok = run_cli("validate", str(path), "--set", "ApprovalStatus=Approved")
    assert ok.returncode == 0, ok.stdout
    bad = run_cli("validate", str(path), "--set", "ApprovalStatus=approved")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "batchupdate: --set ApprovalStatus: 'approved' is not allowed (did you mean Approved?)"
    )


def test_error_cap_then_count(write):
    lines = "".join(f'{{"ModelId":"m","VersionName":"1.0.{i}","ApprovalStatus":"no"}}\n' for i in range(60))
    result = run_cli("validate", str(write("many.jsonl", lines)))
    assert result.returncode == 2
    assert result.stdout.count("ApprovalStatus: 'no' is not allowed") == 50
    assert "... and 10 more errors" in result.stdout


def test_json_output(write):
    path = write("a.jsonl", '{"ModelId":"m","VersionName":"1.0","ApprovalStatus":"Approved"}\n')
    result = run_cli("validate", str(path), "--json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["valid"] is False and report["error_count"] == 1
    assert report["errors"][0]["source"] == f"{path}:1"
    assert report["errors"][0]["field"] == "VersionName"


def test_help_teaches():
    result = run_cli("--help")
    assert result.returncode == 0 and "examples:" in result.stdout
    result = run_cli("validate", "--help")
    assert "--set FIELD=VALUE" in result.stdout
    result = run_cli("validate")
    assert result.returncode == 2 and "Traceback" not in result.stderr
