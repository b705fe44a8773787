"""The ledger: format, resume, torn lines, the lock, signals and kill -9, and `report`."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from batchupdate.errors import LedgerLockedError
from batchupdate.ledger import Ledger, LedgerWarning, Outcome, read_done_index, read_ledger

from .conftest import DEMO_ENV, ROOT, make_jobs, run_cli

CONTRACT_FIELDS = [
    "request_id",
    "model_id",
    "version_name",
    "status",
    "http_status",
    "error_code",
    "error_message",
    "attempts",
    "attempt_request_ids",
    "fingerprint",
    "body",
    "before",
    "source",
    "run_id",
    "started_at",
    "finished_at",
]


def outcome(i: int, status: str = "succeeded") -> Outcome:
    return Outcome(
        request_id=f"R{i}",
        model_id="m",
        version_name=f"1.0.{i}",
        status=status,
        http_status=200,
        error_code=None,
        error_message=None,
        attempts=1,
        attempt_request_ids=[f"R{i}"],
        fingerprint="sha256:ab",
        body={"ApprovalStatus": "Approved"},
        source="f:1",
        run_id="run",
        started_at="2026-11-29T10:00:00.000Z",
        finished_at="2026-11-29T10:00:00.100Z",
    )


def test_ledger_line_has_exactly_the_contract_fields_in_order(tmp_path):
    with Ledger(tmp_path / "l.jsonl") as ledger:
        ledger.append([outcome(1)])
    (line,) = (tmp_path / "l.jsonl").read_text().splitlines()
    assert list(json.loads(line)) == CONTRACT_FIELDS


def test_torn_last_line_is_ignored_and_the_next_write_starts_fresh(tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_bytes(outcome(1).line() + outcome(2).line()[:40])
    with pytest.warns(LedgerWarning, match=r"l.jsonl:2: torn last line"):
        records = list(read_ledger(path))
    assert [r["version_name"] for r in records] == ["1.0.1"]
    with Ledger(path) as ledger:
        ledger.append([outcome(3)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = [r["version_name"] for r in read_ledger(path)]
    assert names == ["1.0.1", "1.0.3"]
    assert len(caught) == 1 and "unreadable line" in str(caught[0].message)


def test_resume_index_holds_only_succeeded_keys(tmp_path):
    path = tmp_path / "l.jsonl"
    with Ledger(path) as ledger:
        ledger.append([outcome(1), outcome(2, "failed")])
    assert len(read_done_index(path)) == 1


def test_a_second_ledger_user_is_refused_with_the_holder(tmp_path):
    path = tmp_path / "l.jsonl"
    with Ledger(path), pytest.raises(LedgerLockedError, match=rf"PID {os.getpid()} on .*, started 20"):
        Ledger(path).open()
    with Ledger(path):  # released
        pass


def test_fsync_is_due_by_count_or_time(tmp_path):
    ledger = Ledger(tmp_path / "l.jsonl", fsync_interval=3600, fsync_every=3).open()
    try:
        assert ledger.append([outcome(1)]) is False
        assert ledger.append([outcome(2), outcome(3)]) is True
        ledger.sync()
        ledger.fsync_interval = 0.0
        assert ledger.append([outcome(4)]) is True
    finally:
        ledger.close()


# -- whole runs --------------------------------------------------------------------------------


def start_run(jobs: Path, url: str, cwd: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "batchupdate", "run", str(jobs), "--endpoint", url, *extra],
        cwd=cwd,
        env={**os.environ, **DEMO_ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_lines(path: Path, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"{path} never reached {count} lines")


def test_resume_after_success_sends_zero_requests(tmp_path, simulator_process):
    jobs = make_jobs(tmp_path / "j.jsonl", 50)
    sim = simulator_process("--seed", str(jobs))
    first = run_cli("run", str(jobs), "--endpoint", sim.url, "--json", cwd=tmp_path, env=DEMO_ENV)
    assert first.returncode == 0, first.stderr
    before = sim.counters()["requests"]
    again = run_cli("run", str(jobs), "--endpoint", sim.url, "--json", cwd=tmp_path, env=DEMO_ENV)
    assert again.returncode == 0
    assert json.loads(again.stdout)["already_done"] == 50
    assert sim.counters()["requests"] == before
    forced = run_cli("run", str(jobs), "--endpoint", sim.url, "--force", "--json", cwd=tmp_path, env=DEMO_ENV)
    assert json.loads(forced.stdout)["succeeded"] == 50


def test_an_edited_row_is_sent_again(tmp_path, simulator_process):
    jobs = make_jobs(tmp_path / "j.jsonl", 5)
    sim = simulator_process("--seed", str(jobs))
    assert run_cli("run", str(jobs), "--endpoint", sim.url, cwd=tmp_path, env=DEMO_ENV).returncode == 0
    text = jobs.read_text().replace('"job 2"', '"job 2, edited"')
    jobs.write_text(text)
    again = run_cli("run", str(jobs), "--endpoint", sim.url, "--json", cwd=tmp_path, env=DEMO_ENV)
    summary = json.loads(again.stdout)
    assert (summary["succeeded"], summary["already_done"]) == (1, 4)


def test_two_concurrent_runs_one_exits_75_and_lines_never_interleave(tmp_path, simulator_process):
    jobs = make_jobs(tmp_path / "j.jsonl", 200)
    sim = simulator_process("--seed", str(jobs), "--latency", "0.02")
    first = start_run(jobs, sim.url, tmp_path, "--concurrency", "4")
    wait_for_lines(tmp_path / "batchupdate-ledger.jsonl", 2)
    second = run_cli("run", str(jobs), "--endpoint", sim.url, cwd=tmp_path, env=DEMO_ENV)
    assert second.returncode == 75
    assert f"PID {first.pid}" in second.stderr and "another run holds this ledger" in second.stderr
    _out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    lines = (tmp_path / "batchupdate-ledger.jsonl").read_text().splitlines()
    assert len(lines) == 200 and all(json.loads(line)["status"] == "succeeded" for line in lines)


def test_sigterm_drains_in_flight_and_exits_143(tmp_path, simulator_process):
    jobs = make_jobs(tmp_path / "j.jsonl", 400)
    sim = simulator_process("--seed", str(jobs), "--latency", "0.1")
    proc = start_run(jobs, sim.url, tmp_path, "--concurrency", "8")
    ledger = tmp_path / "batchupdate-ledger.jsonl"
    wait_for_lines(ledger, 8)
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "Traceback" not in err
    recorded = {json.loads(line)["version_name"] for line in ledger.read_text().splitlines()}
    answered = {v for (_, v) in sim.puts()}
    assert answered == recorded  # every version the server answered has its line
    assert len(recorded) < 400
    again = run_cli("run", str(jobs), "--endpoint", sim.url, "--json", cwd=tmp_path, env=DEMO_ENV)
    assert again.returncode == 0
    assert json.loads(again.stdout)["already_done"] == len(recorded)
    assert max(sim.puts().values()) == 1


def test_sigint_twice_cancels_at_once_and_leaves_a_readable_ledger(tmp_path, simulator_process):
    jobs = make_jobs(tmp_path / "j.jsonl", 400)
    sim = simulator_process("--seed", str(jobs), "--latency", "0.5")
    proc = start_run(jobs, sim.url, tmp_path, "--concurrency", "8")
    ledger = tmp_path / "batchupdate-ledger.jsonl"
    wait_for_lines(ledger, 8)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "cancelled at once" in err
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(list(read_ledger(ledger))) >= 8


@pytest.mark.slow
def test_kill_9_at_random_points_then_the_same_command_finishes(tmp_path, simulator_process):
    count, concurrency = 2000, 8
    jobs = make_jobs(tmp_path / "j.jsonl", count)
    sim = simulator_process("--seed", str(jobs), "--latency", "0.003")
    ledger = tmp_path / "batchupdate-ledger.jsonl"
    rnd = random.Random(11)
    kills = 0
    for point in sorted(rnd.sample(range(100, count - 100), 3)):
        proc = start_run(jobs, sim.url, tmp_path, "--concurrency", str(concurrency))
        try:
            wait_for_lines(ledger, point)
        finally:
            proc.kill()  # SIGKILL: no cleanup of any kind
            proc.communicate()
        kills += 1
    final = run_cli(
        "run",
        str(jobs),
        "--endpoint",
        sim.url,
        "--concurrency",
        str(concurrency),
        "--json",
        cwd=tmp_path,
        env=DEMO_ENV,
    )
    assert final.returncode == 0, final.stderr
    records = list(read_ledger(ledger))  # parses, no torn line in the middle
    succeeded = {r["version_name"] for r in records if r["status"] == "succeeded"}
    assert len(succeeded) == count
    puts = sim.puts()
    assert len(puts) == count  # every job applied
    doubled = [k for k, n in puts.items() if n > 1]
    assert max(puts.values()) <= 2
    assert len(doubled) <= kills * concurrency  # only what was in flight at each kill


def test_report_and_failed_jobs_round_trip(tmp_path, simulator_process):
    jobs = make_jobs(tmp_path / "j.jsonl", 6)
    extra = tmp_path / "missing.jsonl"
    extra.write_text('{"ModelId": "model-gone", "VersionName": "9.9.9", "ApprovalStatus": "Approved"}\n')
    sim = simulator_process("--seed", str(jobs))
    result = run_cli("run", str(jobs), str(extra), "--endpoint", sim.url, cwd=tmp_path, env=DEMO_ENV)
    assert result.returncode == 1
    assert "1 jobs failed after retries" in result.stderr and "Model.NotFound" in result.stderr
    report = run_cli("report", "--json", "--failed-jobs", str(tmp_path / "retry.jsonl"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    data = json.loads(report.stdout)
    (run,) = data["runs"]
    assert run["by_status"] == {"succeeded": 6, "failed": 1}
    assert run["error_codes"][0]["code"] == "Model.NotFound" and run["error_codes"][0]["sample_request_id"]
    retry_rows = [json.loads(line) for line in (tmp_path / "retry.jsonl").read_text().splitlines()]
    assert retry_rows == [{"ModelId": "model-gone", "VersionName": "9.9.9", "ApprovalStatus": "Approved"}]
    assert run_cli("validate", str(tmp_path / "retry.jsonl")).returncode == 0
    text = run_cli("report", cwd=tmp_path)
    assert "6 succeeded" in text.stdout and "Model.NotFound" in text.stdout
    assert run_cli("report", "--ledger", str(tmp_path / "nope.jsonl")).returncode == 2


def test_contract_ledger_default_path_and_no_ledger_on_dry_run(tmp_path):
    assert Path(ROOT / "jobs/approve.csv").exists()
    result = run_cli(
        "run", str(ROOT / "jobs/approve.csv"), "--dry-run", "--region", "cn-hangzhou", cwd=tmp_path
    )
    assert result.returncode == 0
    assert list(tmp_path.iterdir()) == []


def test_unusable_ledger_and_output_paths_are_clean_errors(tmp_path):
    result = run_cli(
        "run",
        str(ROOT / "jobs/approve.csv"),
        "--simulate",
        "--ledger",
        "/proc/no-such/ledger.jsonl",
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "cannot open the ledger" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("report", "--ledger", str(ROOT / "jobs"))
    assert result.returncode == 2 and "cannot read the ledger: Is a directory" in result.stderr
    assert (
        run_cli("run", str(ROOT / "jobs/approve.csv"), "--simulate", "--snapshot", cwd=tmp_path).returncode
        == 0
    )
    result = run_cli(
        "undo", "--ledger", str(tmp_path / "batchupdate-ledger.simulate.jsonl"), "-o", "/proc/no-such/u.jsonl"
    )
    assert result.returncode == 2 and "cannot write" in result.stderr and "Traceback" not in result.stderr
