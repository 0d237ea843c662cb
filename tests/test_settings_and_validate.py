"""Settings resolution (options > env > .env > defaults), masking, and the `validate` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from opsgenie_export.errors import ConfigError
from opsgenie_export.settings import Options, resolve

from conftest import REPO, Sandbox, default_mapping_with, run_cli

BASE_ENV = {"OPSGENIE_API_TOKEN": "tok-123456", "PORT_CLIENT_ID": "id", "PORT_CLIENT_SECRET": "sec-123456"}


def test_option_beats_environment_beats_dotenv(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text("OPSGENIE_API_URL=https://from-dotenv.example/\nPORT_BASE_URL=https://dotenv-port.example/v1\n")
    env = {**BASE_ENV, "OPSGENIE_API_URL": "https://from-env.example"}
    settings = resolve(Options(env_file=dotenv), env)
    assert settings.opsgenie_url == "https://from-env.example"
    assert settings.port_url == "https://dotenv-port.example"  # trailing /v1 stripped
    assert settings.sources["port_url"] == f"PORT_BASE_URL (.env file {dotenv})"
    settings = resolve(Options(env_file=dotenv, opsgenie_url="https://option.example"), env)
    assert settings.opsgenie_url == "https://option.example"


def test_ocean_names_are_accepted() -> None:
    env = {
        "OCEAN__INTEGRATION__CONFIG__API_TOKEN": "tok-abcdef",
        "OCEAN__INTEGRATION__CONFIG__API_URL": "https://api.eu.opsgenie.com/",
        "OCEAN__PORT__CLIENT_ID": "cid",
        "OCEAN__PORT__CLIENT_SECRET": "csecret-42",
        "OCEAN__PORT__BASE_URL": "https://api.us.getport.io",
        "OCEAN__INITIALIZE_PORT_RESOURCES": "true",
    }
    settings = resolve(Options(no_env_file=True), env)
    assert settings.opsgenie_url == "https://api.eu.opsgenie.com"
    assert settings.port_url == "https://api.us.getport.io"
    assert settings.initialize_port_resources is True


def test_region_shortcut_and_bad_region() -> None:
    assert resolve(Options(region="eu", no_env_file=True), BASE_ENV).opsgenie_url == "https://api.eu.opsgenie.com"
    with pytest.raises(ConfigError, match="unknown region"):
        resolve(Options(region="mars", no_env_file=True), BASE_ENV)


def test_no_env_file_ignores_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("OPSGENIE_API_TOKEN=from-dotenv\n")
    monkeypatch.chdir(tmp_path)
    env = {k: v for k, v in BASE_ENV.items() if k != "OPSGENIE_API_TOKEN"}
    assert resolve(Options(), env).opsgenie_token == "from-dotenv"
    with pytest.raises(ConfigError, match="OPSGENIE_API_TOKEN"):
        resolve(Options(no_env_file=True), env)


def test_cache_dir_option_beats_environment_beats_xdg_beats_home(tmp_path: Path) -> None:
    base = Options(no_env_file=True)
    home = resolve(base, BASE_ENV).cache_dir
    assert home == Path.home() / ".cache" / "opsgenie-export"
    xdg = {**BASE_ENV, "XDG_CACHE_HOME": str(tmp_path / "xdg")}
    assert resolve(base, xdg).cache_dir == tmp_path / "xdg" / "opsgenie-export"
    env = {**xdg, "OPSGENIE_EXPORT_CACHE_DIR": str(tmp_path / "env")}
    settings = resolve(base, env)
    assert settings.cache_dir == tmp_path / "env"
    assert settings.sources["cache_dir"] == "OPSGENIE_EXPORT_CACHE_DIR (environment)"
    assert resolve(Options(no_env_file=True, cache_dir=tmp_path / "opt"), env).cache_dir == tmp_path / "opt"
    off = resolve(Options(no_env_file=True, no_cache=True, cache_dir=tmp_path / "opt"), env)
    assert off.cache_dir is None
    assert off.describe()["cache_dir"].startswith("off")


def test_secrets_never_appear_in_repr_or_description() -> None:
    settings = resolve(Options(no_env_file=True), BASE_ENV)
    shown = repr(settings) + str(settings.describe()) + repr(Options(opsgenie_token="tok-123456"))
    assert "tok-123456" not in shown and "sec-123456" not in shown
    assert "****(10 chars)" in settings.describe()["opsgenie_token"]


def test_missing_ca_bundle_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="--ca-bundle"):
        resolve(Options(no_env_file=True, ca_bundle=Path("/nonexistent/ca.pem")), BASE_ENV)


def test_validate_accepts_the_default_mapping() -> None:
    result = run_cli(["validate", "--mapping", str(REPO / "mapping.yaml"), "--blueprints", str(REPO / "blueprints")])
    assert result.exit_code == 0, result.output
    assert "valid against 3 blueprints" in result.stderr


def test_validate_lists_every_problem_with_its_location(tmp_path: Path) -> None:
    path = default_mapping_with(
        tmp_path / "mapping.yaml",
        ("numOpenIncidents:", "numberOfIncidents:"),  # not in the blueprint
        (
            "title: .message\n          blueprint: '\"opsGenieIncident\"'",
            "title: .message |\n          blueprint: '\"opsGenieIncident\"'",
        ),
        ("relatedIncident: .__relatedIncident.id", "relatedTicket: .__relatedIncident.id"),
    )
    result = run_cli(["validate", "--mapping", str(path), "--blueprints", str(REPO / "blueprints")])
    assert result.exit_code == 2, result.output
    assert "numberOfIncidents" in result.stderr
    assert "relatedTicket" in result.stderr
    assert "resources[1]" in result.stderr and "title" in result.stderr
    assert "3 problem(s) found" in result.stderr


def test_a_bad_filter_is_a_configuration_error_found_before_any_request(tmp_path: Path) -> None:
    path = default_mapping_with(
        tmp_path / "mapping.yaml",
        (
            '  - kind: alert\n    selector:\n      query: "true"\n',
            '  - kind: alert\n    selector:\n      query: "true"\n'
            "      apiQueryParams:\n        createdAtt: yesterday\n",
        ),
    )
    validate = run_cli(["validate", "--mapping", str(path), "--blueprints", str(REPO / "blueprints")])
    assert validate.exit_code == 2, validate.output
    assert "apiQueryParams.createdAtt: unknown filter" in validate.stderr
    env = {**BASE_ENV, "PORT_BASE_URL": "http://127.0.0.1:9", "OPSGENIE_API_URL": "http://127.0.0.1:9"}
    result = run_cli(["sync", "--mapping", str(path), "--blueprints", str(REPO / "blueprints"), "--no-env-file"], env)
    assert result.exit_code == 2, result.output
    assert "createdAtt" in result.stderr and "connection" not in result.output


def test_validate_from_port_checks_the_live_blueprints(seed_sandbox: Sandbox, tmp_path: Path) -> None:
    env = seed_sandbox.env
    args = ["validate", "--mapping", str(REPO / "mapping.yaml"), "--from-port"]
    missing = run_cli(args, env)  # Port has no blueprint yet
    assert missing.exit_code == 2, missing.output
    assert "opsGenieService" in missing.stderr
    for name in ("opsGenieService", "opsGenieIncident", "opsGenieAlert"):
        seed_sandbox.port.add_blueprint(json.loads((REPO / "blueprints" / f"{name}.json").read_text()))
    result = run_cli(args, env)
    assert result.exit_code == 0, result.output
    assert "valid against 3 blueprints in Port" in result.stderr
    refused = run_cli(args, {**env, "PORT_CLIENT_SECRET": "wrong-secret-99"})
    assert refused.exit_code == 3, refused.output
    assert "wrong-secret-99" not in refused.output
