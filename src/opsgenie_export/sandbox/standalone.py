"""Both emulators in one process, for benchmarks and manual runs against a separate sync process.

    python -m opsgenie_export.sandbox.standalone --alerts 100000 --incidents 10000 --services 1000 \\
        --teams 100 --latency 0.02 --og-rate-limits '{"search": [10, 600]}' --port-rate-limit 30/1 \\
        --error-rate 0.05 --drop-rate 0.02 --seed 1 [--jsm [--jsm-ids-changed] [--jsm-no-services]]

With `--jsm`, the same account is also served by the JSM/Jira face (sandbox/jsm_emulator.py).

Protocol (one JSON document per line on stdout; nothing else is written there):

- once both servers listen: `{"event": "ready", "opsgenie": url, "port": url, "api_key": …,
  "client_id": …, "client_secret": …, "accountSizes": {…}}`, plus with `--jsm` a `"jsm"` object:
  `{"api": url, "site": url, "cloud_id", "org_id", "email", "api_token", "env": {JSM_* / ATLASSIAN_*}}`;
- a line `report` on stdin: `{"event": "report", …}` with the request counts so far (cumulative);
- when stdin closes, or on SIGTERM/SIGINT: the servers stop and one last line
  `{"event": "exit", …}` (the same fields as a report) is printed; exit code 0.

A report holds, per API: requests per route (`counts_by_route()`), per status (0 = dropped
connection), the 429s (Opsgenie: per rate-limit domain), Opsgenie's per-domain counts, Port's
entity-writing requests, and Port's entities per blueprint — with, per blueprint, how many of
its identifiers are ids of the account's alerts and of its incidents, so a caller can check that
every alert and incident arrived.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from collections import Counter
from typing import Any

from opsgenie_export.sandbox.accounts import Account, generate_account
from opsgenie_export.sandbox.jsm_emulator import DEFAULT_API_TOKEN, DEFAULT_EMAIL, JsmFace
from opsgenie_export.sandbox.opsgenie_emulator import DOMAINS, OpsgenieEmulator
from opsgenie_export.sandbox.port_emulator import PortEmulator
from opsgenie_export.sandbox.server import EmulatorServer, FaultPlan, FaultRule, InFlight

API_KEY = "standalone-opsgenie-key"
CLIENT_ID = "standalone-client-id"
CLIENT_SECRET = "standalone-client-secret"
ASSOCIATED_PAGE = 25  # the API's maximum page of associated-alert-ids


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m opsgenie_export.sandbox.standalone",
        description="Serve emulated Opsgenie and Port APIs on 127.0.0.1 until stdin closes or SIGTERM.",
    )
    parser.add_argument("--alerts", type=int, default=300)
    parser.add_argument("--incidents", type=int, default=60)
    parser.add_argument("--services", type=int, default=25)
    parser.add_argument("--teams", type=int, default=10)
    parser.add_argument("--users", type=int, default=None, help="default: 3 per team, at least 5")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--open-share", type=float, default=None, help="exact share of open alerts and incidents (default: mixed)"
    )
    parser.add_argument("--empty", action="store_true", help="prefill nothing: an Opsgenie account without any data")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every request on both APIs")
    parser.add_argument(
        "--og-rate-limits",
        type=_og_limits,
        default={},
        metavar="JSON",
        help='Opsgenie limits per domain: {"search": [per_second, per_minute], …} (null = no limit)',
    )
    parser.add_argument("--port-rate-limit", type=_port_limit, default=None, metavar="N/WINDOW")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of 5xx answers on both APIs")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of dropped connections on both APIs")
    parser.add_argument("--truncate-rate", type=float, default=0.0, help="share of truncated bodies on both APIs")
    parser.add_argument("--jsm", action="store_true", help="also serve the account's JSM Operations / Jira face")
    parser.add_argument("--jsm-ids-changed", action="store_true", help="JSM ids differ from Opsgenie ids (migration)")
    parser.add_argument("--jsm-no-services", action="store_true", help="the site has no services API (404)")
    parser.add_argument("--jsm-rate-limit", type=_port_limit, default=None, metavar="N/WINDOW")
    return parser.parse_args(argv)


def _og_limits(text: str) -> dict[str, tuple[int, int]]:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise argparse.ArgumentTypeError("expected an object of domain -> [per_second, per_minute]")
    limits = {}
    for domain, pair in raw.items():
        if domain not in DOMAINS:
            raise argparse.ArgumentTypeError(f"unknown domain {domain!r} (one of {', '.join(DOMAINS)})")
        if not (isinstance(pair, list) and len(pair) == 2):
            raise argparse.ArgumentTypeError(f"{domain}: expected [per_second, per_minute]")
        limits[domain] = (pair[0], pair[1])
    return limits


def _port_limit(text: str) -> tuple[int, float]:
    count, _, window = text.partition("/")
    try:
        return int(count), float(window or "1")
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected N/WINDOW_SECONDS, e.g. 30/1") from None


def build_account(args: argparse.Namespace) -> Account:
    if args.empty:
        return Account()
    return generate_account(
        alerts=args.alerts,
        incidents=args.incidents,
        services=args.services,
        teams=args.teams,
        users=args.users,
        seed=args.seed,
        open_share=args.open_share,
    )


def account_sizes(account: Account) -> dict[str, int]:
    """Sizes, plus what a request floor needs: distinct teams of services, associated-alert-id
    pages (of all incidents, and of the open ones, which a warm link cache still asks)."""
    associated = account.associated_alerts

    def pages(incident: dict[str, object]) -> int:
        return max(1, math.ceil(len(associated.get(str(incident["id"]), ())) / ASSOCIATED_PAGE))

    return {
        "alerts": len(account.alerts),
        "incidents": len(account.incidents),
        "services": len(account.services),
        "teams": len(account.teams),
        "users": len(account.users),
        "schedules": len(account.schedules),
        "scheduleRotations": sum(len(s.get("rotations") or []) for s in account.schedules),
        "scheduleOwnerTeams": len({(s.get("ownerTeam") or {}).get("id") for s in account.schedules} - {None}),
        "openAlerts": sum(1 for a in account.alerts if a.get("status") == "open"),
        "openIncidents": sum(1 for i in account.incidents if i.get("status") == "open"),
        "escalations": len(account.escalations),
        "serviceTeams": len({s.get("teamId") for s in account.services if s.get("teamId")}),
        "associatedAlerts": sum(len(ids) for ids in associated.values()),
        "associatedAlertIdPages": sum(pages(i) for i in account.incidents),
        "associatedAlertIdPagesOpen": sum(pages(i) for i in account.incidents if i.get("status") == "open"),
    }


def _faults(args: argparse.Namespace, salt: int) -> FaultPlan:
    plan = FaultPlan(seed=args.seed * 1000 + salt)
    if args.error_rate or args.drop_rate or args.truncate_rate:
        plan.add(FaultRule(error_rate=args.error_rate, drop_rate=args.drop_rate, truncate_rate=args.truncate_rate))
    return plan


def _statuses(server: EmulatorServer) -> dict[str, int]:
    return dict(sorted(Counter(str(entry.status) for entry in server.requests()).items()))


def _jsm_report(face: JsmFace) -> dict[str, Any]:
    routes = face.counts_by_route()
    statuses = Counter(str(entry.status) for entry in face.requests())
    return {
        "requests": sum(routes.values()),
        "byRoute": dict(sorted(routes.items())),
        "byStatus": dict(sorted(statuses.items())),
        "throttled": face.throttled,
    }


def report(
    event: str,
    opsgenie: OpsgenieEmulator,
    port: PortEmulator,
    account: Account,
    both: InFlight | None = None,
    jsm: JsmFace | None = None,
) -> dict[str, Any]:
    """The counts so far; the in-flight peaks are those since the previous report."""
    alert_ids = {a["id"] for a in account.alerts}
    incident_ids = {i["id"] for i in account.incidents}
    with port._lock:  # the emulator's own lock: a consistent view while writes may still arrive
        stores = {blueprint: list(store) for blueprint, store in port.entities.items()}
    og_routes, port_routes = opsgenie.counts_by_route(), port.counts_by_route()
    document = {
        "event": event,
        "opsgenie": {
            "requests": sum(og_routes.values()),
            "byRoute": dict(sorted(og_routes.items())),
            "byStatus": _statuses(opsgenie),
            "byDomain": dict(sorted(opsgenie.domain_counts.items())),
            "throttled": sum(opsgenie.throttled.values()),
            "throttledByDomain": dict(sorted(opsgenie.throttled.items())),
            "inFlightPeak": opsgenie.in_flight.take_peak(),
        },
        "port": {
            "requests": sum(port_routes.values()),
            "byRoute": dict(sorted(port_routes.items())),
            "byStatus": _statuses(port),
            "throttled": port.throttled,
            "writeRequests": port.writes(),
            "inFlightPeak": port.in_flight.take_peak(),
        },
        "inFlightPeakBoth": both.take_peak() if both is not None else None,
        "portEntities": {blueprint: len(ids) for blueprint, ids in sorted(stores.items())},
        "portEntitiesMatchingAccount": {
            blueprint: {
                "alerts": sum(1 for i in ids if i in alert_ids),
                "incidents": sum(1 for i in ids if i in incident_ids),
            }
            for blueprint, ids in sorted(stores.items())
        },
    }
    if jsm is not None:
        document["jsm"] = _jsm_report(jsm)
        if jsm.ids_changed:  # the JSM ids of the account's alerts and incidents, as a JSM run writes them
            jsm_alerts = {jsm.jsm_id("alert", i) for i in alert_ids}
            jsm_incidents = {jsm.jsm_id("incident", i) for i in incident_ids}
            for blueprint, ids in stores.items():
                matching = document["portEntitiesMatchingAccount"][blueprint]
                matching["jsmAlerts"] = sum(1 for i in ids if i in jsm_alerts)
                matching["jsmIncidents"] = sum(1 for i in ids if i in jsm_incidents)
    return document


def _emit(document: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(document, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    account = build_account(args)
    generated = time.monotonic() - started
    opsgenie = OpsgenieEmulator(
        account, api_key=API_KEY, latency=args.latency, faults=_faults(args, 1), rate_limits=args.og_rate_limits
    )
    port = PortEmulator(
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        latency=args.latency,
        faults=_faults(args, 2),
        rate_limit=args.port_rate_limit,
    )
    jsm = None
    if args.jsm:
        jsm = JsmFace(
            account,
            email=DEFAULT_EMAIL,
            api_token=DEFAULT_API_TOKEN,
            ids_changed=args.jsm_ids_changed,
            services_api=not args.jsm_no_services,
            api_rate_limit=args.jsm_rate_limit,
            site_rate_limit=args.jsm_rate_limit,
            latency=args.latency,
            faults=_faults(args, 3),
        )
    done = threading.Event()
    output_lock = threading.Lock()

    def on_signal(signum: int, frame: Any) -> None:
        done.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)

    both = InFlight()  # requests in flight at both servers together
    opsgenie.gauges.append(both)
    port.gauges.append(both)
    opsgenie.start()
    port.start()
    if jsm is not None:
        jsm.start()

    def read_commands() -> None:
        for line in sys.stdin:
            command = line.strip()
            if command == "report":
                with output_lock:
                    _emit(report("report", opsgenie, port, account, both, jsm))
            elif command in ("exit", "quit"):
                break
        done.set()

    ready: dict[str, Any] = {
        "event": "ready",
        "opsgenie": opsgenie.url,
        "port": port.url,
        "api_key": API_KEY,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "accountSizes": account_sizes(account),
        "generatedSeconds": round(generated, 3),
    }
    if jsm is not None:
        ready["jsm"] = {
            "api": jsm.api_url,
            "site": jsm.site_url,
            "cloud_id": jsm.cloud_id,
            "org_id": jsm.org_id,
            "email": jsm.email,
            "api_token": jsm.api_token,
            "env": jsm.env(),
        }
    _emit(ready)
    threading.Thread(target=read_commands, name="stdin-commands", daemon=True).start()
    while not done.wait(0.2):
        pass
    opsgenie.stop()
    port.stop()
    if jsm is not None:
        jsm.stop()
    with output_lock:
        _emit(report("exit", opsgenie, port, account, both, jsm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
