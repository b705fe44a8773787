"""The contract's promises, each pointed at the test that proves it; and the README as its twin.

Every promise of CONTRACT.md (the README's "Contract" section) is listed here with the tests that
check it. The first test fails if a listed test disappears; the others fail if the README and
the command line drift apart.
"""

from __future__ import annotations

import argparse
import re

import pytest

from batchupdate.cli import build_parser

from .conftest import ROOT

PROMISES: dict[str, list[str]] = {
    "CSV: header, RFC 4180, BOM, CRLF": ["test_jobs.py::test_csv_header_quoting_bom_crlf"],
    "JSONL: blank lines ignored, null = not sent": [
        "test_jobs.py::test_jsonl_blank_lines_bad_lines_and_non_objects",
        "test_schema.py::test_empty_cell_and_null_mean_not_sent",
    ],
    "- reads stdin and needs --format": ["test_cli_validate.py::test_stdin_needs_format_and_reads_with_it"],
    "unknown field names the closest": ["test_schema.py::test_unknown_field_names_the_closest"],
    "object fields are JSON text in CSV": ["test_schema.py::test_object_fields_need_objects"],
    "Options holds valid JSON": ["test_schema.py::test_options_must_be_a_string_holding_json"],
    "Metrics at most 8,192 characters": ["test_schema.py::test_metrics_limit_counts_characters_not_bytes"],
    "VersionName, ApprovalStatus, SourceType, SourceId rules": [
        "test_schema.py::test_version_name_pattern",
        "test_schema.py::test_approval_status_exact_case_with_hint",
        "test_schema.py::test_source_type_enum_and_source_id_shape",
    ],
    "a row with no body field is an error": ["test_schema.py::test_required_keys_and_empty_body"],
    "conflicts are errors, identical duplicates applied once": [
        "test_cli_validate.py::test_conflict_across_files",
        "test_cli_validate.py::test_identical_duplicates_across_files_are_applied_once",
    ],
    "--set overrides every row": [
        "test_schema.py::test_set_overrides_the_file_value",
        "test_cli_validate.py::test_set_fills_every_row_and_bad_set_is_a_usage_error",
    ],
    "errors name file:line and field; one bad row: nothing sent, exit 2": [
        "test_cli_validate.py::test_validate_names_file_line_and_field_and_exits_2",
        "test_run.py::test_cli_invalid_rows_mean_nothing_is_sent",
    ],
    "validate / plan / select / report / undo / simulator": [
        "test_cli_validate.py::test_validate_passes_on_every_example",
        "test_plan_select_undo.py::test_plan_reports_each_class_exactly_and_sends_no_put",
        "test_plan_select_undo.py::test_select_then_run_with_set_approves_the_pending_ones",
        "test_ledger.py::test_report_and_failed_jobs_round_trip",
        "test_plan_select_undo.py::test_snapshot_undo_run_restores_every_field_but_approval",
        "test_simulator.py::test_the_simulator_command_serves_and_the_official_sdk_updates_through_it",
    ],
    "run options: --dry-run, --json, --simulate, env vars, --rate, --deadline, --max-failures": [
        "test_run.py::test_cli_dry_run_prints_requests_and_sends_nothing",
        "test_run.py::test_cli_simulate_is_the_readme_main_command",
        "test_run.py::test_cli_environment_variables_set_options",
        "test_run.py::test_rate_option_caps_the_sending_rate",
        "test_run.py::test_deadline_stops_dispatch_and_the_same_command_continues",
        "test_run.py::test_max_failures_stops_dispatch",
    ],
    "progress: live on a terminal, plain lines in cron": [
        "test_run.py::test_cli_live_progress_on_a_terminal",
        "test_run.py::test_cli_cron_mode_logs_plain_lines",
    ],
    "credentials: the chain, never printed; http only to loopback": [
        "test_credentials.py::test_environment_variables_first",
        "test_credentials.py::test_cli_run_with_a_profile_from_aliyun_config",
        "test_run.py::test_cli_credentials_rejected_exit_3_and_secret_never_printed",
        "test_run.py::test_cli_refuses_plain_http_to_a_remote_host",
    ],
    "exit codes 0 1 2 3 4 75 130 143": [
        "test_run.py::test_run_applies_every_job_and_records_it",
        "test_run.py::test_final_error_is_the_real_one_after_max_attempts",
        "test_run.py::test_cli_missing_credentials_is_a_setup_error_before_any_request",
        "test_run.py::test_rejected_credentials_abort_at_once",
        "test_run.py::test_deadline_stops_dispatch_and_the_same_command_continues",
        "test_ledger.py::test_two_concurrent_runs_one_exits_75_and_lines_never_interleave",
        "test_ledger.py::test_sigint_twice_cancels_at_once_and_leaves_a_readable_ledger",
        "test_ledger.py::test_sigterm_drains_in_flight_and_exits_143",
    ],
    "ledger: fields, resume, --force, torn line, one run per ledger": [
        "test_ledger.py::test_ledger_line_has_exactly_the_contract_fields_in_order",
        "test_ledger.py::test_resume_after_success_sends_zero_requests",
        "test_ledger.py::test_an_edited_row_is_sent_again",
        "test_ledger.py::test_torn_last_line_is_ignored_and_the_next_write_starts_fresh",
        "test_ledger.py::test_kill_9_at_random_points_then_the_same_command_finishes",
    ],
    "retries: transient only, by Code first; backoff honours hints": [
        "test_errors.py::test_classify_by_code_first",
        "test_run.py::test_transient_faults_are_retried_and_nothing_is_applied_beyond_recorded_attempts",
        "test_run.py::test_other_4xx_are_not_retried",
        "test_throttle_retry.py::test_backoff_is_full_jitter_capped_and_hints_win",
    ],
    "throttling: adapts down and recovers; learned rate kept": [
        "test_run.py::test_adaptive_rate_converges_without_a_rate_option",
        "test_throttle_retry.py::test_adaptive_rate_converges_on_the_server_limit",
        "test_plan_select_undo.py::test_learned_rate_is_kept_and_the_next_cron_run_starts_from_it",
    ],
    "credentials rejected abort at once: at most what was in flight": [
        "test_run.py::test_rejected_credentials_abort_at_once",
    ],
}


def _defined_tests() -> set[str]:
    found = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        for name in re.findall(r"^(?:async )?def (test_\w+)", path.read_text(), re.M):
            found.add(f"{path.name}::{name}")
    return found


def test_every_promise_points_at_tests_that_exist():
    defined = _defined_tests()
    missing = [test for tests in PROMISES.values() for test in tests if test not in defined]
    assert missing == []


def _run_options() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run = sub.choices["run"]
    flags = []
    for action in run._actions:
        if action.help == argparse.SUPPRESS or not action.option_strings or "-h" in action.option_strings:
            continue
        flags.append(next(o for o in action.option_strings if o.startswith("--")))
    return flags


@pytest.mark.parametrize("flag", _run_options())
def test_readme_documents_every_run_option(flag):
    readme = (ROOT / "README.md").read_text()
    if flag in ("--format", "--set"):  # the job-file inputs, documented under "Job files"
        assert f"`{flag}" in readme
        return
    assert f"`{flag}" in readme, f"README's contract lacks {flag}"


def test_every_option_in_the_readme_table_exists():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("`run` options") : readme.index("### Exit codes")]
    documented = set(re.findall(r"^\| `(--[a-z-]+)", table, re.M))
    assert documented <= set(_run_options()), documented - set(_run_options())


def test_readme_exit_codes_are_the_contracts():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Exit codes") : readme.index("### The ledger")]
    assert re.findall(r"^\| (\d+(?: / \d+)?) \|", section, re.M) == [
        "0",
        "1",
        "2",
        "3",
        "4",
        "75",
        "130 / 143",
    ]
