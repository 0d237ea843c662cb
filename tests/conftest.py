"""Shared fixtures: both emulators on 127.0.0.1 and an in-process runner for the real CLI."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from dotenv import dotenv_values
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
    """The real CLI, in process. Every run is checked for leaked secrets (`assert_no_secret_leak`):
    a test that runs the CLI through here gets that check for free."""
    env = env or {}
    result = CliRunner().invoke(app, args, env=env, catch_exceptions=False)
    outcome = CliResult(result.exit_code, result.stdout, result.stderr)
    assert_no_secret_leak(outcome.stdout, outcome.stderr, args=args, env=env)
    return outcome


# -- no secret in any output, in any form -------------------------------------------------------------
SECRET_NAME = re.compile(r"(TOKEN|SECRET|API_KEY|PASSWORD)$")
SECRET_OPTIONS = ("--opsgenie-token", "--port-client-secret")
KNOWN_SECRETS = (OPSGENIE_KEY, PORT_SECRET, ATLASSIAN_TOKEN)
CLIENT_IDS = (PORT_ID, ATLASSIAN_EMAIL)


def assert_no_secret_leak(*texts: str, args: list[str] | None = None, env: dict[str, str] | None = None) -> None:
    """No form of any secret of this run — the known test credentials, every credential-like
    variable of `env`, the process environment and the .env file, secret options in `args` — in
    the given texts (stdout, stderr: text and JSON logs, annotations) nor in the files the run
    wrote: the --summary-json file and GitHub's step summary and output files. Forms: raw, repr-
    and JSON-escaped, URL-encoded, base64 alone and as Basic auth `id:secret` for any id."""
    args, env = list(args or ()), dict(env or {})
    merged = {**_dotenv(args), **os.environ, **env}
    secrets = {*KNOWN_SECRETS, *(v for k, v in merged.items() if SECRET_NAME.search(k))}
    secrets.update(args[i + 1] for i, arg in enumerate(args[:-1]) if arg in SECRET_OPTIONS)
    files = [_option(args, "--summary-json"), merged.get("GITHUB_STEP_SUMMARY"), merged.get("GITHUB_OUTPUT")]
    written = [Path(f).read_text(errors="replace") for f in files if f and f != "-" and Path(f).is_file()]
    haystack = "\n".join([*texts, *written])
    for secret in secrets:
        for form in secret_forms(secret, [*CLIENT_IDS, merged.get("PORT_CLIENT_ID", "")]):
            assert form not in haystack, f"a form of a secret leaked: {form!r}"


def secret_forms(secret: str, ids: list[str]) -> set[str]:
    """Every form checked for one secret (and each whitespace-separated part of it, for values
    with inner whitespace); forms shorter than 8 characters are not distinctive enough."""
    parts = {secret.strip(), *secret.split()} - {""}
    forms: set[str] = set()
    for part in parts:
        forms |= {part, repr(part)[1:-1], json.dumps(part)[1:-1], quote(part, safe=""), quote_plus(part)}
        forms.add(base64.b64encode(part.encode()).decode().rstrip("="))
        for user in [*ids, "", "a", "ab"]:
            encoded = base64.b64encode(f"{user}:{part}".encode()).decode()
            start = len(base64.b64encode(f"{user}:".encode()).decode().rstrip("=")) + 2
            forms.add(encoded[start : len(encoded) - 4])  # the part of it that only the secret decides
    return {form for form in forms if len(form) >= 8}


def _option(args: list[str], name: str) -> str | None:
    found = None
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith(f"{name}="):
            found = arg.split("=", 1)[1]
    return found


def _dotenv(args: list[str]) -> dict[str, str]:
    path = Path(_option(args, "--env-file") or ".env")
    return {k: v for k, v in dotenv_values(path).items() if v} if path.is_file() else {}


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
