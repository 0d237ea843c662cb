"""Every exit path reports (issue 11 §3, issue 16 §5): each exit code — 0, 1, 2, 3, 130, 143 —
leaves a summary file and a final JSON record; usage errors, a bad --summary-json path, a
missing CA bundle and an internal error included; credentials are cleaned or refused; and the
suite's one leak helper catches every form of a secret. All through the real CLI."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from opsgenie_export.sandbox.accounts import generate_account
from opsgenie_export.sandbox.server import FaultRule

from conftest import (
    OPSGENIE_KEY,
    PORT_ID,
    PORT_SECRET,
    CliResult,
    Sandbox,
    assert_no_secret_leak,
    run_cli,
    start_sandbox,
    sync_args,
)


def _records(result: CliResult) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stderr.splitlines() if line.strip()]


def _check_artifacts(result: CliResult, summary: Path, code: int) -> dict[str, Any]:
    """The summary file and the last JSON record agree with the exit code."""
    assert result.exit_code == code, result.output
    data = json.loads(summary.read_text())
    assert data["exitCode"] == code
    assert data["result"] == {0: "success", 1: "partial"}.get(code, "failed")
    done = _records(result)[-1]
    assert done["event"] == "run_done" and done["exitCode"] == code and done["result"] == data["result"]
    if code:
        assert data["fatal"] or data["resources"]  # says why
    return data


def _run(box: Sandbox, tmp_path: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[CliResult, Path]:
    summary = tmp_path / "out" / "summary.json"
    args = sync_args("--log-format", "json", "--summary-json", str(summary), "--retries", "1", *extra)
    return run_cli(args, env or box.env), summary


def test_exit_0_1_2_3_each_leave_a_summary_file_and_a_final_json_record(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    result, summary = _run(seed_sandbox, tmp_path)
    _check_artifacts(result, summary, 0)

    seed_sandbox.opsgenie.faults.add(FaultRule(path=r"^/v1/incidents", status=500))
    result, summary = _run(seed_sandbox, tmp_path)
    _check_artifacts(result, summary, 1)
    seed_sandbox.opsgenie.faults.clear()

    result, summary = _run(seed_sandbox, tmp_path, "--workers", "0")  # a usage error from option parsing
    data = _check_artifacts(result, summary, 2)
    assert "--workers" in data["fatal"]
    assert _records(result)[0]["event"] == "config_error"

    env = {**seed_sandbox.env, "PORT_CLIENT_SECRET": "not-the-secret-42"}
    result, summary = _run(seed_sandbox, tmp_path, env=env)
    data = _check_artifacts(result, summary, 3)
    assert "PORT_CLIENT_SECRET" in data["fatal"]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_exit_130_and_143_leave_a_summary_file_and_a_final_json_record(tmp_path: Path, signum: int, code: int) -> None:
    box = start_sandbox(generate_account(alerts=150, incidents=15, services=10, seed=5), latency=0.05)
    try:
        summary = tmp_path / "summary.json"
        args = sync_args("--log-format", "json", "--summary-json", str(summary))
        process = subprocess.Popen(
            [sys.executable, "-m", "opsgenie_export", *args],
            env={**os.environ, **box.env, "PYTHONUNBUFFERED": "1"},
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        while box.opsgenie.count() < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        process.send_signal(signum)
        stdout, stderr = process.communicate(timeout=30)
        _check_artifacts(CliResult(process.returncode, stdout, stderr), summary, code)
        assert_no_secret_leak(stdout, stderr, args=args, env=box.env)
    finally:
        box.opsgenie.stop()
        box.port.stop()


def test_usage_errors_give_a_json_error_object_and_summary_without_log_format_json(
    seed_sandbox: Sandbox, tmp_path: Path
) -> None:
    summary = tmp_path / "summary.json"
    args = sync_args("--output", "json", "--summary-json", str(summary), "--no-such-option")
    result = run_cli(args, seed_sandbox.env)
    assert result.exit_code == 2
    assert "No such option" in result.stderr  # click's own message, in plain text
    error = json.loads(result.stdout)
    assert error["exitCode"] == 2 and error["result"] == "failed" and "--no-such-option" in error["fatal"]
    assert json.loads(summary.read_text()) == error
    assert seed_sandbox.opsgenie.count() == 0 and seed_sandbox.port.count() == 0


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_summary_json_naming_a_directory_is_refused_before_the_run(
    seed_sandbox: Sandbox, tmp_path: Path, log_format: str
) -> None:
    """Issue 16 case 6: it used to print 'success: exit 0', then crash with IsADirectoryError."""
    result = run_cli(sync_args("--summary-json", str(tmp_path), "--log-format", log_format), seed_sandbox.env)
    assert result.exit_code == 2, result.output
    assert "is a directory" in result.stderr and "Traceback" not in result.output
    assert seed_sandbox.opsgenie.count() == 0 and seed_sandbox.port.count() == 0
    if log_format == "json":
        assert [r["event"] for r in _records(result)] == ["config_error", "run_done"]


def test_a_missing_ca_bundle_in_the_environment_is_a_configuration_error(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    """Issue 16 case 6: REQUESTS_CA_BUNDLE=/nope.pem was a 65-line traceback."""
    env = {**seed_sandbox.env, "REQUESTS_CA_BUNDLE": "/nope.pem"}
    result, summary = _run(seed_sandbox, tmp_path, env=env)
    data = _check_artifacts(result, summary, 2)
    assert "REQUESTS_CA_BUNDLE" in data["fatal"] and "Traceback" not in result.output


def _garbage_alerts(box: Sandbox) -> None:
    """An Opsgenie answer the code does not anticipate: a page of alerts that are not objects."""
    body = {"data": [17, 18], "took": 0.01, "requestId": "r-1"}
    box.opsgenie.faults.add(FaultRule(path=r"^/v2/alerts$", status=200, body=body))


def test_an_unanticipated_failure_is_one_internal_error_line_with_every_artifact(
    seed_sandbox: Sandbox, tmp_path: Path
) -> None:
    _garbage_alerts(seed_sandbox)
    summary = tmp_path / "summary.json"
    result = run_cli(sync_args("--summary-json", str(summary)), seed_sandbox.env)
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if "internal error:" in line]
    assert len(lines) == 1 and lines[0].startswith("internal error: ")
    assert "Traceback" not in result.output
    data = json.loads(summary.read_text())
    assert data["exitCode"] == 1 and data["fatal"].startswith("internal error: ")
    assert seed_sandbox.port.count("POST", r"/bulk/entities/delete$") == 0
    # The resources that ran before it were written; every fetched alert is counted.
    assert {r["kind"]: r["upserted"] for r in data["resources"]}["service"] == 2
    assert all(r["fetched"] == r["filtered"] + r["upserted"] + r["unchanged"] + r["failed"] for r in data["resources"])

    json_run = run_cli(sync_args("--log-format", "json"), seed_sandbox.env)
    done = _records(json_run)[-1]
    assert json_run.exit_code == 1 and done["event"] == "run_done" and done["fatal"].startswith("internal error: ")


@pytest.mark.parametrize("switch", ["--debug", "OPSGENIE_EXPORT_DEBUG"])
def test_debug_shows_the_traceback_masked(seed_sandbox: Sandbox, tmp_path: Path, switch: str) -> None:
    _garbage_alerts(seed_sandbox)
    env = {**seed_sandbox.env, "OPSGENIE_EXPORT_DEBUG": "1"} if switch != "--debug" else seed_sandbox.env
    result = run_cli(sync_args(*([switch] if switch == "--debug" else [])), env)
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr


def test_internal_errors_outside_a_run_report_too(
    seed_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in the command itself (here: in loading blueprints) for sync and validate."""
    from opsgenie_export import cli

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise KeyError(f"boom {OPSGENIE_KEY}")

    monkeypatch.setattr(cli, "load_blueprints", broken)
    summary = tmp_path / "summary.json"
    result = run_cli(sync_args("--summary-json", str(summary), "--log-format", "json"), seed_sandbox.env)
    assert result.exit_code == 1
    records = _records(result)
    assert records[-1]["event"] == "run_done" and records[-1]["fatal"].startswith("internal error: KeyError")
    assert json.loads(summary.read_text())["exitCode"] == 1
    validated = run_cli(["validate", "--blueprints", str(tmp_path)], seed_sandbox.env)
    assert validated.exit_code == 1 and validated.stderr.startswith("internal error: KeyError: ")
    assert "****" in validated.stderr  # the key in the message is masked (and the leak helper checked it)


# -- credentials ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["\n", "\r\n", "  \t"])
def test_credentials_with_trailing_line_endings_work(seed_sandbox: Sandbox, ending: str) -> None:
    env = {
        **seed_sandbox.env,
        "OPSGENIE_API_TOKEN": OPSGENIE_KEY + ending,
        "PORT_CLIENT_SECRET": PORT_SECRET + ending,
        "PORT_CLIENT_ID": PORT_ID + ending,
    }
    result = run_cli(sync_args(), env)
    assert result.exit_code == 0, result.output
    assert seed_sandbox.port.entities["opsGenieAlert"]


def test_serve_strips_credentials_too(seed_sandbox: Sandbox) -> None:
    """`serve` used to print the key in 'error: cannot start: …' (requests' InvalidHeader)."""
    env = {
        **seed_sandbox.env,
        "OPSGENIE_API_TOKEN": "wrong-key-0123456\n",
        "OPSGENIE_WEBHOOK_SECRET": "a-long-webhook-secret-0123456789\n",
    }
    result = run_cli(["serve", "--port", "0"], env)
    assert result.exit_code == 3, result.output  # refused by Opsgenie: the header itself was sent fine
    assert "Opsgenie refused the API key" in result.stderr


@pytest.mark.parametrize("name", ["OPSGENIE_API_TOKEN", "PORT_CLIENT_SECRET"])
@pytest.mark.parametrize("inner", ["\n", "\t", "\r\n", " ", "\x07"])
def test_credentials_with_inner_whitespace_exit_2_naming_the_variable(
    seed_sandbox: Sandbox, tmp_path: Path, name: str, inner: str
) -> None:
    value = {"OPSGENIE_API_TOKEN": OPSGENIE_KEY, "PORT_CLIENT_SECRET": PORT_SECRET}[name]
    broken = value[:12] + inner + value[12:]
    summary = tmp_path / "summary.json"
    result = run_cli(sync_args("--summary-json", str(summary)), {**seed_sandbox.env, name: broken})
    assert result.exit_code == 2, result.output
    assert name in result.stderr and "whitespace or a control character" in result.stderr
    assert value[:12] not in result.output and value[12:] not in result.output  # never echoed
    assert seed_sandbox.opsgenie.count() == 0 and seed_sandbox.port.count() == 0
    assert json.loads(summary.read_text())["exitCode"] == 2


@pytest.mark.parametrize(
    ("name", "short"), [("OPSGENIE_API_TOKEN", "abc"), ("PORT_CLIENT_SECRET", "x1"), ("OPSGENIE_API_TOKEN", "k")]
)
def test_secrets_too_short_to_mask_are_refused(seed_sandbox: Sandbox, name: str, short: str) -> None:
    result = run_cli(sync_args(), {**seed_sandbox.env, name: short})
    assert result.exit_code == 2, result.output
    assert name in result.stderr and "characters long" in result.stderr
    assert seed_sandbox.opsgenie.count() == 0 and seed_sandbox.port.count() == 0


def test_every_form_of_a_secret_is_masked_in_output(seed_sandbox: Sandbox) -> None:
    """Opsgenie echoes the key in an error body in several encodings; none reaches any output."""
    basic = base64.b64encode(f"{PORT_ID}:{OPSGENIE_KEY}".encode()).decode()
    echoed = f"raw {OPSGENIE_KEY} repr {OPSGENIE_KEY!r} json {json.dumps(OPSGENIE_KEY)} basic {basic}"
    seed_sandbox.opsgenie.faults.add(FaultRule(path=r"^/v1/services", status=400, body={"message": echoed}))
    result = run_cli(sync_args("--log-format", "json"), seed_sandbox.env)  # run_cli checks every form
    assert result.exit_code == 1
    assert "****" in result.stderr


ODD_SECRET = "p@ss/w0rd+s3cret!é"


@pytest.mark.parametrize(
    "leak",
    [
        lambda s: s,
        lambda s: repr(s + "\n"),
        lambda s: json.dumps({"k": s + "\r\n"}),
        lambda s: "https://x.invalid/?key=" + quote(s, safe=""),
        lambda s: "key=" + quote_plus(s),
        lambda s: "Basic " + base64.b64encode(f"{PORT_ID}:{s}".encode()).decode(),
        lambda s: "Basic " + base64.b64encode(f"someone:{s}".encode()).decode(),
    ],
    ids=["raw", "repr", "json", "url", "url-plus", "basic-id", "basic-any-user"],
)
@pytest.mark.parametrize("secret", [PORT_SECRET, ODD_SECRET], ids=["plain", "odd-characters"])
def test_the_leak_helper_catches_every_form(leak: Any, secret: str) -> None:
    with pytest.raises(AssertionError, match="leaked"):
        assert_no_secret_leak("output: " + leak(secret), env={"SOME_API_TOKEN": secret})


@pytest.mark.parametrize(
    "leak",
    [
        lambda s: repr(s + "\n"),
        lambda s: json.dumps({"k": s}),
        lambda s: quote(s, safe=""),
        lambda s: quote_plus(s),
        lambda s: base64.b64encode(f"someone:{s}".encode()).decode(),
    ],
    ids=["repr", "json", "url", "url-plus", "basic-any-user"],
)
def test_the_package_masks_every_form(leak: Any) -> None:
    from opsgenie_export.report import redact

    masked = redact("output: " + leak(ODD_SECRET), (ODD_SECRET,))
    assert "****" in masked
    assert_no_secret_leak(masked, env={"SOME_API_TOKEN": ODD_SECRET})


def test_serve_reports_an_internal_error_in_one_line(seed_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    from opsgenie_export import serve

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"listener exploded with {PORT_SECRET!r}")

    monkeypatch.setattr(serve, "build_service", broken)
    env = {**seed_sandbox.env, "OPSGENIE_WEBHOOK_SECRET": "a-long-webhook-secret-0123456789"}
    result = run_cli(["serve", "--port", "0"], env)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("internal error: RuntimeError: listener exploded with '****'")
    assert "Traceback" not in result.output


def test_a_fatal_error_mid_run_still_writes_what_was_mapped(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    """Opsgenie refuses the key when the alerts are listed (a revoked key): the services and
    incidents already mapped are still written, nothing is deleted, and the run reports exit 3."""
    seed_sandbox.opsgenie.faults.add(FaultRule(path=r"^/v2/alerts", status=401, body={"message": "revoked"}))
    result, summary = _run(seed_sandbox, tmp_path)
    data = _check_artifacts(result, summary, 3)
    assert "Opsgenie refused the API key" in data["fatal"]
    assert len(seed_sandbox.port.entities["opsGenieService"]) == 2
    assert len(seed_sandbox.port.entities["opsGenieIncident"]) == 2
    assert seed_sandbox.port.count("POST", r"/bulk/entities/delete$") == 0
    assert all(b["deletion"] != "done" for b in data["blueprints"])
