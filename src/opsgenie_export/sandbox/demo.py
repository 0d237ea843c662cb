"""`opsgenie-export demo`: both emulators on 127.0.0.1, the seed account plus generated data,
blueprints initialised, and the real sync through HTTP — the same code path as production.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from opsgenie_export.mapping import compile_mapping, load_blueprints, load_mapping
from opsgenie_export.outcome import RunOutcome
from opsgenie_export.report import TextEvents
from opsgenie_export.sandbox.accounts import Account, generate_account, seed_account
from opsgenie_export.sandbox.jsm_emulator import JsmFace
from opsgenie_export.sandbox.opsgenie_emulator import OpsgenieEmulator
from opsgenie_export.sandbox.port_emulator import PortEmulator
from opsgenie_export.settings import PACKAGE_DEFAULTS, Settings
from opsgenie_export.sync import RunOptions, run_sync

DEMO_KEY = "sandbox-opsgenie-key"
DEMO_CLIENT_ID = "sandbox-client-id"
DEMO_CLIENT_SECRET = "sandbox-client-secret"
DEMO_ATLASSIAN_EMAIL = "sandbox-admin@example.com"
DEMO_ATLASSIAN_TOKEN = "sandbox-atlassian-api-token"


def demo_account(alerts: int, incidents: int, services: int) -> Account:
    """The seed's account (the documentation's sample payloads) plus generated, realistic data."""
    account = seed_account()
    if alerts or incidents or services:
        extra = generate_account(alerts=alerts, incidents=incidents, services=services, teams=4, seed=2024)
        _merge(account, extra)
    return account


def _merge(account: Account, extra: Account) -> None:
    for name in ("teams", "users", "services", "incidents", "alerts", "schedules", "escalations"):
        getattr(account, name).extend(getattr(extra, name))
    account.oncalls.update(extra.oncalls)
    account.associated_alerts.update(extra.associated_alerts)
    account.reindex()


def start_jsm_face(account: Account, **options: Any) -> JsmFace:
    """The demo account's JSM/Jira face, started (stop it with `.stop()`, or use it as a context
    manager). `face.env()` holds what a `--source jsm` run needs: JSM_SITE_URL, JSM_API_URL,
    JSM_CLOUD_ID, JSM_ORG_ID, ATLASSIAN_EMAIL, ATLASSIAN_API_TOKEN."""
    return JsmFace(account, email=DEMO_ATLASSIAN_EMAIL, api_token=DEMO_ATLASSIAN_TOKEN, **options).start()


def run_demo(
    *, alerts: int, incidents: int, services: int, sample: int, console: Any, source: str = "opsgenie"
) -> tuple[RunOutcome, dict]:
    """The demo sync; `source="jsm"` reads the same account through its JSM/Jira face."""
    account = demo_account(alerts, incidents, services)
    mapping_path = PACKAGE_DEFAULTS / "mapping.yaml"
    config = load_mapping(mapping_path)
    compiled = compile_mapping(config)
    blueprints = load_blueprints(PACKAGE_DEFAULTS / "blueprints")
    with (
        OpsgenieEmulator(account, api_key=DEMO_KEY) as opsgenie,
        PortEmulator(client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET) as port,
        contextlib.ExitStack() as stack,
    ):
        jsm: dict[str, Any] = {}
        if source == "jsm":
            face = stack.enter_context(start_jsm_face(account))
            console.print(f"sandbox: JSM emulator at {face.api_url} (site {face.site_url})", markup=False)
            jsm = {
                "source": "jsm",
                "jsm_site_url": face.site_url,
                "jsm_api_url": face.api_url,
                "jsm_cloud_id": face.cloud_id,
                "jsm_org_id": face.org_id,
                "atlassian_email": DEMO_ATLASSIAN_EMAIL,
                "atlassian_api_token": DEMO_ATLASSIAN_TOKEN,
            }
        else:
            console.print(f"sandbox: Opsgenie emulator at {opsgenie.url}", markup=False)
        console.print(f"sandbox: Port emulator at {port.url}", markup=False)
        settings = Settings(
            opsgenie_token=DEMO_KEY,
            opsgenie_url=opsgenie.url,
            port_client_id=DEMO_CLIENT_ID,
            port_client_secret=DEMO_CLIENT_SECRET,
            port_url=port.url,
            mapping_path=mapping_path,
            blueprints_dir=PACKAGE_DEFAULTS / "blueprints",
            initialize_port_resources=True,
            **jsm,
        )
        outcome = run_sync(settings, config, compiled, RunOptions(blueprints=blueprints), events=TextEvents(console))
        samples = {bp: list(entities.values())[:sample] for bp, entities in sorted(port.entities.items())}
    return outcome, samples


SANDBOX_WEBHOOK_SECRET = "sandbox-webhook-secret-0123456789"


def serve_sandbox(
    env_file: Path, *, alerts: int, incidents: int, services: int, stop: threading.Event, say: Any
) -> None:
    """`opsgenie-export sandbox`: the demo account behind both emulators until `stop` is set, with
    their URLs and credentials written to `env_file` so the real commands can run against them
    from another terminal (`--env-file`)."""
    account = demo_account(alerts, incidents, services)
    with (
        OpsgenieEmulator(account, api_key=DEMO_KEY) as opsgenie,
        PortEmulator(client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET) as port,
        start_jsm_face(account) as face,
    ):
        values = {
            "OPSGENIE_API_URL": opsgenie.url,
            "OPSGENIE_API_TOKEN": DEMO_KEY,
            "PORT_BASE_URL": port.url,
            "PORT_CLIENT_ID": DEMO_CLIENT_ID,
            "PORT_CLIENT_SECRET": DEMO_CLIENT_SECRET,
            "OPSGENIE_WEBHOOK_SECRET": SANDBOX_WEBHOOK_SECRET,
            **face.env(),  # the same account as JSM Operations: add --source jsm
        }
        env_file.write_text("".join(f"{name}={value}\n" for name, value in values.items()), encoding="utf-8")
        say(f"sandbox: Opsgenie emulator at {opsgenie.url}, Port emulator at {port.url} (no blueprints yet)")
        say(f"sandbox: their URLs and sandbox credentials are in {env_file}; in another terminal try:")
        say(f"  opsgenie-export sync --env-file {env_file} --initialize-port-resources")
        say(f"  opsgenie-export validate --from-port --env-file {env_file}")
        say(f"  opsgenie-export serve --env-file {env_file} --port 8000")
        say(f"  opsgenie-export sync --env-file {env_file} --source jsm   (the same account from its JSM emulator)")
        say("sandbox: serving until Ctrl-C")
        stop.wait()
    env_file.unlink(missing_ok=True)
