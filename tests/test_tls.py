"""The HTTPS path: both emulators behind TLS with a private certificate authority. Verification is
always on; `--ca-bundle` makes a private CA trusted, and without it the run stops quickly with an
error that names the certificate — nothing written, nothing deleted, no secret printed."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsgenie_export.sandbox.accounts import generate_account

from conftest import OPSGENIE_KEY, PORT_SECRET, Sandbox, run_cli, start_sandbox, sync_args

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA), valid for a day."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_sandbox(certificate: tuple[Path, Path]) -> Iterator[Sandbox]:
    cert, key = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    sandbox = start_sandbox(generate_account(alerts=40, incidents=6, services=4, teams=2, seed=3))
    for server in (sandbox.opsgenie, sandbox.port):  # restart both over HTTPS
        server.stop()
        server.start(context)
    sandbox.urls = (sandbox.opsgenie.url, sandbox.port.url)
    try:
        yield sandbox
    finally:
        sandbox.opsgenie.stop()
        sandbox.port.stop()


def test_private_ca_through_ca_bundle(tls_sandbox: Sandbox, certificate: tuple[Path, Path]) -> None:
    assert all(url.startswith("https://127.0.0.1:") for url in tls_sandbox.urls)
    result = run_cli(sync_args("--ca-bundle", str(certificate[0])), tls_sandbox.env)
    assert result.exit_code == 0, result.output
    assert set(tls_sandbox.port.entities["opsGenieAlert"]) == {a["id"] for a in tls_sandbox.account.alerts}


def test_untrusted_certificate_stops_the_run_before_any_write(tls_sandbox: Sandbox) -> None:
    result = run_cli(sync_args("--retries", "1", "--max-wait", "5"), tls_sandbox.env)
    assert result.exit_code == 1, result.output
    assert "TLS certificate not trusted" in result.stderr and "--ca-bundle" in result.stderr
    assert "after 1 attempts" not in result.stderr and "after 2 attempts" not in result.stderr  # never retried
    assert tls_sandbox.port.writes() == 0 and tls_sandbox.opsgenie.count() == 0
    for secret in (OPSGENIE_KEY, PORT_SECRET):
        assert secret not in result.output


def test_ca_bundle_wins_over_requests_ca_bundle_in_the_environment(
    tls_sandbox: Sandbox, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests would let REQUESTS_CA_BUNDLE replace the session's bundle (psf/requests#3829);
    an explicit --ca-bundle must win over it."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile)
    monkeypatch.setenv("CURL_CA_BUNDLE", ssl.get_default_verify_paths().openssl_cafile)
    result = run_cli(sync_args("--ca-bundle", str(certificate[0])), tls_sandbox.env)
    assert result.exit_code == 0, result.output
