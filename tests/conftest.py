"""Shared fixtures: both emulators on 127.0.0.1 and an in-process runner for the real CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from opsgenie_export.cli import app
from opsgenie_export.sandbox.accounts import Account, generate_account, seed_account
from opsgenie_export.sandbox.jsm_emulator import JsmFace
from opsgenie_export.sandbox.opsgenie_emulator import OpsgenieEmulator
from opsgenie_export.sandbox.port_emulator import PortEmulator

REPO = Path(__file__).resolve().parent.parent
OPSGENIE_KEY = "og-secret-key-1f2e3d4c5b6a"
PORT_ID = "port-client-id-77"
PORT_SECRET = "port-client-secret-9a8b7c6d5e"
ATLASSIAN_EMAIL = "ops-admin@example.com"
ATLASSIAN_TOKEN = "atl-api-token-5e4d3c2b1a0f"
CREDENTIAL_PREFIXES = ("OPSGENIE_", "PORT_", "OCEAN__", "GITHUB_", "TF_BUILD", "NO_COLOR", "JSM_", "ATLASSIAN_")


@dataclass
class Sandbox:
    opsgenie: OpsgenieEmulator
    port: PortEmulator
    account: Account
    jsm: JsmFace | None = None  # the JSM/Jira face of the same account, when asked for

    def __post_init__(self) -> None:
        self.urls = (self.opsgenie.url, self.port.url)  # still known after a server is stopped
        self.jsm_urls = (self.jsm.api_url, self.jsm.site_url) if self.jsm else None

    @property
    def jsm_env(self) -> dict[str, str]:
        """Port's credentials plus a `--source jsm` configuration against the JSM face."""
        if self.jsm is None or self.jsm_urls is None:
            raise RuntimeError("start the sandbox with jsm=True to get a JSM face")
        return {
            "OPSGENIE_EXPORT_SOURCE": "jsm",
            "JSM_API_URL": self.jsm_urls[0],
            "JSM_SITE_URL": self.jsm_urls[1],
            "JSM_CLOUD_ID": self.jsm.cloud_id,
            "JSM_ORG_ID": self.jsm.org_id,
            "ATLASSIAN_EMAIL": self.jsm.email,
            "ATLASSIAN_API_TOKEN": self.jsm.api_token,
            "PORT_CLIENT_ID": PORT_ID,
            "PORT_CLIENT_SECRET": PORT_SECRET,
            "PORT_BASE_URL": self.urls[1],
        }

    @property
    def env(self) -> dict[str, str]:
        return {
            "OPSGENIE_API_TOKEN": OPSGENIE_KEY,
            "OPSGENIE_API_URL": self.urls[0],
            "PORT_CLIENT_ID": PORT_ID,
            "PORT_CLIENT_SECRET": PORT_SECRET,
            "PORT_BASE_URL": self.urls[1],
        }


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credential from the developer's shell, and a working directory without .env/mapping."""
    for name in list(os.environ):
        if name.startswith(CREDENTIAL_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))  # the link cache stays in the test
    monkeypatch.chdir(tmp_path)


def start_sandbox(
    account: Account,
    *,
    port_rate_limit: tuple[int, float] | None = None,
    jsm: bool = False,
    jsm_options: dict[str, object] | None = None,
    **opsgenie_kwargs: object,
) -> Sandbox:
    """Opsgenie and Port emulators; with `jsm`, the JSM face of the same account too (`jsm_options`
    go to `JsmFace`: ids_changed, services_api, refused_scopes, api_rate_limit, faults, …)."""
    opsgenie = OpsgenieEmulator(account, api_key=OPSGENIE_KEY, **opsgenie_kwargs).start()  # type: ignore[arg-type]
    port = PortEmulator(client_id=PORT_ID, client_secret=PORT_SECRET, rate_limit=port_rate_limit).start()
    face = None
    if jsm:
        options: dict = {"email": ATLASSIAN_EMAIL, "api_token": ATLASSIAN_TOKEN, **(jsm_options or {})}
        face = JsmFace(account, **options).start()
    return Sandbox(opsgenie, port, account, face)


@contextmanager
def running_sandbox(
    account: Account, *, jsm: bool = False, jsm_options: dict[str, object] | None = None
) -> Iterator[Sandbox]:
    """Both emulators serving `account` for the duration of the block (and its JSM face with `jsm`)."""
    sandbox = start_sandbox(account, jsm=jsm, jsm_options=jsm_options)
    try:
        yield sandbox
    finally:
        sandbox.opsgenie.stop()
        sandbox.port.stop()
        if sandbox.jsm is not None:
            sandbox.jsm.stop()


@pytest.fixture
def seed_sandbox() -> Iterator[Sandbox]:
    with running_sandbox(seed_account()) as sandbox:
        yield sandbox


@pytest.fixture
def generated_sandbox() -> Iterator[Sandbox]:
    with running_sandbox(generate_account(alerts=300, incidents=60, services=25, seed=11)) as sandbox:
        yield sandbox


def run_cli(args: list[str], env: dict[str, str] | None = None) -> CliResult:
    result = CliRunner().invoke(app, args, env=env or {}, catch_exceptions=False)
    return CliResult(result.exit_code, result.stdout, result.stderr)


def default_mapping_with(path: Path, *replacements: tuple[str, str]) -> Path:
    """The repository's mapping.yaml with each (old, new) replaced, written to `path`. An `old`
    that is not in the mapping fails the test, so a variant can never silently be the default."""
    text = (REPO / "mapping.yaml").read_text()
    for old, new in replacements:
        assert old in text, f"not in mapping.yaml: {old!r}"
        text = text.replace(old, new)
    path.write_text(text)
    return path


def sync_args(*extra: str) -> list[str]:
    """`sync` with the repository's mapping and blueprints, creating missing blueprints."""
    return [
        "sync",
        "--mapping",
        str(REPO / "mapping.yaml"),
        "--blueprints",
        str(REPO / "blueprints"),
        "--initialize-port-resources",
        *extra,
    ]


def repo_checkout(target: Path) -> Path:
    """The repository's files as a fresh clone (or GitHub's download of an action) has them, plus files
    not yet committed; symlinks kept. For tests that build or install the package from source."""
    argv = ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"]
    listed = subprocess.run(argv, capture_output=True, check=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source, destination = REPO / name, target / name
        if not source.exists() and not source.is_symlink():
            continue  # deleted in the work tree, not yet committed
        destination.parent.mkdir(parents=True, exist_ok=True)
        if source.is_symlink():
            destination.symlink_to(os.readlink(source))
        else:
            shutil.copy2(source, destination)
    return target
