"""plan, select, snapshot + undo, the learned rate, and the irreversible-change guard."""

from __future__ import annotations

import json
from pathlib import Path

import pexpect
import pytest

from batchupdate.client import PaiClient
from batchupdate.credentials import DEMO_CREDENTIALS
from batchupdate.jobs import JobSource
from batchupdate.jobset import JobSet
from batchupdate.ledger import load_learned_rate, read_ledger
from batchupdate.runner import run
from batchupdate.select import select_versions
from batchupdate.settings import Settings
from batchupdate.simulator import Faults, Simulator

from .conftest import DEMO_ENV, ROOT, make_jobs, run_cli


def state_file(tmp_path: Path, versions: list[dict]) -> Path:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"versions": versions}))
    return path


def test_plan_reports_each_class_exactly_and_sends_no_put(tmp_path, simulator_process, write):
    state = state_file(
        tmp_path,
        [
            {
                "ModelId": "m",
                "VersionName": "1.0.0",
                "ApprovalStatus": "Pending",
                "VersionDescription": "old",
            },
            {
                "ModelId": "m",
                "VersionName": "1.0.1",
                "ApprovalStatus": "Approved",
                "VersionDescription": "same",
            },
            {"ModelId": "m", "VersionName": "1.0.2", "ApprovalStatus": "Rejected"},
            {"ModelId": "m", "VersionName": "1.0.3", "Metrics": {"auc": 0.9}},
        ],
    )
    sim = simulator_process("--state", str(state))
    jobs = write(
        "p.jsonl",
        "\n".join(
            json.dumps(r)
            for r in [
                {
                    "ModelId": "m",
                    "VersionName": "1.0.0",
                    "ApprovalStatus": "Approved",
                    "VersionDescription": "new " + "x" * 80,
                },
                {
                    "ModelId": "m",
                    "VersionName": "1.0.1",
                    "ApprovalStatus": "Approved",
                    "VersionDescription": "same",
                },
                {"ModelId": "m", "VersionName": "1.0.2", "ApprovalStatus": "Approved"},
                {"ModelId": "m", "VersionName": "1.0.3", "Metrics": {"auc": 0.91}},
                {"ModelId": "m", "VersionName": "9.9.9", "VersionDescription": "x"},
            ]
        )
        + "\n",
    )
    out = tmp_path / "changes.jsonl"
    result = run_cli(
        "plan",
        str(jobs),
        "--endpoint",
        sim.url,
        "--json",
        "--only-changes",
        str(out),
        cwd=tmp_path,
        env=DEMO_ENV,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"] == {"change": 2, "no-op": 1, "refused": 1, "missing": 1, "error": 0}
    kinds = {e["version_name"]: e["kind"] for e in report["entries"]}
    assert kinds == {
        "1.0.0": "change",
        "1.0.1": "no-op",
        "1.0.2": "refused",
        "1.0.3": "change",
        "9.9.9": "missing",
    }
    first = next(e for e in report["entries"] if e["version_name"] == "1.0.0")
    assert {c["field"]: c["old"] for c in first["changes"]} == {
        "ApprovalStatus": "Pending",
        "VersionDescription": "old",
    }
    counters = sim.counters()
    assert counters["by_action"].get("UpdateModelVersion", 0) == 0 and counters["puts_applied"] == []
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(r["VersionName"] for r in rows) == ["1.0.0", "1.0.3"]
    assert run_cli("validate", str(out)).returncode == 0
    text = run_cli("plan", str(jobs), "--endpoint", sim.url, cwd=tmp_path, env=DEMO_ENV)
    assert "1 refused" in text.stdout and "ApprovalStatus is already Rejected" in text.stdout
    assert "VersionDescription: old -> new xxxx" in text.stdout and "…" in text.stdout


async def test_select_returns_all_1234_versions_once_with_page_size_100():
    versions = [
        {
            "ModelId": "m-1",
            "VersionName": f"1.{i // 100}.{i % 100}",
            "ApprovalStatus": "Pending" if i % 2 else "Approved",
        }
        for i in range(1234)
    ]
    async with Simulator(versions=versions) as sim, PaiClient(sim.url, DEMO_CREDENTIALS) as client:
        got = [v["VersionName"] async for v in select_versions(client, "m-1", page_size=100)]
        assert len(got) == 1234 and len(set(got)) == 1234
        assert sim.counters.by_action["ListModelVersions"] == 13
        pending = [v async for v in select_versions(client, "m-1", filters={"ApprovalStatus": "Pending"})]
        assert len(pending) == 617
        globbed = [v async for v in select_versions(client, "m-1", version_pattern="1.1.*")]
        assert len(globbed) == 100


def test_select_then_run_with_set_approves_the_pending_ones(tmp_path, simulator_process):
    state = state_file(
        tmp_path,
        [
            {
                "ModelId": "m-1",
                "VersionName": f"1.0.{i}",
                "ApprovalStatus": "Pending" if i < 3 else "Approved",
            }
            for i in range(5)
        ],
    )
    sim = simulator_process("--state", str(state))
    out = tmp_path / "pending.csv"
    result = run_cli(
        "select",
        "--model",
        "m-1",
        "--approval-status",
        "Pending",
        "-o",
        str(out),
        "--endpoint",
        sim.url,
        cwd=tmp_path,
        env=DEMO_ENV,
    )
    assert result.returncode == 0, result.stderr
    assert out.read_text().splitlines() == ["ModelId,VersionName", "m-1,1.0.0", "m-1,1.0.1", "m-1,1.0.2"]
    approved = run_cli(
        "run",
        str(out),
        "--set",
        "ApprovalStatus=Approved",
        "--endpoint",
        sim.url,
        "--json",
        cwd=tmp_path,
        env=DEMO_ENV,
    )
    assert json.loads(approved.stdout)["succeeded"] == 3


async def test_snapshot_undo_run_restores_every_field_but_approval(tmp_path):
    original = [
        {
            "ModelId": "m",
            "VersionName": f"2.0.{i}",
            "ApprovalStatus": "Pending",
            "VersionDescription": f"original {i}",
            "Metrics": {"auc": 0.5 + i / 100},
            "Options": '{"keep": true}',
        }
        for i in range(20)
    ]
    jobs = tmp_path / "change.jsonl"
    jobs.write_text(
        "".join(
            json.dumps(
                {
                    "ModelId": "m",
                    "VersionName": f"2.0.{i}",
                    "ApprovalStatus": "Approved",
                    "VersionDescription": f"changed {i}",
                    "Metrics": {"auc": 0.99},
                    "Options": '{"keep": false}',
                }
            )
            + "\n"
            for i in range(20)
        )
    )
    ledger = tmp_path / "ledger.jsonl"
    async with Simulator(versions=original) as sim:
        js = JobSet([JobSource(jobs, "change.jsonl", "jsonl")])
        assert list(js.check()) == []
        summary = await run(
            js.jobs(),
            settings=Settings(endpoint=sim.url, ledger=ledger, snapshot=True),
            credentials=DEMO_CREDENTIALS,
        )
        assert summary.succeeded == 20
        assert sim.version("m", "2.0.3")["VersionDescription"] == "changed 3"
        records = list(read_ledger(ledger))
        assert records[0]["before"]["VersionDescription"].startswith("original")
        assert set(records[0]["before"]) == {"ApprovalStatus", "VersionDescription", "Metrics", "Options"}

        undo_file = tmp_path / "undo.jsonl"
        result = run_cli("undo", "--ledger", str(ledger), "-o", str(undo_file))
        assert result.returncode == 0, result.stderr
        assert result.stderr.count("ApprovalStatus cannot be restored") == 20
        assert "m/2.0.7: ApprovalStatus cannot be restored to 'Pending'" in result.stderr
        js2 = JobSet([JobSource(undo_file, "undo.jsonl", "jsonl")])
        assert list(js2.check()) == []
        summary = await run(
            js2.jobs(), settings=Settings(endpoint=sim.url, ledger=ledger), credentials=DEMO_CREDENTIALS
        )
        assert summary.succeeded == 20
        for record in original:
            now = sim.version("m", record["VersionName"])
            for name in ("VersionDescription", "Metrics", "Options"):
                assert now[name] == record[name]
            assert now["ApprovalStatus"] == "Approved"  # one-way, as warned


def test_undo_without_snapshots_is_a_clear_error(tmp_path, simulator_process):
    result = run_cli("run", str(ROOT / "jobs/approve.csv"), "--simulate", cwd=tmp_path)
    assert result.returncode == 0
    undo = run_cli(
        "undo",
        "--ledger",
        str(tmp_path / "batchupdate-ledger.simulate.jsonl"),
        "-o",
        str(tmp_path / "u.jsonl"),
    )
    assert undo.returncode == 2 and "--snapshot" in undo.stderr


async def test_learned_rate_is_kept_and_the_next_cron_run_starts_from_it(tmp_path):
    jobs = make_jobs(tmp_path / "j.jsonl", 600)
    ledger = tmp_path / "ledger.jsonl"
    async with Simulator(faults=Faults(rate_limit=200)) as sim:
        sim.seed_from_jobs([JobSource(jobs, "j", "jsonl")])
        js = JobSet([JobSource(jobs, "j", "jsonl")])
        list(js.check())
        first = await run(
            js.jobs(),
            settings=Settings(endpoint=sim.url, ledger=ledger, backoff_base=0.01),
            credentials=DEMO_CREDENTIALS,
        )
        learned = load_learned_rate(ledger)
        assert learned is not None and 100 < learned < 300
        second = await run(
            js.jobs(),
            settings=Settings(endpoint=sim.url, ledger=ledger, force=True, backoff_base=0.01),
            credentials=DEMO_CREDENTIALS,
        )
    assert first.throttled > 0
    assert second.throttled < max(1, first.throttled // 3)
    assert second.throttled / second.attempts < 0.01


@pytest.mark.parametrize(("answer", "code"), [("y", 0), ("n", 2)])
def test_irreversible_guard_asks_once_on_a_terminal(tmp_path, simulator_process, answer, code):
    jobs = make_jobs(tmp_path / "j.jsonl", 5)
    sim = simulator_process("--seed", str(jobs))
    import os
    import sys

    child = pexpect.spawn(
        sys.executable,
        ["-m", "batchupdate", "run", str(jobs), "--endpoint", sim.url, "--confirm-over", "3"],
        cwd=str(tmp_path),
        env={**os.environ, **DEMO_ENV},
        encoding="utf-8",
        timeout=30,
    )
    child.expect(r"on 5 versions\. This cannot be undone")
    child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == code
    assert len(sim.puts()) == (5 if answer == "y" else 0)


def test_without_a_terminal_or_with_yes_it_proceeds(tmp_path, simulator_process):
    jobs = make_jobs(tmp_path / "j.jsonl", 5)
    sim = simulator_process("--seed", str(jobs))
    result = run_cli(
        "run", str(jobs), "--endpoint", sim.url, "--confirm-over", "1", cwd=tmp_path, env=DEMO_ENV
    )
    assert result.returncode == 0 and len(sim.puts()) == 5
