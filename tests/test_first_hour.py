"""A newcomer's first hour (issue #16): mistakes caught before anything is written, errors that
say where and why, reports that tell the truth — each case through the real CLI and emulators."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from rich.console import Console

from opsgenie_export.outcome import BlueprintStats, ResourceStats, RunOutcome
from opsgenie_export.report import RichEvents, make_console, render_summary
from opsgenie_export.sandbox.accounts import generate_account

from conftest import (
    REPO,
    Sandbox,
    assert_no_secret_leak,
    default_mapping_with,
    run_cli,
    running_sandbox,
    sync_args,
)

BLUEPRINTS = REPO / "blueprints"


def _assert_no_secret(output: str) -> None:
    assert_no_secret_leak(output)  # the suite's one leak check: every form of every secret


def _create_blueprints(sandbox: Sandbox, *names: str) -> None:
    for name in names:
        sandbox.port.add_blueprint(json.loads((BLUEPRINTS / f"{name}.json").read_text()))


# -- case 1: enrichment keys are checked ------------------------------------------------------

MISTAKEN_KEYS = {
    # an alert key on an incident: it would write null over every incident's services
    "misplaced": (
        ("services: '[.__impactedServices[] |", "services: '[.__relatedIncident[] |"),
        "resources[1] (kind incident) field 'relations.services'",
        "'__relatedIncident' is not provided for kind incident (only for alert); did you mean '__impactedServices'?",
    ),
    # a typo: it would write null over every alert's relatedIncident
    "misspelled": (
        ("relatedIncident: .__relatedIncident.id", "relatedIncident: .__relatedIncidnet.id"),
        "resources[2] (kind alert) field 'relations.relatedIncident'",
        "unknown enrichment key '__relatedIncidnet'; did you mean '__relatedIncident'?",
    ),
}


@pytest.mark.parametrize("case", sorted(MISTAKEN_KEYS))
def test_validate_rejects_a_misspelled_or_misplaced_enrichment_key(tmp_path: Path, case: str) -> None:
    replacement, where, message = MISTAKEN_KEYS[case]
    mapping = default_mapping_with(tmp_path / "mapping.yaml", replacement)
    result = run_cli(["validate", "--mapping", str(mapping), "--blueprints", str(BLUEPRINTS)])
    assert result.exit_code == 2, result.output
    assert where in result.stderr and message in result.stderr
    assert "valid against" not in result.output


@pytest.mark.parametrize("case", sorted(MISTAKEN_KEYS))
def test_sync_rejects_a_mistaken_enrichment_key_before_any_request(
    seed_sandbox: Sandbox, tmp_path: Path, case: str
) -> None:
    replacement, where, message = MISTAKEN_KEYS[case]
    args = sync_args()
    args[2] = str(default_mapping_with(tmp_path / "mapping.yaml", replacement))
    result = run_cli(args, seed_sandbox.env)
    assert result.exit_code == 2, result.output
    assert where in result.stderr and message in result.stderr
    assert seed_sandbox.opsgenie.count() == 0 and seed_sandbox.port.count() == 0
    _assert_no_secret(result.output)


def test_serve_rejects_a_mistaken_enrichment_key_at_start(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    mapping = default_mapping_with(tmp_path / "mapping.yaml", MISTAKEN_KEYS["misspelled"][0])
    env = {**seed_sandbox.env, "OPSGENIE_WEBHOOK_SECRET": "a-long-webhook-secret-0123456789"}
    result = run_cli(["serve", "--port", "0", "--mapping", str(mapping)], env)
    assert result.exit_code == 2, result.output
    assert "did you mean '__relatedIncident'?" in result.output
    assert seed_sandbox.opsgenie.count() == 0 and seed_sandbox.port.count() == 0


def test_a_key_of_the_right_kind_and_a_name_merely_containing_underscores_pass(tmp_path: Path) -> None:
    mapping = default_mapping_with(
        tmp_path / "mapping.yaml", ("title: .message", 'title: .message + "a__b" + ($__loc__ | tostring)')
    )
    result = run_cli(["validate", "--mapping", str(mapping), "--blueprints", str(BLUEPRINTS)])
    assert result.exit_code == 0, result.output


# -- case 3: preflight against Port ----------------------------------------------------------


def test_sync_against_a_port_without_the_blueprints_exits_2_before_any_opsgenie_request(
    seed_sandbox: Sandbox, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.json"
    args = [a for a in sync_args("--summary-json", str(summary)) if a != "--initialize-port-resources"]
    result = run_cli(args, seed_sandbox.env)
    assert result.exit_code == 2, result.output
    assert "opsGenieAlert, opsGenieIncident, opsGenieService not found in Port" in result.stderr
    assert "--initialize-port-resources" in result.stderr
    assert seed_sandbox.opsgenie.count() == 0
    assert seed_sandbox.port.count("POST", r".*/entities.*") == 0
    assert json.loads(summary.read_text())["exitCode"] == 2
    _assert_no_secret(result.output)


def test_sync_with_a_property_the_blueprint_lacks_exits_2_before_any_opsgenie_request(
    seed_sandbox: Sandbox, tmp_path: Path
) -> None:
    _create_blueprints(seed_sandbox, "opsGenieService", "opsGenieIncident", "opsGenieAlert")
    args = [a for a in sync_args() if a != "--initialize-port-resources"]
    args[2] = str(default_mapping_with(tmp_path / "mapping.yaml", ("priority: .priority", "priorty: .priority")))
    result = run_cli(args, seed_sandbox.env)
    assert result.exit_code == 2, result.output
    assert "property 'priorty' is not in blueprint 'opsGenieIncident'; did you mean 'priority'?" in result.stderr
    assert "validate --from-port" in result.stderr
    assert seed_sandbox.opsgenie.count() == 0
    assert not any(seed_sandbox.port.entities.values())


def test_dry_run_with_initialize_plans_the_blueprints_and_judges_deletion_as_the_real_run(
    seed_sandbox: Sandbox, tmp_path: Path
) -> None:
    result = run_cli(sync_args("--dry-run", "--output", "json"), seed_sandbox.env)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["blueprintsToCreate"] == ["opsGenieService", "opsGenieIncident", "opsGenieAlert"]
    assert {b["blueprint"]: b["deletion"] for b in plan["blueprints"]} == dict.fromkeys(
        ["opsGenieService", "opsGenieIncident", "opsGenieAlert"], "none: blueprint to be created"
    )
    assert plan["plan"]["opsGenieAlert"]["create"]
    assert seed_sandbox.port.blueprints == {}  # nothing created
    text = run_cli(sync_args("--dry-run"), seed_sandbox.env)
    assert text.exit_code == 0, text.output
    assert "create blueprints: opsGenieService, opsGenieIncident, opsGenieAlert" in text.stdout
    # the real run then does what the plan said
    real = run_cli(sync_args(), seed_sandbox.env)
    assert real.exit_code == 0, real.output
    assert sorted(seed_sandbox.port.blueprints) == ["opsGenieAlert", "opsGenieIncident", "opsGenieService"]


# -- case 5: errors that say where and why ----------------------------------------------------


def test_opsgenie_url_with_v2_and_a_trailing_slash_is_normalised(seed_sandbox: Sandbox) -> None:
    env = {**seed_sandbox.env, "OPSGENIE_API_URL": seed_sandbox.urls[0] + "/v2/"}
    assert run_cli(sync_args(), env).exit_code == 0
    result = run_cli(sync_args("--opsgenie-url", seed_sandbox.urls[0] + "/v1"), seed_sandbox.env)
    assert result.exit_code == 0, result.output
    assert not any("/v2/v1/" in entry.path or "/v1/v1/" in entry.path for entry in seed_sandbox.opsgenie.requests())


def test_an_empty_token_option_is_an_error_not_a_fallback_to_the_environment(seed_sandbox: Sandbox) -> None:
    result = run_cli(sync_args("--opsgenie-token", ""), seed_sandbox.env)
    assert result.exit_code == 2, result.output
    assert "--opsgenie-token is empty" in result.stderr
    assert seed_sandbox.opsgenie.count() == 0 and seed_sandbox.port.count() == 0


def test_a_refused_key_names_the_variable_and_file_it_came_from(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    env = {k: v for k, v in seed_sandbox.env.items() if k != "OPSGENIE_API_TOKEN"}
    (tmp_path / ".env").write_text("OCEAN__INTEGRATION__CONFIG__API_TOKEN=wrong-key-123456\n")
    result = run_cli(sync_args(), env)
    assert result.exit_code == 3, result.output
    assert "check the key from OCEAN__INTEGRATION__CONFIG__API_TOKEN (.env file .env)" in result.stderr
    assert "OPSGENIE_API_TOKEN" not in result.stderr
    assert "wrong-key-123456" not in result.output


def test_port_refusal_names_where_each_credential_came_from(seed_sandbox: Sandbox) -> None:
    env = {k: v for k, v in seed_sandbox.env.items() if k != "PORT_CLIENT_SECRET"}
    env["OCEAN__PORT__CLIENT_SECRET"] = "not-the-secret-42"
    result = run_cli(sync_args(), env)
    assert result.exit_code == 3, result.output
    assert "the secret from OCEAN__PORT__CLIENT_SECRET (environment)" in result.stderr
    assert "not-the-secret-42" not in result.output


@pytest.mark.parametrize("where", ["option", "REQUESTS_CA_BUNDLE"])
@pytest.mark.parametrize("content", ["garbage", "missing"])
def test_a_ca_bundle_that_is_not_a_certificate_bundle_is_a_configuration_error(
    seed_sandbox: Sandbox, tmp_path: Path, where: str, content: str
) -> None:
    bundle = tmp_path / "bundle.pem"
    if content == "garbage":
        bundle.write_text("this is not a certificate\n")
    env, extra = dict(seed_sandbox.env), []
    if where == "option":
        extra = ["--ca-bundle", str(bundle)]
    else:
        env["REQUESTS_CA_BUNDLE"] = str(bundle)
    result = run_cli(sync_args(*extra), env)
    assert result.exit_code == 2, result.output
    assert str(bundle) in result.stderr
    assert ("file not found" if content == "missing" else "certificate") in result.stderr
    assert "Traceback" not in result.output
    assert seed_sandbox.opsgenie.count() == 0 and seed_sandbox.port.count() == 0


def test_all_missing_credentials_are_listed_at_once(seed_sandbox: Sandbox) -> None:
    env = {k: v for k, v in seed_sandbox.env.items() if k.endswith("_URL")}
    result = run_cli(sync_args(), env)
    assert result.exit_code == 2, result.output
    for name in ("OPSGENIE_API_TOKEN", "PORT_CLIENT_ID", "PORT_CLIENT_SECRET"):
        assert name in result.stderr
    assert "missing 3 credential(s)" in result.stderr


# -- case 7: YAML and .env mistakes -------------------------------------------------------------


def test_a_tab_in_the_mapping_is_named_with_line_and_column(tmp_path: Path) -> None:
    mapping = default_mapping_with(tmp_path / "mapping.yaml", ("    selector:\n", "\tselector:\n"))
    credentials = {"OPSGENIE_API_TOKEN": "x" * 8, "PORT_CLIENT_ID": "id", "PORT_CLIENT_SECRET": "y" * 8}
    for command in ("validate", "sync"):
        result = run_cli([command, "--mapping", str(mapping)], credentials)
        assert result.exit_code == 2, result.output
        assert "mapping.yaml line 8, column 1: invalid YAML: a tab character" in result.stderr, result.stderr


def test_an_empty_mapping_says_so_without_an_empty_location(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = run_cli(["validate", "--mapping", str(empty)])
    assert result.exit_code == 2
    assert f"{empty}: the mapping file is empty" in result.stderr and ": :" not in result.stderr


def test_a_malformed_env_line_is_a_warning_with_its_line_number(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    lines = [f"{name}={value}" for name, value in seed_sandbox.env.items()]
    lines.insert(2, "this line is not an assignment")
    (tmp_path / ".env").write_text("\n".join(lines) + "\n")
    result = run_cli(sync_args())
    assert result.exit_code == 0, result.output
    assert "warning: .env line 3: ignored, not NAME=value" in result.stderr


# -- cases 9 and 10: honest, readable reports -------------------------------------------------

OCEAN = REPO / "examples" / "ocean"


def _table_lines(stderr: str) -> list[str]:
    """The summary tables: from the first table's title to the first message line after them
    (messages are `where: what`; table rows have no ': ')."""
    lines = stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Opsgenie → Port"))
    blueprints = next(i for i, line in enumerate(lines) if line.startswith("Port blueprints"))
    end = next((i for i, line in enumerate(lines[blueprints:], blueprints) if ": " in line), len(lines))
    return lines[start:end]


@pytest.mark.parametrize("columns", ["80", None], ids=["COLUMNS=80", "default"])
def test_summary_tables_fit_80_columns_without_ellipses(columns: str | None) -> None:
    account = generate_account(alerts=40, incidents=10, services=6, teams=3, schedules=5, seed=3)
    with running_sandbox(account) as sandbox:
        env = {**sandbox.env, **({"COLUMNS": columns} if columns else {})}
        args = ["sync", "--mapping", str(OCEAN / "mapping.yaml"), "--blueprints", str(OCEAN / "blueprints")]
        result = run_cli([*args, "--initialize-port-resources", "--no-delete"], env)
    assert result.exit_code == 0, result.output
    table = _table_lines(result.stderr)
    assert any(" schedule " in line for line in table) and any("opsGenieSchedule " in line for line in table)
    assert any("off (--no-delete)" in line for line in table), table
    assert all(len(line) <= 80 for line in table), "\n".join(line for line in table if len(line) > 80)
    assert not any("…" in line for line in table), table
    # one progress line per resource, in words a user knows
    progress = [line for line in result.stderr.splitlines() if line.startswith("resources[0] ")]
    assert len(progress) == 1 and " fetched in " in progress[0] and " to write, " in progress[0], progress
    assert "settled" not in result.output


def test_no_delete_still_counts_the_stale_entities(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    assert run_cli(sync_args(), seed_sandbox.env).exit_code == 0
    for n in range(3):
        seed_sandbox.port.put_entity("opsGenieAlert", {"identifier": f"stale-alert-{n}", "title": "gone upstream"})
    summary = tmp_path / "summary.json"
    result = run_cli(sync_args("--no-delete", "--summary-json", str(summary)), seed_sandbox.env)
    assert result.exit_code == 0, result.output
    alerts = next(b for b in json.loads(summary.read_text())["blueprints"] if b["blueprint"] == "opsGenieAlert")
    assert alerts["stale"] == 3 and alerts["deleted"] == 0 and alerts["deletion"] == "off (--no-delete)"
    assert "stale-alert-0" in seed_sandbox.port.entities["opsGenieAlert"]


def test_cut_failure_lists_say_how_many_were_left_out_and_github_summary_tells_the_truth(
    seed_sandbox: Sandbox, tmp_path: Path
) -> None:
    for n in range(25):  # 25 alerts whose title fails to map (a string plus an array)
        seed_sandbox.account.add_alert({**seed_sandbox.account.alerts[0], "id": f"extra-{n}", "tinyId": str(900 + n)})
    args = sync_args("--summary-json", str(tmp_path / "summary.json"))
    args[2] = str(default_mapping_with(tmp_path / "mapping.yaml", ("title: .message", "title: .message + .tags")))
    step_summary = tmp_path / "step-summary.md"
    env = {**seed_sandbox.env, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(step_summary)}
    result = run_cli(args, env)
    assert result.exit_code == 1, result.output
    alert = next(r for r in json.loads((tmp_path / "summary.json").read_text())["resources"] if r["kind"] == "alert")
    assert alert["failed"] == 26 and len(alert["errors"]) == 20 and alert["errorsNotListed"] == 6
    assert "resources[2] alert: … 16 more failure(s) not listed here (all are counted; the JSON summary lists 20)" in (
        result.stderr
    )
    github = step_summary.read_text()
    assert "16 more failure(s) not listed here" in github
    assert "has them all" not in github


def test_the_widest_table_wraps_a_long_name_instead_of_cutting_it() -> None:
    """Six-digit counts, a warnings column, 'truncated' and a long kind and blueprint at 80 columns."""
    counts = dict.fromkeys(("fetched", "filtered", "upserted", "unchanged", "failed"), 123456)
    stats = ResourceStats(12, "schedule-oncall", [], status="truncated", reason="r", skipped=5, **counts)
    blueprint = BlueprintStats("opsGenieScheduleOncallRecipients", stale=123456, deletion="off (--no-delete)")
    stream = io.StringIO()
    render_summary(RunOutcome([stats], {blueprint.blueprint: blueprint}), make_console(stream, color=False))
    table = _table_lines(stream.getvalue())
    assert all(len(line) <= 80 for line in table) and not any("…" in line for line in table)
    text = "\n".join(table)
    assert "truncated" in text and "123456" in text and "warnings" in text and "schedule-oncall" in text
    assert "\nopsGenieScheduleOncal" in text and "\nlRecipients" in text  # wrapped onto two lines, not cut


# -- case 11: help and docs true ---------------------------------------------------------------


def test_help_lists_the_choices_and_shell_completion() -> None:
    sync_help = run_cli(["sync", "--help"]).stdout
    for option, choices in (("--region", "<us|eu>"), ("--output", "<text|json>"), ("--log-format", "<text|json>")):
        assert f"{option} {choices}" in sync_help, option
    assert "--debug" in sync_help and "'-': stdout" in sync_help
    serve_help = run_cli(["serve", "--help"]).stdout
    for option in ("--mode <refetch|payload>", "--log-format <text|json>", "--quiet", "--no-color", "--debug"):
        assert option in serve_help, option
    validate_help = run_cli(["validate", "--help"]).stdout
    assert "--port-url" in validate_help and "--ca-bundle" in validate_help
    assert "--install-completion" in run_cli(["--help"]).stdout
    refused = run_cli(["sync", "--output", "xml"])
    assert refused.exit_code == 2 and "'xml' is not one of 'text', 'json'" in refused.output


def test_validate_says_which_blueprints_it_used(tmp_path: Path) -> None:
    packaged = run_cli(["validate"])
    assert packaged.exit_code == 0, packaged.output
    assert "valid against 3 blueprints of the packaged default blueprints" in packaged.stderr
    folder = run_cli(["validate", "--blueprints", str(BLUEPRINTS)])
    assert f"of the blueprints folder {BLUEPRINTS}" in folder.stderr


def test_validate_from_port_takes_port_url_and_ca_bundle(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    _create_blueprints(seed_sandbox, "opsGenieService", "opsGenieIncident", "opsGenieAlert")
    env = {k: v for k, v in seed_sandbox.env.items() if k != "PORT_BASE_URL"}
    result = run_cli(["validate", "--from-port", "--port-url", seed_sandbox.urls[1] + "/v1"], env)
    assert result.exit_code == 0, result.output
    assert f"in Port ({seed_sandbox.urls[1]})" in result.stderr
    garbage = tmp_path / "ca.pem"
    garbage.write_text("not a certificate")
    bad = run_cli(["validate", "--from-port", "--port-url", seed_sandbox.urls[1], "--ca-bundle", str(garbage)], env)
    assert bad.exit_code == 2 and "not a bundle of PEM certificates" in bad.stderr


def test_debug_logs_every_request_with_secrets_masked(seed_sandbox: Sandbox) -> None:
    result = run_cli(sync_args("--debug"), seed_sandbox.env)
    assert result.exit_code == 0, result.output
    requests_logged = [line for line in result.stderr.splitlines() if line.startswith("debug: ")]
    assert f"debug: POST {seed_sandbox.urls[1]}/v1/auth/access_token → 200 in " in result.stderr
    assert any(f"GET {seed_sandbox.urls[0]}/v1/services" in line for line in requests_logged)
    assert len(requests_logged) >= seed_sandbox.opsgenie.count() + seed_sandbox.port.count() - 1
    _assert_no_secret(result.output)
    quiet = run_cli(sync_args(), seed_sandbox.env)
    assert "debug:" not in quiet.stderr  # off by default, and off again after a --debug run


def test_summary_json_dash_writes_the_summary_to_stdout(seed_sandbox: Sandbox) -> None:
    result = run_cli(sync_args("--summary-json", "-"), seed_sandbox.env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["exitCode"] == 0 and summary["result"] == "success"
    assert not Path("-").exists()
    before = seed_sandbox.opsgenie.count()
    both = run_cli(sync_args("--summary-json", "-", "--output", "json"), seed_sandbox.env)
    assert both.exit_code == 2 and "cannot be used with --output json" in both.output
    assert seed_sandbox.opsgenie.count() == before


def _spawn(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "opsgenie_export", *args]
    environment = {**env, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    return subprocess.Popen(command, env=environment, cwd=cwd, stderr=subprocess.PIPE, text=True)


def _wait_for(predicate: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_the_readme_sandbox_section_runs_as_written(tmp_path: Path) -> None:
    """README "Try the real commands against the sandbox": sandbox, sync, sync --dry-run, validate
    --from-port and serve (with /healthz) against the emulators, as a newcomer types them."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Try the real commands against the sandbox")[1].split("\n## ")[0]
    sandbox = _spawn("sandbox", env={}, cwd=tmp_path)
    serve = None
    try:
        env_file = tmp_path / "sandbox.env"
        _wait_for(lambda: env_file.is_file() and "OPSGENIE_WEBHOOK_SECRET" in env_file.read_text())
        first = run_cli(["sync", "--env-file", "sandbox.env", "--initialize-port-resources"])
        assert first.exit_code == 0, first.output
        second = run_cli(["sync", "--env-file", "sandbox.env", "--dry-run"])
        assert second.exit_code == 0, second.output
        assert "create 0" in second.stdout and "update 0" in second.stdout  # nothing changed
        valid = run_cli(["validate", "--from-port", "--env-file", "sandbox.env"])
        assert valid.exit_code == 0 and "valid against 3 blueprints in Port" in valid.stderr
        serve = _spawn(
            "serve", "--env-file", "sandbox.env", "--port", "0", "--log-format", "json", env={}, cwd=tmp_path
        )
        line = serve.stderr.readline()  # type: ignore[union-attr]
        record = json.loads(line)
        assert record["level"] == "info" and record["event"] == "serve" and "listening on" in record["message"]
        url = record["message"].split("listening on ")[1].split("/integration")[0]
        health = requests.get(f"{url}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        assert all(json.loads(line) for line in serve.stderr.read().splitlines())  # type: ignore[union-attr]
    finally:
        for process in (serve, sandbox):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
    assert sandbox.returncode == 0
    for command in ("opsgenie-export sandbox", "--env-file sandbox.env --initialize-port-resources", "/healthz"):
        assert command in section


# -- case 5: network and TLS failures name the host, fail fast, say the time ------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_opsgenie_names_the_host_and_fails_once_fast(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    port = _closed_port()
    summary = tmp_path / "summary.json"
    env = {**seed_sandbox.env, "OPSGENIE_API_URL": f"http://127.0.0.1:{port}"}
    result = run_cli(sync_args("--summary-json", str(summary)), env)
    assert result.exit_code == 1, result.output
    expected = f"cannot connect to 127.0.0.1:{port} (connection refused); gave up after 3 attempts in "
    reasons = [resource["reason"] for resource in json.loads(summary.read_text())["resources"]]
    assert len(reasons) == 3 and all(expected in reason for reason in reasons), reasons  # found once, said for all
    assert "check the Opsgenie URL (--opsgenie-url or --region)" in result.stderr
    assert json.loads(summary.read_text())["requests"]["retries"] <= 2  # only the first request was retried
    assert not any(seed_sandbox.port.entities.values())


def test_a_tls_handshake_with_a_plain_http_port_fails_at_once_naming_the_host(seed_sandbox: Sandbox) -> None:
    host = seed_sandbox.urls[0].removeprefix("http://")
    env = {**seed_sandbox.env, "OPSGENIE_API_URL": f"https://{host}"}
    result = run_cli(sync_args(), env)
    assert result.exit_code == 1, result.output
    assert f"TLS handshake with {host} failed (" in result.stderr and "does that port speak https?" in result.stderr
    assert "attempts" not in result.stderr  # never retried
    assert not any(seed_sandbox.port.entities.values())


def test_port_unreachable_names_the_host(seed_sandbox: Sandbox) -> None:
    port = _closed_port()
    env = {**seed_sandbox.env, "PORT_BASE_URL": f"http://127.0.0.1:{port}"}
    result = run_cli(sync_args(), env)
    assert result.exit_code == 1, result.output
    assert f"Port: connection failed: cannot connect to 127.0.0.1:{port} (connection refused)" in result.stderr
    assert "check the Port URL (--port-url)" in result.stderr
    assert seed_sandbox.opsgenie.count() == 0


def test_a_terminal_progress_bar_shows_the_total_and_a_rate_when_known() -> None:
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=True, width=120, color_system=None)
    events = RichEvents(console)
    stats = ResourceStats(1, "incident", [], total=250, fetched=100, upserted=90, failed=10)
    events.resource_started(stats)
    events._started -= 2.0  # two seconds in
    events.page_done(stats)
    events.close()
    text = stream.getvalue()
    assert "100 of 250 fetched, 100 processed, 10 failed, 50/s" in text


def test_serve_quiet_keeps_only_warnings_and_errors(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    env = {**seed_sandbox.env, "OPSGENIE_WEBHOOK_SECRET": "tiny-secret"}  # a warning at start
    port = _closed_port()
    args = ("serve", "--no-env-file", "--host", "127.0.0.1", "--port", str(port), "--quiet", "--no-color")
    serve = _spawn(*args, env=env, cwd=tmp_path)
    try:
        warning = serve.stderr.readline()  # type: ignore[union-attr]
        assert warning.startswith("warning: OPSGENIE_WEBHOOK_SECRET is shorter than 16 characters")
        _wait_for(lambda: _answers(f"http://127.0.0.1:{port}/healthz"))
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        assert serve.stderr.read() == ""  # type: ignore[union-attr]  # no "listening"/"stopped" info lines
    finally:
        if serve.poll() is None:
            serve.kill()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False
