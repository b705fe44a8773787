"""`run`: the worker pool, retries, throttling, abort rules and exit codes, on real sockets."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest

import batchupdate
from batchupdate.client import PaiClient
from batchupdate.credentials import DEMO_CREDENTIALS, Credentials
from batchupdate.jobs import JobSource
from batchupdate.jobset import JobSet
from batchupdate.ledger import read_ledger
from batchupdate.runner import Progress, Stopper, run
from batchupdate.settings import Settings
from batchupdate.simulator import Faults, Simulator

from .conftest import DEMO_ENV, make_jobs, run_cli


def jobset_for(path: Path) -> JobSet:
    js = JobSet([JobSource(path, path.name, "jsonl")])
    assert list(js.check()) == []
    return js


def seeded(path: Path, faults: Faults | None = None, **kw) -> Simulator:
    sim = Simulator(faults=faults, **kw)
    sim.seed_from_jobs([JobSource(path, path.name, "jsonl")])
    return sim


def settings(tmp_path: Path, **kw) -> Settings:
    base = {"ledger": tmp_path / "ledger.jsonl", "backoff_base": 0.01, "backoff_cap": 0.05, "concurrency": 8}
    base.update(kw)
    return Settings(**base)


def ledger_lines(tmp_path: Path) -> list[dict]:
    return list(read_ledger(tmp_path / "ledger.jsonl"))


async def test_run_applies_every_job_and_records_it(tmp_path):
    path = make_jobs(tmp_path / "j.jsonl", 200)
    js = jobset_for(path)
    async with seeded(path) as sim:
        summary = await batchupdate.run(
            js.jobs(),
            settings=settings(tmp_path, endpoint=sim.url),
            credentials=DEMO_CREDENTIALS,
            total=js.distinct,
        )
    assert (summary.exit_code, summary.succeeded, summary.failed, summary.remaining) == (0, 200, 0, 0)
    lines = ledger_lines(tmp_path)
    assert len(lines) == 200 and {r["status"] for r in lines} == {"succeeded"}
    assert all(r["request_id"] == r["attempt_request_ids"][-1] for r in lines)
    assert all(sim.version("model-t", r["version_name"])["ApprovalStatus"] == "Approved" for r in lines)
    assert max(sim.counters.puts_applied.values()) == 1
    assert sim.counters.max_in_flight <= 8


async def test_transient_faults_are_retried_and_nothing_is_applied_beyond_recorded_attempts(tmp_path):
    path = make_jobs(tmp_path / "j.jsonl", 300)
    js = jobset_for(path)
    faults = Faults(error_rate=0.2, reset_rate=0.05, garbage_rate=0.02, seed=3)
    async with seeded(path, faults) as sim:
        summary = await run(
            js.jobs(),
            settings=settings(tmp_path, endpoint=sim.url, max_attempts=10),
            credentials=DEMO_CREDENTIALS,
            total=js.distinct,
        )
    assert (summary.exit_code, summary.succeeded) == (0, 300)
    lines = ledger_lines(tmp_path)
    attempts = {r["version_name"]: r["attempts"] for r in lines}
    assert sum(attempts.values()) > 300  # faults happened and were retried
    for (_, version), applied in sim.counters.puts_applied.items():
        assert applied <= attempts[version]
    assert all(len(r["attempt_request_ids"]) == r["attempts"] for r in lines)


async def test_every_attempt_is_signed_afresh(tmp_path):
    path = make_jobs(tmp_path / "j.jsonl", 40)
    js = jobset_for(path)
    async with seeded(path, Faults(error_rate=0.5, seed=1)) as sim:
        summary = await run(
            js.jobs(),
            settings=settings(tmp_path, endpoint=sim.url, max_attempts=12),
            credentials=DEMO_CREDENTIALS,
        )
    assert summary.exit_code == 0
    assert sim.counters.by_code.get("SignatureNonceUsed", 0) == 0  # a reused nonce would show here
    assert summary.attempts > 40


async def test_final_error_is_the_real_one_after_max_attempts(tmp_path):
    path = make_jobs(tmp_path / "j.jsonl", 3)
    js = jobset_for(path)
    async with seeded(path, Faults(error_rate=1.0)) as sim:
        summary = await run(
            js.jobs(),
            settings=settings(tmp_path, endpoint=sim.url, max_attempts=3),
            credentials=DEMO_CREDENTIALS,
        )
    assert (summary.exit_code, summary.failed) == (1, 3)
    for r in ledger_lines(tmp_path):
        assert (r["status"], r["error_code"], r["http_status"], r["attempts"]) == (
            "failed",
            "ServiceUnavailable",
            503,
            3,
        )
        assert r["request_id"] == r["attempt_request_ids"][-1] is not None
    assert summary.error_codes == {"ServiceUnavailable": 3}


async def test_other_4xx_are_not_retried(tmp_path):
    path = make_jobs(tmp_path / "j.jsonl", 5)
    js = jobset_for(path)
    async with Simulator(versions=[{"ModelId": "model-t", "VersionName": "1.0.0"}]) as sim:
        summary = await run(
            js.jobs(), settings=settings(tmp_path, endpoint=sim.url), credentials=DEMO_CREDENTIALS
        )
    assert (summary.exit_code, summary.succeeded, summary.failed) == (1, 1, 4)
    failed = [r for r in ledger_lines(tmp_path) if r["status"] == "failed"]
    assert {(r["error_code"], r["http_status"], r["attempts"]) for r in failed} == {
        ("ModelVersion.NotFound", 404, 1)
    }


@pytest.mark.parametrize(
    ("creds", "code"),
    [
        (Credentials("batchupdate-demo", "wrong-secret"), "SignatureDoesNotMatch"),
        (Credentials("no-such-key", "x"), "InvalidAccessKeyId.NotFound"),
    ],
)
async def test_rejected_credentials_abort_at_once(tmp_path, creds, code):
    path = make_jobs(tmp_path / "j.jsonl", 500)
    js = jobset_for(path)
    async with seeded(path) as sim:
        summary = await run(
            js.jobs(),
            settings=settings(tmp_path, endpoint=sim.url, concurrency=8),
            credentials=creds,
            total=js.distinct,
        )
    assert summary.exit_code == 3
    assert summary.stop_reason == "aborted" and code in (summary.message or "")
    assert sim.counters.requests <= 8  # at most what was already in flight
    assert summary.attempts == sim.counters.requests  # no retry storm
    assert summary.remaining and summary.remaining >= 492
    assert {r["error_code"] for r in ledger_lines(tmp_path)} == {code}


async def test_max_failures_stops_dispatch(tmp_path):
    path = make_jobs(tmp_path / "j.jsonl", 200)
    js = jobset_for(path)
    async with Simulator() as sim:  # no versions: every PUT is a 404
        summary = await run(
            js.jobs(),
            settings=settings(tmp_path, endpoint=sim.url, max_failures=5, concurrency=4),
            credentials=DEMO_CREDENTIALS,
            total=js.distinct,
        )
    assert summary.exit_code == 3 and summary.stop_reason == "max-failures"
    assert 5 <= summary.failed <= 5 + 3
    assert sim.counters.requests == summary.failed


async def test_deadline_stops_dispatch_and_the_same_command_continues(tmp_path):
    path = make_jobs(tmp_path / "j.jsonl", 40)
    js = jobset_for(path)
    sim = seeded(path, Faults(latency=0.1))
    async with sim:
        s = settings(tmp_path, endpoint=sim.url, concurrency=2, deadline=0.45)
        first = await run(js.jobs(), settings=s, credentials=DEMO_CREDENTIALS, total=js.distinct)
        assert first.exit_code == 4 and first.remaining and first.succeeded < 40
        assert first.elapsed < 1.5
        again = await run(
            js.jobs(),
            settings=settings(tmp_path, endpoint=sim.url, concurrency=16),
            credentials=DEMO_CREDENTIALS,
            total=js.distinct,
        )
    assert again.exit_code == 0
    assert again.skipped == first.succeeded and again.succeeded == 40 - first.succeeded
    assert max(sim.counters.puts_applied.values()) == 1


async def test_stopper_stops_like_a_signal_and_in_flight_requests_finish(tmp_path):
    path = make_jobs(tmp_path / "j.jsonl", 100)
    js = jobset_for(path)
    import anyio

    stopper, progress = Stopper(), Progress()
    async with seeded(path, Faults(latency=0.2)) as sim:

        async def stop_soon() -> None:
            while progress.in_flight < 4:
                await anyio.sleep(0.01)
            stopper.request("sigterm", "test")

        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_soon)
            summary = await run(
                js.jobs(),
                settings=settings(tmp_path, endpoint=sim.url, concurrency=4),
                credentials=DEMO_CREDENTIALS,
                stop=stopper,
                progress=progress,
                total=js.distinct,
            )
    assert summary.exit_code == 143
    answered = sum(sim.counters.puts_applied.values())
    assert answered == summary.succeeded == len(ledger_lines(tmp_path)) >= 4


async def test_adaptive_rate_converges_without_a_rate_option(tmp_path):
    # the speed bar lives in bench/run_bench.py (3,000 jobs at 100/s); here: it converges, few throttles
    path = make_jobs(tmp_path / "j.jsonl", 1200)
    js = jobset_for(path)
    async with seeded(path, Faults(rate_limit=200)) as sim:
        summary = await run(
            js.jobs(),
            settings=settings(tmp_path, endpoint=sim.url, concurrency=16, max_attempts=20),
            credentials=DEMO_CREDENTIALS,
        )
    assert (summary.exit_code, summary.succeeded) == (0, 1200)
    assert summary.throttled / summary.attempts < 0.05, (summary.throttled, summary.attempts)
    assert summary.final_rate is not None and 100 < summary.final_rate < 300


async def test_rate_option_caps_the_sending_rate(tmp_path):
    path = make_jobs(tmp_path / "j.jsonl", 60)
    js = jobset_for(path)
    async with seeded(path) as sim:
        start = time.monotonic()
        summary = await run(
            js.jobs(), settings=settings(tmp_path, endpoint=sim.url, rate=100.0), credentials=DEMO_CREDENTIALS
        )
        elapsed = time.monotonic() - start
    assert summary.exit_code == 0
    assert elapsed >= 59 / 100 * 0.95


async def test_timeouts_are_retried(tmp_path):
    path = make_jobs(tmp_path / "j.jsonl", 20)
    js = jobset_for(path)
    async with seeded(path, Faults(hang_rate=0.2, hang_seconds=5, seed=2)) as sim:
        summary = await run(
            js.jobs(),
            settings=settings(tmp_path, endpoint=sim.url, timeout=0.3, max_attempts=10),
            credentials=DEMO_CREDENTIALS,
        )
    assert (summary.exit_code, summary.succeeded) == (0, 20)
    assert sim.counters.hangs > 0
    assert any(None in r["attempt_request_ids"] for r in ledger_lines(tmp_path))


async def test_run_with_a_given_client_and_no_ledger(tmp_path):
    path = make_jobs(tmp_path / "j.jsonl", 10)
    js = jobset_for(path)
    async with seeded(path) as sim, PaiClient(sim.url, DEMO_CREDENTIALS) as client:
        summary = await run(js.jobs(), settings=Settings(ledger=None), client=client)
    assert (summary.exit_code, summary.succeeded, summary.ledger) == (0, 10, None)


# -- through the command line ------------------------------------------------------------------


def test_cli_simulate_is_the_readme_main_command(tmp_path):
    result = run_cli("run", str(Path("jobs/approve.csv").resolve()), "--simulate", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["succeeded"], summary["failed"], summary["exit_code"]) == (6, 0, 0)
    assert "all jobs done" in result.stderr
    assert (tmp_path / "batchupdate-ledger.simulate.jsonl").exists()
    assert not (tmp_path / "batchupdate-ledger.jsonl").exists()  # simulated results never mix with real ones


def test_cli_dry_run_prints_requests_and_sends_nothing(tmp_path, simulator_process):
    sim = simulator_process()
    result = run_cli(
        "run",
        str(Path("jobs/backfill-metrics.jsonl").resolve()),
        "--dry-run",
        "--endpoint",
        sim.url,
        cwd=tmp_path,
        env=DEMO_ENV,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("PUT /api/v1/models/") for line in lines)
    assert "回填离线评估指标" in result.stdout
    assert sim.counters()["requests"] == 0
    assert not (tmp_path / "batchupdate-ledger.jsonl").exists()


def test_cli_invalid_rows_mean_nothing_is_sent(tmp_path, simulator_process, write):
    sim = simulator_process("--seed", str(Path("jobs/approve.csv").resolve()))
    bad = write(
        "bad.csv",
        "ModelId,VersionName,ApprovalStatus\nmodel-7a1b2c3d4e5f,1.0.0,Approved\nmodel-x,1.0,Approved\n",
    )
    result = run_cli("run", str(bad), "--endpoint", sim.url, cwd=tmp_path, env=DEMO_ENV)
    assert result.returncode == 2
    assert f"{bad}:3: VersionName:" in result.stderr
    assert "nothing was sent" in result.stderr
    assert sim.counters()["requests"] == 0


def test_cli_missing_credentials_is_a_setup_error_before_any_request(tmp_path, simulator_process):
    sim = simulator_process("--seed", str(Path("jobs/approve.csv").resolve()))
    result = run_cli(
        "run",
        str(Path("jobs/approve.csv").resolve()),
        "--endpoint",
        sim.url,
        cwd=tmp_path,
        env={"HOME": str(tmp_path)},
    )
    assert result.returncode == 2
    assert "ALIBABA_CLOUD_ACCESS_KEY_ID" in result.stderr and "Traceback" not in result.stderr
    assert sim.counters()["requests"] == 0


def test_cli_refuses_plain_http_to_a_remote_host(tmp_path):
    result = run_cli(
        "run",
        str(Path("jobs/approve.csv").resolve()),
        "--endpoint",
        "http://aiworkspace.cn-hangzhou.aliyuncs.com",
        cwd=tmp_path,
        env=DEMO_ENV,
    )
    assert result.returncode == 2
    assert "plain http is refused" in result.stderr
    assert not (tmp_path / "batchupdate-ledger.jsonl").exists()  # refused before anything else


def test_cli_needs_a_region(tmp_path):
    result = run_cli(
        "run", str(Path("jobs/approve.csv").resolve()), cwd=tmp_path, env={**DEMO_ENV, "HOME": str(tmp_path)}
    )
    assert result.returncode == 2 and "no region" in result.stderr


def test_cli_credentials_rejected_exit_3_and_secret_never_printed(tmp_path, simulator_process):
    canary = "leak-canary-7f3e9a1b"
    sim = simulator_process("--seed", str(Path("jobs/approve.csv").resolve()))
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "batchupdate-demo", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": canary}
    result = run_cli(
        "run", str(Path("jobs/approve.csv").resolve()), "--endpoint", sim.url, "--json", cwd=tmp_path, env=env
    )
    assert result.returncode == 3
    assert "SignatureDoesNotMatch" in result.stderr and "secret" in result.stderr
    everything = result.stdout + result.stderr + (tmp_path / "batchupdate-ledger.jsonl").read_text()
    assert canary not in everything
    ok = run_cli(
        "run", str(Path("jobs/approve.csv").resolve()), "--endpoint", sim.url, cwd=tmp_path, env=DEMO_ENV
    )
    assert ok.returncode == 0, ok.stderr
    everything = ok.stdout + ok.stderr + (tmp_path / "batchupdate-ledger.jsonl").read_text()
    assert DEMO_ENV["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] not in everything


def test_cli_cron_mode_logs_plain_lines(tmp_path, simulator_process):
    jobs = make_jobs(tmp_path / "j.jsonl", 30)
    sim = simulator_process("--seed", str(jobs), "--latency", "0.1")
    result = run_cli(
        "run",
        str(jobs),
        "--endpoint",
        sim.url,
        "--concurrency",
        "2",
        cwd=tmp_path,
        env={**DEMO_ENV, "BATCHUPDATE_LOG_INTERVAL": "0.3"},
    )
    assert result.returncode == 0, result.stderr
    log_lines = [line for line in result.stderr.splitlines() if " done · " in line]
    assert len(log_lines) >= 2 and "\r" not in result.stderr
    assert "throughput" in result.stderr and "top errors" not in result.stderr


def test_cli_environment_variables_set_options(tmp_path, simulator_process):
    jobs = make_jobs(tmp_path / "j.jsonl", 5)
    sim = simulator_process("--seed", str(jobs))
    result = run_cli(
        "run",
        str(jobs),
        "--json",
        cwd=tmp_path,
        env={**DEMO_ENV, "BATCHUPDATE_ENDPOINT": sim.url, "BATCHUPDATE_LEDGER": str(tmp_path / "l.jsonl")},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ledger"] == str(tmp_path / "l.jsonl")
    assert Counter(r["status"] for r in read_ledger(tmp_path / "l.jsonl")) == {"succeeded": 5}


def test_public_api_is_complete_and_sorted():
    public = [name for name in batchupdate.__all__]
    assert public == sorted(public)
    for name in public:
        assert hasattr(batchupdate, name), name
    for needed in ("run", "Settings", "Summary", "Simulator", "PaiClient", "JobSet", "Stopper", "Progress"):
        assert needed in public


def test_cli_live_progress_on_a_terminal(tmp_path, simulator_process):
    import os
    import sys

    import pexpect

    jobs = make_jobs(tmp_path / "j.jsonl", 40)
    sim = simulator_process("--seed", str(jobs), "--latency", "0.1")
    child = pexpect.spawn(
        sys.executable,
        ["-m", "batchupdate", "run", str(jobs), "--endpoint", sim.url, "--concurrency", "2"],
        cwd=str(tmp_path),
        env={**os.environ, **DEMO_ENV},
        encoding="utf-8",
        timeout=60,
    )
    child.expect(
        r"\r\x1b\[2K\d+/40 done · \d+ ok · 0 failed · \d+ retrying · 0 already done · rate \S+ · [\d.]+ jobs/s · ETA \d+s"
    )
    child.expect("all jobs done")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


async def test_identical_duplicates_are_sent_once(tmp_path):
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    make_jobs(a, 10)
    make_jobs(b, 5, start=8)  # 8 and 9 repeat a.jsonl's rows exactly; 10-12 are new
    js = JobSet([JobSource(a, "a.jsonl", "jsonl"), JobSource(b, "b.jsonl", "jsonl")])
    assert list(js.check()) == []
    assert (js.rows, js.distinct, js.duplicates) == (15, 13, 2)
    async with Simulator() as sim:
        sim.seed_from_jobs(js.sources)
        summary = await run(
            js.jobs(), settings=settings(tmp_path, endpoint=sim.url), credentials=DEMO_CREDENTIALS
        )
    assert summary.succeeded == 13
    assert set(sim.counters.puts_applied.values()) == {1}
    sources = {r["version_name"]: r["source"] for r in ledger_lines(tmp_path)}
    assert sources["1.0.8"] == "a.jsonl:9" and sources["1.0.12"] == "b.jsonl:5"
