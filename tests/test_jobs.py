"""The job file readers: formats, line numbers, and every unreadable-input class."""

from __future__ import annotations

from pathlib import Path

from batchupdate.errors import JobFileError
from batchupdate.jobs import MAX_ROW_BYTES, JobSource, Row, read_rows


def rows(path: Path, fmt: str) -> list[Row | JobFileError]:
    return list(read_rows(JobSource(path, str(path), fmt)))  # type: ignore[arg-type]


def test_csv_header_quoting_bom_crlf(write):
    path = write(
        "a.csv",
        b"\xef\xbb\xbfModelId,VersionName,VersionDescription\r\n"
        b'm,1.0.0,"a, ""quoted"" value"\r\n'
        b"m,1.0.1,plain\r\n",
    )
    got = rows(path, "csv")
    assert [r.fields for r in got] == [  # type: ignore[union-attr]
        {"ModelId": "m", "VersionName": "1.0.0", "VersionDescription": 'a, "quoted" value'},
        {"ModelId": "m", "VersionName": "1.0.1", "VersionDescription": "plain"},
    ]
    assert [r.source for r in got] == [f"{path}:2", f"{path}:3"]


def test_csv_multiline_cell_reports_the_line_where_the_row_starts(write):
    path = write(
        "a.csv",
        'ModelId,VersionName,VersionDescription\n\nm,1.0.0,"one\ntwo\nthree"\nm,1.0.1,x\n',
    )
    got = rows(path, "csv")
    assert [r.source for r in got] == [f"{path}:3", f"{path}:6"]
    assert got[0].fields["VersionDescription"] == "one\ntwo\nthree"  # type: ignore[union-attr]


def test_csv_unclosed_quote_is_an_error_at_its_line(write):
    path = write("a.csv", 'ModelId,VersionName,VersionDescription\nm,1.0.0,ok\nm,1.0.1,"never closed\n')
    got = rows(path, "csv")
    assert isinstance(got[-1], JobFileError)
    assert got[-1].source == f"{path}:3"
    assert "never closed" in got[-1].message


def test_csv_not_utf8_names_the_line(write):
    path = write("a.csv", b"ModelId,VersionName,VersionDescription\nm,1.0.0,caf\xe9\n")
    (err,) = rows(path, "csv")
    assert isinstance(err, JobFileError)
    assert err.source == f"{path}:2"
    assert "not UTF-8" in err.message


def test_csv_too_many_cells_and_short_rows(write):
    path = write("a.csv", "ModelId,VersionName,VersionDescription\nm,1.0.0,a,extra\nm,1.0.1\n")
    got = rows(path, "csv")
    assert isinstance(got[0], JobFileError) and "4 cells" in got[0].message
    assert isinstance(got[1], Row) and got[1].fields == {"ModelId": "m", "VersionName": "1.0.1"}


def test_csv_empty_file_and_duplicate_header(write):
    (err,) = rows(write("e.csv", ""), "csv")
    assert isinstance(err, JobFileError) and "empty file" in err.message
    (err,) = rows(write("d.csv", "ModelId,ModelId\n"), "csv")
    assert isinstance(err, JobFileError) and err.field == "ModelId"


def test_jsonl_blank_lines_bad_lines_and_non_objects(write):
    path = write("a.jsonl", '{"ModelId": "m"}\n\n   \n[1, 2]\n{bad json\n{"ModelId": "n"}\n')
    got = rows(path, "jsonl")
    assert isinstance(got[0], Row) and got[0].source == f"{path}:1"
    assert isinstance(got[1], JobFileError) and got[1].source == f"{path}:4"
    assert "JSON object" in got[1].message
    assert isinstance(got[2], JobFileError) and got[2].source == f"{path}:5"
    assert isinstance(got[3], Row) and got[3].source == f"{path}:6"


def test_row_over_one_mib_is_refused_and_reading_goes_on(write):
    big = '{"ModelId": "m", "VersionDescription": "' + "x" * (MAX_ROW_BYTES + 10) + '"}\n'
    path = write("a.jsonl", big + '{"ModelId": "n"}\n')
    got = rows(path, "jsonl")
    assert isinstance(got[0], JobFileError) and got[0].source == f"{path}:1"
    assert "longer than" in got[0].message
    assert isinstance(got[1], Row) and got[1].fields == {"ModelId": "n"}


def test_csv_cell_larger_than_the_stdlib_default_limit_is_read(write):
    desc = "y" * 200_000  # over csv's 128 KiB default field limit, under our 1 MiB row cap
    path = write("a.csv", f"ModelId,VersionName,VersionDescription\nm,1.0.0,{desc}\n")
    (row,) = rows(path, "csv")
    assert isinstance(row, Row) and row.fields["VersionDescription"] == desc


def test_missing_file(tmp_path):
    (err,) = rows(tmp_path / "nope.csv", "csv")
    assert isinstance(err, JobFileError) and "cannot open" in err.message
