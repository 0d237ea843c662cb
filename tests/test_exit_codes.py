"""One test per exit code, through the real CLI; every bad input leaves Port untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import REPO, Sandbox, assert_no_secret_leak, run_cli, sync_args

GOOD_MAPPING = (REPO / "mapping.yaml").read_text()


def _mapping(tmp_path: Path, text: str) -> str:
    path = tmp_path / "custom-mapping.yaml"
    path.write_text(text)
    return str(path)


def _assert_no_secret(output: str) -> None:
    assert_no_secret_leak(output)  # the suite's one leak check: every form of every secret


def test_exit_0_when_everything_is_written(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    result = run_cli(sync_args("--summary-json", str(summary)), seed_sandbox.env)
    assert result.exit_code == 0, result.output
    data = json.loads(summary.read_text())
    assert data["exitCode"] == 0 and data["result"] == "success"
    kinds = {r["kind"]: r for r in data["resources"]}
    assert kinds["alert"]["fetched"] == kinds["alert"]["upserted"] == 1
    assert kinds["service"]["upserted"] == 2
    _assert_no_secret(result.output + summary.read_text())


def test_exit_1_when_some_items_fail_to_map(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    # A string plus an array is a JQ runtime error: every service fails on its title field.
    broken = GOOD_MAPPING.replace("title: .name\n", "title: .name + .tags\n")
    summary = tmp_path / "summary.json"
    args = sync_args("--summary-json", str(summary))
    args[2] = _mapping(tmp_path, broken)
    result = run_cli(args, seed_sandbox.env)
    assert result.exit_code == 1, result.output
    data = json.loads(summary.read_text())
    service = next(r for r in data["resources"] if r["kind"] == "service")
    assert service["failed"] == 2 and service["upserted"] == 0
    assert "title" in service["errors"][0]
    # No service was written (Port holds only the stubs it creates for the incidents' relations).
    assert seed_sandbox.port.count("POST", r"/opsGenieService/entities(/bulk)?$") == 0
    assert all(e["title"] is None for e in seed_sandbox.port.entities["opsGenieService"].values())
    # Other kinds were still written.
    assert seed_sandbox.port.entities["opsGenieIncident"]


BAD_MAPPINGS = {
    "bad-yaml": ("resources:\n  - kind: alert\n   selector: [", "invalid YAML"),
    "bad-jq": (GOOD_MAPPING.replace("title: .message", "title: .message | ]["), "does not compile"),
    "unknown-kind": (GOOD_MAPPING.replace("kind: alert", "kind: alertz"), "unknown kind"),
    "empty": ("resources: []\n", "resources"),
}


@pytest.mark.parametrize("name", sorted(BAD_MAPPINGS))
def test_exit_2_for_bad_mappings_before_any_request(seed_sandbox: Sandbox, tmp_path: Path, name: str) -> None:
    text, expected = BAD_MAPPINGS[name]
    args = sync_args()
    args[2] = _mapping(tmp_path, text)
    result = run_cli(args, seed_sandbox.env)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert seed_sandbox.port.count() == 0 and seed_sandbox.opsgenie.count() == 0


@pytest.mark.parametrize(
    ("drop", "extra", "expected"),
    [
        ("OPSGENIE_API_TOKEN", [], "OPSGENIE_API_TOKEN"),
        ("PORT_CLIENT_ID", [], "PORT_CLIENT_ID"),
        ("PORT_CLIENT_SECRET", [], "PORT_CLIENT_SECRET"),
        (None, ["--region", "mars"], "--region"),
        (None, ["--log-format", "xml"], "--log-format"),
    ],
)
def test_exit_2_for_bad_configuration(seed_sandbox: Sandbox, drop: str | None, extra: list[str], expected: str) -> None:
    env = dict(seed_sandbox.env)
    if drop:
        env.pop(drop)
    result = run_cli(sync_args(*extra), env)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert seed_sandbox.port.count() == 0 and seed_sandbox.opsgenie.count() == 0
    _assert_no_secret(result.output)


@pytest.mark.parametrize("drop", ["PORT_CLIENT_SECRET", None], ids=["missing-secret", "bad-mapping"])
def test_config_error_is_a_config_error_and_a_run_done_record_with_log_format_json(
    seed_sandbox: Sandbox, tmp_path: Path, drop: str | None
) -> None:
    env = {k: v for k, v in seed_sandbox.env.items() if k != drop}
    args = sync_args("--log-format", "json")
    if drop is None:
        args[2] = _mapping(tmp_path, BAD_MAPPINGS["bad-jq"][0])
    result = run_cli(args, env)
    assert result.exit_code == 2, result.output
    record, done = (json.loads(line) for line in result.stderr.strip().splitlines())  # nothing else
    assert record["level"] == "error" and record["event"] == "config_error" and record["exitCode"] == 2
    assert (done["event"], done["result"], done["exitCode"]) == ("run_done", "failed", 2)
    assert done["fatal"] == record["message"]
    assert (drop or BAD_MAPPINGS["bad-jq"][1]) in record["message"]
    assert seed_sandbox.port.count() == 0 and seed_sandbox.opsgenie.count() == 0
    _assert_no_secret(result.output)


def test_exit_3_when_opsgenie_refuses_the_key(seed_sandbox: Sandbox) -> None:
    env = {**seed_sandbox.env, "OPSGENIE_API_TOKEN": "wrong-key-123456"}
    result = run_cli(sync_args(), env)
    assert result.exit_code == 3, result.output
    assert "Opsgenie refused the API key" in result.stderr
    assert "wrong-key-123456" not in result.output
    # Never retried: exactly one Opsgenie request, and nothing written to Port.
    assert seed_sandbox.opsgenie.count() == 1
    assert not any(seed_sandbox.port.entities.values())


def test_exit_3_when_port_refuses_the_credentials(seed_sandbox: Sandbox) -> None:
    env = {**seed_sandbox.env, "PORT_CLIENT_SECRET": "not-the-secret-42"}
    result = run_cli(sync_args(), env)
    assert result.exit_code == 3, result.output
    assert "PORT_CLIENT_SECRET" in result.stderr
    assert "not-the-secret-42" not in result.output
    assert seed_sandbox.port.count() == 1  # the token request, not retried
    assert seed_sandbox.opsgenie.count() == 0
