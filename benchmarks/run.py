"""Benchmarks of issues 3 and 13: a real sync, through HTTP, against emulated Opsgenie and Port.

    .venv/bin/python benchmarks/run.py                 # every scenario (several minutes)
    .venv/bin/python benchmarks/run.py --quick         # small + mapping (seconds)
    .venv/bin/python benchmarks/run.py --scenario alerts_10k --scenario full
    .venv/bin/python benchmarks/run.py --scenario ocean_default --scenario ocean_default_second_run

`ocean_default` is issue 13's side-by-side account (20,000 alerts and 2,000 incidents, 70% open;
200 services, 20 teams, 200 users; 20 ms round trip) synced with Port's default mapping verbatim
and its six blueprints, then synced again unchanged. Besides wall time it reports CPU time, the
requests in flight at each emulator at their peak (`concurrency_reached`, measured by the servers)
and the latency floor, requests * round trip / concurrency reached.

Each HTTP scenario starts the emulators in one subprocess (`opsgenie_export.sandbox.standalone`,
generated account, latency, rate limits, faults) and runs `python -m opsgenie_export sync` in
ANOTHER subprocess, so the sync's peak RSS (`os.wait4` rusage of that process alone) and wall time
are its own. Request counts come from the emulators' reports (what the servers saw, retries,
429s and dropped connections included), not from the client.

Prints ONE JSON document on stdout (progress goes to stderr): the machine, per scenario the
figures and, under `bounds`, whether each "Done when" bound of issues 3 and 13 holds, as
`{"holds": bool | null, "bound": …, "value": …}` (`null` = could not be evaluated in this run, e.g.
the RSS ratio to alerts_10k when alerts_10k was not selected). `failed_bounds` lists the bounds
that do not hold. The machine is small and noisy: compare ratios measured in one run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import queue
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from opsgenie_export.mapping import compile_mapping, load_mapping
from opsgenie_export.opsgenie.enrichment import keys_for
from opsgenie_export.port.blueprints import DERIVED_KEYS
from opsgenie_export.sandbox.accounts import base_alert, generate_account
from opsgenie_export.sync import resource_query

REPO = Path(__file__).resolve().parents[1]
MAPPING = REPO / "mapping.yaml"
BLUEPRINTS = REPO / "blueprints"
# Port's default Ocean mapping verbatim and its six blueprints (issue 13's side-by-side account)
OCEAN_MAPPING = REPO / "tests" / "fixtures" / "ocean" / "port-default-mapping.yaml"
OCEAN_BLUEPRINTS = REPO / "examples" / "ocean" / "blueprints"

LATENCY = 0.020  # the emulated round trip on both APIs
# "Tight" limits for the faults scenario: every one binds (an unpaced client with 4 workers and a
# 20 ms round trip would send ~200 requests/s), yet the run completes in about a minute.
TIGHT_OPSGENIE_LIMITS = {
    "search": [10, 600],
    "alert": [10, 600],
    "incident": [30, 1800],
    "configuration": [5, 300],
    "schedule-oncalls": [2, 60],
}
TIGHT_PORT_LIMIT = "30/1"

SCENARIOS: dict[str, dict[str, Any]] = {
    "small": {"alerts": 300, "incidents": 60, "services": 25, "teams": 10, "latency": 0.0},
    "alerts_10k": {"alerts": 10_000, "incidents": 1_000, "services": 100, "teams": 10, "latency": LATENCY},
    "full": {"alerts": 100_000, "incidents": 10_000, "services": 1_000, "teams": 100, "latency": LATENCY},
    "full_second_run": {},  # the `full` emulators, synced a second time
    "ceiling": {"alerts": 25_000, "incidents": 1_000, "services": 100, "teams": 10, "latency": LATENCY},
    "faults": {
        "alerts": 10_000,
        "incidents": 1_000,
        "services": 100,
        "teams": 10,
        "latency": LATENCY,
        "og_rate_limits": TIGHT_OPSGENIE_LIMITS,
        "port_rate_limit": TIGHT_PORT_LIMIT,
        "error_rate": 0.05,
        "drop_rate": 0.02,
    },
    "mapping": {"alerts": 10_000, "passes": 3},
    "ocean_default": {
        "alerts": 20_000,
        "incidents": 2_000,
        "services": 200,
        "teams": 20,
        "users": 200,
        "open_share": 0.7,
        "latency": LATENCY,
        "mapping": str(OCEAN_MAPPING.relative_to(REPO)),
        "blueprints": str(OCEAN_BLUEPRINTS.relative_to(REPO)),
    },
    "ocean_default_second_run": {},  # the `ocean_default` emulators, synced a second time
}
ORDER = [
    "small",
    "mapping",
    "alerts_10k",
    "ceiling",
    "faults",
    "full",
    "full_second_run",
    "ocean_default",
    "ocean_default_second_run",
]
QUICK = ["small", "mapping"]

RSS_LIMIT_BYTES = 250_000_000  # "under 250 MB" read as decimal megabytes (the stricter reading)
SIZE_KEY = {"alert": "alerts", "incident": "incidents", "service": "services"}
# The account size each kind yields entities for; a resource that filters on open status reads
# the open ones. schedule: one entity per rotation (itemsToParse); schedule-oncall: per owner team.
KIND_SIZES = {
    "alert": "alerts",
    "incident": "incidents",
    "service": "services",
    "user": "users",
    "team": "teams",
    "schedule": "scheduleRotations",
    "schedule-oncall": "scheduleOwnerTeams",
}
OPEN_SIZES = {"alert": "openAlerts", "incident": "openIncidents"}
# The shared listing each enrichment key reads (team details are per-team calls, not a listing).
KEY_LISTINGS = {
    "__incidents": "incident",
    "__relatedIncident": "incident",
    "__impactedServices": "service",
    "__oncalls": "schedule",
    "__currentOncalls": "schedule",
}
LIST_PAGE = 100  # Opsgenie list pages (alerts, incidents, services)
SEARCH_PAGE = 1000  # Port blueprint search page
BULK_SIZE = 20  # Port bulk upsert


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the emulators' process ------------------------------------------------------------------
class Emulators:
    """`standalone.py` in a subprocess: the ready line, `report` on demand, the exit report."""

    def __init__(self, spec: dict[str, Any], seed: int, workdir: Path, ready_timeout: float) -> None:
        args = [sys.executable, "-m", "opsgenie_export.sandbox.standalone", "--seed", str(seed)]
        for name in ("alerts", "incidents", "services", "teams"):
            args += [f"--{name}", str(spec[name])]
        if spec.get("users") is not None:
            args += ["--users", str(spec["users"])]
        if spec.get("open_share") is not None:
            args += ["--open-share", str(spec["open_share"])]
        args += ["--latency", str(spec.get("latency", 0.0))]
        if spec.get("og_rate_limits"):
            args += ["--og-rate-limits", json.dumps(spec["og_rate_limits"])]
        if spec.get("port_rate_limit"):
            args += ["--port-rate-limit", spec["port_rate_limit"]]
        args += ["--error-rate", str(spec.get("error_rate", 0.0)), "--drop-rate", str(spec.get("drop_rate", 0.0))]
        self.cache_dir = Path(tempfile.mkdtemp(prefix="link-cache-", dir=workdir))  # a first run starts cold
        self.stderr_path = workdir / "emulators.stderr"
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            cwd=workdir,
            env=_clean_env(),
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()
        self.ready = self._next("ready", ready_timeout)
        self.sizes: dict[str, int] = self.ready["accountSizes"]
        self.exit_report: dict[str, Any] | None = None

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put(None)

    def _next(self, event: str, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"emulators: no {event} line within {timeout:.0f}s") from None
        if line is None:
            tail = self.stderr_path.read_text()[-2000:]
            raise RuntimeError(f"emulators exited before their {event} line: {tail}")
        document = json.loads(line)
        if document.get("event") != event:
            raise RuntimeError(f"emulators: expected {event}, got {document.get('event')}")
        return document

    def env(self) -> dict[str, str]:
        return {
            "OPSGENIE_API_TOKEN": self.ready["api_key"],
            "OPSGENIE_API_URL": self.ready["opsgenie"],
            "PORT_CLIENT_ID": self.ready["client_id"],
            "PORT_CLIENT_SECRET": self.ready["client_secret"],
            "PORT_BASE_URL": self.ready["port"],
        }

    def report(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("report\n")
        self.proc.stdin.flush()
        return self._next("report", 120)

    def close(self) -> dict[str, Any] | None:
        """Close stdin; keep and return the exit report (None if the process had already gone)."""
        exit_report = None
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            exit_report = self.exit_report = self._next("exit", 120)
        except (RuntimeError, BrokenPipeError, OSError) as exc:
            log(f"emulators: {exc}")
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()
        return exit_report


def _clean_env() -> dict[str, str]:
    """This environment without anything that would point the sync elsewhere or publish to a CI."""
    dropped = ("OPSGENIE_", "PORT_", "OCEAN__", "GITHUB_", "TF_BUILD", "SYSTEM_", "BUILD_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    env["NO_COLOR"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


# -- the sync's process ----------------------------------------------------------------------
# Runs `python -m opsgenie_export …` and at exit writes the process's own peak RSS (VmHWM of
# /proc/self/status, KiB) to the file given as first argument. wait4's ru_maxrss cannot be used:
# Linux carries the parent's peak across fork/vfork + exec, so a sync started from this process
# (which maps 100,000 alerts in the mapping scenario) would report at least this process's peak.
HWM_RUNNER = """
import atexit, runpy, sys
out = sys.argv.pop(1)
def write_peak():
    try:
        with open("/proc/self/status") as status:
            peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        with open(out, "w") as handle:
            handle.write(peak)
    except (OSError, StopIteration):
        pass
atexit.register(write_peak)
runpy.run_module("opsgenie_export", run_name="__main__", alter_sys=True)
"""


def run_sync(
    emulators: Emulators,
    workdir: Path,
    label: str,
    timeout: float,
    extra: list[str],
    mapping: Path = MAPPING,
    blueprints: Path = BLUEPRINTS,
) -> dict[str, Any]:
    """One `opsgenie_export sync` in its own process: wall time, its own peak RSS, its summary."""
    summary_path = workdir / f"{label}.summary.json"
    stderr_path = workdir / f"{label}.stderr"
    peak_path = workdir / f"{label}.peak-kib"
    args = [
        sys.executable, "-c", HWM_RUNNER, str(peak_path), "sync",
        "--mapping", str(mapping), "--blueprints", str(blueprints), "--initialize-port-resources",
        "--summary-json", str(summary_path), "--no-env-file", "--quiet", "--no-color",
        "--cache-dir", str(emulators.cache_dir), *extra,
    ]  # fmt: skip
    with stderr_path.open("w") as stderr, (workdir / f"{label}.stdout").open("w") as stdout:
        started = time.monotonic()
        proc = subprocess.Popen(args, stdout=stdout, stderr=stderr, cwd=workdir, env=_clean_env() | emulators.env())
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            proc.kill()

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)  # the child's rusage (CPU; ru_maxrss as a fallback)
        finally:
            timer.cancel()
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else None
    own_peak = peak_path.exists() and peak_path.read_text().strip()
    peak_kib = int(own_peak) if own_peak else usage.ru_maxrss
    result: dict[str, Any] = {
        "exit_code": proc.returncode,
        "timed_out": timed_out.is_set(),
        "wall_seconds": round(wall, 3),
        "sync_seconds": summary.get("seconds") if summary else None,
        "peak_rss_kib": peak_kib,
        "peak_rss_mb": round(peak_kib * 1024 / 1e6, 1),
        "peak_rss_source": "VmHWM" if own_peak else "ru_maxrss (may include this process's peak)",
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "cpu_user_seconds": round(usage.ru_utime, 2),
        "summary": summary,
    }
    if proc.returncode != 0:
        result["stderr_tail"] = stderr_path.read_text()[-3000:]
    return result


# -- the request floor -----------------------------------------------------------------------
def mapping_shape(mapping: Path = MAPPING) -> dict[str, Any]:
    """From a mapping file: which kinds are listed (and whether only their open items), which
    enrichment keys are computed, which blueprint each resource writes, and per blueprint the
    account sizes its resources yield entities for (`writes`)."""
    config = load_mapping(mapping)
    compiled = compile_mapping(config)
    kinds, keys, blueprints, writes, open_only = set(), set(), {}, {}, set()
    for resource in compiled:
        kinds.add(resource.kind)
        keys.update(keys_for(resource.kind, resource.referenced_keys(), resource.resource.selector.include_members))
        query = resource_query(resource.resource)
        if query == "status:open":
            open_only.add(resource.kind)
        elif query:
            raise ValueError(f"{mapping}: no request floor for the query {query!r}")
        size = OPEN_SIZES[resource.kind] if query else KIND_SIZES[resource.kind]
        for blueprint in resource.blueprints_static():
            blueprints.setdefault(blueprint, resource.kind)
            writes.setdefault(blueprint, []).append(size)
    kinds.update(KEY_LISTINGS[key] for key in keys if key in KEY_LISTINGS)
    if "schedule" in kinds:
        kinds.discard("schedule-oncall")  # one schedule listing serves both kinds
    return {
        "kinds": sorted(kinds),
        "keys": sorted(keys),
        "blueprints": blueprints,
        "writes": writes,
        "open_only": sorted(open_only),
        "create_missing_related": config.create_missing_related_entities,
    }


def request_floor(
    sizes: dict[str, int],
    shape: dict[str, Any],
    *,
    existing: dict[str, int],
    to_write: dict[str, int],
    warm_link_cache: bool = False,
    blueprints_dir: Path = BLUEPRINTS,
) -> dict[str, Any]:
    """The fewest requests a complete, correct sync of this account can make.

    Opsgenie (each listing once, shared by the resources and the enrichments that need it):
    - alerts, incidents, services: ceil(N / 100) list pages each (at least 1 — an empty listing
      is still one request); teams, schedules, escalations: 1 call each (unpaged lists);
    - `__team`: 1 team detail per distinct team owning a service (the list lacks members);
    - `__oncalls`: 1 call to /v2/schedules/on-calls for every schedule (its listing is above);
    - `__relatedIncident`: per incident, ceil(associated alerts / 25) associated-alert-ids pages,
      at least 1 (25 is the API's maximum page); with a warm link cache and nothing changed, only
      the open incidents (links.py always asks those).
    - 1 /v2/request-limits (the account's own rate limits, read once to pace every domain);
    - a kind listed only for its open items (`status:open`) counts its open items.
    Not counted: /v2/alerts/count (window splitting).
    Port:
    - 1 token; 1 blueprint list (serves the initialisation and the preflight, which checks every
      blueprint and field the mapping writes);
    - blueprint initialisation: for each missing blueprint 1 POST, plus 1 PATCH when it has
      relations or derived properties;
    - per blueprint the mapping writes: ceil(existing / 1000) search pages, at least 1, and
      ceil(entities to write / 20) bulk upserts (new or changed entities only);
    - no deletes (no stale entities in these scenarios).
    """
    opsgenie: dict[str, int] = {"request limits": 1}
    listed = {"alert": "alerts", "incident": "incidents", "service": "services"}
    for kind in shape["kinds"]:
        if kind in listed:
            size = sizes[OPEN_SIZES[kind] if kind in shape.get("open_only", ()) else listed[kind]]
            opsgenie[f"list {kind}"] = max(1, math.ceil(size / LIST_PAGE))
        elif kind in ("team", "schedule", "schedule-oncall", "escalation"):
            opsgenie[f"list {kind}"] = 1
        else:  # users: paged like services
            opsgenie[f"list {kind}"] = max(1, math.ceil(sizes.get(f"{kind}s", 0) / LIST_PAGE))
    if "__members" in shape["keys"]:
        opsgenie["team details"] = sizes["teams"]  # every team (its members), __team included
    elif "__team" in shape["keys"]:
        opsgenie["team details"] = sizes["serviceTeams"]
    if "__oncalls" in shape["keys"] or "__currentOncalls" in shape["keys"]:
        opsgenie["on-calls"] = 1
    if "__relatedIncident" in shape["keys"]:
        pages = "associatedAlertIdPagesOpen" if warm_link_cache else "associatedAlertIdPages"
        opsgenie["associated-alert-ids"] = sizes[pages]

    files = {path.stem: json.loads(path.read_text()) for path in sorted(blueprints_dir.glob("*.json"))}
    missing = [name for name in files if existing.get(name) is None]
    port = {
        "token": 1,
        "blueprint list (preflight)": 1,
        "blueprint init": len(missing) + sum(1 for name in missing if any(files[name].get(k) for k in DERIVED_KEYS)),
        "searches": sum(max(1, math.ceil((existing.get(bp) or 0) / SEARCH_PAGE)) for bp in shape["blueprints"]),
        "bulk upserts": sum(math.ceil(to_write.get(bp, 0) / BULK_SIZE) for bp in shape["blueprints"]),
    }
    return {
        "opsgenie": opsgenie,
        "port": port,
        "opsgenie_total": sum(opsgenie.values()),
        "port_total": sum(port.values()),
        "total": sum(opsgenie.values()) + sum(port.values()),
    }


# -- figures of one sync ---------------------------------------------------------------------
def _diff(after: Any, before: Any) -> Any:
    """after - before for every number in nested dicts (missing = 0); other values from after."""
    if isinstance(after, dict):
        before = before if isinstance(before, dict) else {}
        return {key: _diff(value, before.get(key)) for key, value in after.items()}
    if isinstance(after, int | float) and not isinstance(after, bool):
        return after - (before if isinstance(before, int | float) else 0)
    return after


def _bound(holds: bool | None, bound: Any, value: Any, note: str = "") -> dict[str, Any]:
    entry = {"holds": holds, "bound": bound, "value": value}
    if note:
        entry["note"] = note
    return entry


def figures(
    sync: dict[str, Any],
    before: dict[str, Any],
    after: dict[str, Any],
    sizes: dict[str, int],
    shape: dict[str, Any],
    floor: dict[str, Any],
) -> dict[str, Any]:
    delta = _diff({"opsgenie": after["opsgenie"], "port": after["port"]}, before)
    og, port = delta["opsgenie"], delta["port"]
    total = og["requests"] + port["requests"]
    throttled = og["throttled"] + port["throttled"]
    summary = sync.get("summary") or {}
    upserted = sum(b.get("upserted", 0) for b in summary.get("blueprints", []))
    expected = expected_entities(sizes, shape)
    present = {bp: after["portEntities"].get(bp, 0) for bp in expected}
    matching = after.get("portEntitiesMatchingAccount", {})
    id_checked = {
        bp: matching.get(bp, {}).get(SIZE_KEY[kind], 0)
        for bp, kind in shape["blueprints"].items()
        if kind in ("alert", "incident")
    }
    # createMissingRelatedEntities may add stub targets: Port's alias rule relates open alerts to
    # closed incidents (real ids, never listed) and to invented ones ("host" of host_cpu_high)
    stubs_allowed = shape.get("create_missing_related", False)
    arrived = all(
        present[bp] == expected[bp] or (stubs_allowed and present[bp] > expected[bp]) for bp in expected
    ) and all(id_checked[bp] == expected[bp] or (stubs_allowed and id_checked[bp] > expected[bp]) for bp in id_checked)
    og_requests, port_requests = og["requests"], port["requests"]
    peaks = {
        "opsgenie": after["opsgenie"].get("inFlightPeak"),
        "port": after["port"].get("inFlightPeak"),
        "both": after.get("inFlightPeakBoth"),
    }
    return {
        "exit_code": sync["exit_code"],
        "timed_out": sync["timed_out"],
        "wall_seconds": sync["wall_seconds"],
        "sync_seconds": sync["sync_seconds"],
        "peak_rss_kib": sync["peak_rss_kib"],
        "peak_rss_mb": sync["peak_rss_mb"],
        "peak_rss_source": sync["peak_rss_source"],
        "cpu_seconds": sync["cpu_seconds"],
        "requests": {
            "total": total,
            "opsgenie": og["requests"],
            "port": port["requests"],
            "opsgenie_by_endpoint": _nonzero(og["byRoute"]),
            "port_by_endpoint": _nonzero(port["byRoute"]),
            "opsgenie_by_domain": _nonzero(og["byDomain"]),
            "opsgenie_by_status": _nonzero(og["byStatus"]),
            "port_by_status": _nonzero(port["byStatus"]),
        },
        "throttled_429": {
            "total": throttled,
            "opsgenie": og["throttled"],
            "opsgenie_by_domain": _nonzero(og["throttledByDomain"]),
            "port": port["throttled"],
            "share": round(throttled / total, 4) if total else 0.0,
        },
        "client_reported_requests": summary.get("requests"),
        "entity_writes": upserted,
        "incident_links": summary.get("incidentLinks"),
        "port_write_requests": port["writeRequests"],
        "entities_expected": expected,
        "entities_in_port": present,
        "account_ids_found_in_port": id_checked,
        "all_entities_arrived": arrived,
        "floor": floor,
        "requests_over_floor": round(total / floor["total"], 4) if floor["total"] else None,
        "opsgenie_over_floor": round(og["requests"] / floor["opsgenie_total"], 4),
        "port_over_floor": round(port["requests"] / floor["port_total"], 4),
        "cpu_user_seconds": sync.get("cpu_user_seconds"),
        "concurrency_reached": peaks,
        "latency_floor_seconds": latency_floor(og_requests, port_requests, peaks, shape.get("latency", 0.0)),
        "stub_entities": {bp: present[bp] - expected[bp] for bp in expected if present[bp] > expected[bp]},
        "stderr_tail": sync.get("stderr_tail"),
    }


def expected_entities(sizes: dict[str, int], shape: dict[str, Any]) -> dict[str, int]:
    """Entities each blueprint should hold: the largest of its resources' sizes (a second resource
    writing the same blueprint — schedule-oncall onto teams — adds no entity of its own)."""
    return {bp: max(sizes[key] for key in keys) for bp, keys in shape["writes"].items()}


def entities_to_write(sizes: dict[str, int], shape: dict[str, Any]) -> dict[str, int]:
    """Entity writes per blueprint on a first run: every resource writes each of its entities."""
    return {bp: sum(sizes[key] for key in keys) for bp, keys in shape["writes"].items()}


def latency_floor(og: int, port: int, peaks: dict[str, Any], round_trip: float) -> dict[str, Any] | None:
    """requests * round trip / concurrency reached: the wall time the requests alone need at the
    in-flight peaks the emulators measured, per API and for both (the two APIs overlap)."""
    if not round_trip or not peaks.get("both"):
        return None
    per_api = {
        "opsgenie": round(og * round_trip / max(1, peaks["opsgenie"] or 1), 3),
        "port": round(port * round_trip / max(1, peaks["port"] or 1), 3),
    }
    both = round((og + port) * round_trip / peaks["both"], 3)
    return {**per_api, "both": both, "floor": max(both, *per_api.values())}


def _nonzero(counts: dict[str, int]) -> dict[str, int]:
    return {key: value for key, value in counts.items() if value}


# -- scenarios -------------------------------------------------------------------------------
@contextmanager
def emulators_for(spec: dict[str, Any], args: argparse.Namespace, workdir: Path) -> Iterator[Emulators]:
    log(f"starting emulators: {json.dumps(spec)}")
    emulators = Emulators(spec, args.seed, workdir, args.ready_timeout)
    log(f"emulators ready ({emulators.ready.get('generatedSeconds')}s to generate): {emulators.sizes}")
    try:
        yield emulators
    finally:
        emulators.close()


def scenario_shape(spec: dict[str, Any], default: dict[str, Any]) -> tuple[dict[str, Any], Path, Path]:
    """The mapping shape, mapping file and blueprints directory a scenario runs with."""
    if not spec.get("mapping"):
        return {**default, "latency": spec.get("latency", 0.0)}, MAPPING, BLUEPRINTS
    mapping, blueprints = REPO / spec["mapping"], REPO / spec["blueprints"]
    return {**mapping_shape(mapping), "latency": spec.get("latency", 0.0)}, mapping, blueprints


def http_scenario(name: str, args: argparse.Namespace, shape: dict[str, Any], workdir: Path) -> dict[str, Any]:
    spec = SCENARIOS[name]
    shape, mapping, blueprints = scenario_shape(spec, shape)
    with emulators_for(spec, args, workdir) as emulators:
        sizes = emulators.sizes
        log(f"{name}: sync")
        sync = run_sync(emulators, workdir, name, args.sync_timeout, args.sync_args, mapping, blueprints)
    after = emulators.exit_report
    if after is None:
        raise RuntimeError("the emulators gave no exit report")
    floor = request_floor(
        sizes, shape, existing={}, to_write=entities_to_write(sizes, shape), blueprints_dir=blueprints
    )
    result = {"params": spec, "account": sizes, **figures(sync, {}, after, sizes, shape, floor)}
    log(f"{name}: {_brief(result)}")
    return result


def two_runs(
    name: str, args: argparse.Namespace, shape: dict[str, Any], workdir: Path, second: bool
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A first sync into an empty Port, then (when `second`) the same sync again, nothing changed."""
    spec = SCENARIOS[name]
    shape, mapping, blueprints = scenario_shape(spec, shape)
    with emulators_for(spec, args, workdir) as emulators:
        sizes = emulators.sizes
        log(f"{name}: first sync")
        sync = run_sync(emulators, workdir, name, args.sync_timeout, args.sync_args, mapping, blueprints)
        middle = emulators.report()
        floor = request_floor(
            sizes, shape, existing={}, to_write=entities_to_write(sizes, shape), blueprints_dir=blueprints
        )
        first = {"params": spec, "account": sizes, **figures(sync, {}, middle, sizes, shape, floor)}
        log(f"{name}: {_brief(first)}")
        if not second:
            return first, None
        log(f"{name}_second_run: second sync, nothing changed")
        label = f"{name}_second_run"
        sync2 = run_sync(emulators, workdir, label, args.sync_timeout, args.sync_args, mapping, blueprints)
    end = emulators.exit_report
    if end is None:
        raise RuntimeError("the emulators gave no exit report")
    existing = {bp: middle["portEntities"].get(bp, 0) for bp in middle["portEntities"]}
    floor2 = request_floor(
        sizes, shape, existing=existing, to_write={}, warm_link_cache=True, blueprints_dir=blueprints
    )
    before = {"opsgenie": middle["opsgenie"], "port": middle["port"]}
    again = {"params": {"same_emulators_as": name}, **figures(sync2, before, end, sizes, shape, floor2)}
    again["wall_ratio_to_first"] = round(again["wall_seconds"] / first["wall_seconds"], 4)
    if first["cpu_seconds"]:
        again["cpu_ratio_to_first"] = round(again["cpu_seconds"] / first["cpu_seconds"], 4)
    log(f"{label}: {_brief(again)}")
    return first, again


def mapping_scenario(args: argparse.Namespace) -> dict[str, Any]:
    """map_item of mapping.yaml's alert resource over pre-enriched list-shaped alerts: one
    process, one thread, no HTTP. The rate of the best pass is the figure (noise only slows a
    pass down); the median is reported too."""
    spec = SCENARIOS["mapping"]
    count = spec["alerts"]
    account = generate_account(alerts=count, incidents=count // 10, services=100, teams=10, seed=args.seed)
    incidents = {incident["id"]: incident for incident in account.incidents}
    related: dict[str, dict[str, Any]] = {}
    for incident_id, alert_ids in account.associated_alerts.items():
        for alert_id in alert_ids:
            related.setdefault(alert_id, incidents[incident_id])
    items = []
    for alert in account.alerts:
        item = base_alert(alert)  # what the list endpoint returns, which is what the sync maps
        if alert["id"] in related:
            item["__relatedIncident"] = related[alert["id"]]
        items.append(item)
    resource = next(r for r in compile_mapping(load_mapping(MAPPING)) if r.kind == "alert")
    for item in items[:200]:  # warm-up
        resource.map_item(item)
    rates, cpu_rates, errors = [], [], 0
    for _ in range(spec["passes"]):
        entities = 0
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for item in items:
            result = resource.map_item(item)
            entities += len(result.entities)
            errors += len(result.errors)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        rates.append(entities / wall)
        cpu_rates.append(entities / cpu if cpu else 0.0)
    best = max(rates)
    result = {
        "params": spec,
        "alerts": count,
        "with_related_incident": len(related),
        "mapping_errors": errors,
        "entities_per_second": round(best),
        "entities_per_second_median": round(statistics.median(rates)),
        "entities_per_cpu_second_best": round(max(cpu_rates)),
        "passes": [round(rate) for rate in rates],
    }
    log(f"mapping: {result['entities_per_second']} entities/s (median {result['entities_per_second_median']})")
    return result


def _brief(result: dict[str, Any]) -> str:
    return (
        f"exit {result['exit_code']}, {result['wall_seconds']}s, rss {result['peak_rss_mb']} MB, "
        f"{result['requests']['total']} requests (floor {result['floor']['total']}, x{result['requests_over_floor']}), "
        f"429 {result['throttled_429']['total']}, writes {result['entity_writes']}, "
        f"arrived {result['all_entities_arrived']}"
    )


# -- bounds ----------------------------------------------------------------------------------
def add_bounds(results: dict[str, Any]) -> list[str]:
    """Attach `bounds` (issue 3's "Done when") and `checks` (sanity) per scenario; return failures."""
    for name in ("small", "alerts_10k"):
        if name in results and "error" not in results[name]:
            r = results[name]
            r["bounds"] = {}
            r["checks"] = {
                "all_entities_arrived": _bound(r["all_entities_arrived"], "every entity", r["entities_in_port"]),
                "exit_code_zero": _bound(r["exit_code"] == 0, 0, r["exit_code"]),
                "requests_within_1_05_floor": _bound(r["requests_over_floor"] <= 1.05, 1.05, r["requests_over_floor"]),
            }
    full = results.get("full")
    if full and "error" not in full:
        base = results.get("alerts_10k")
        ratio = None
        if base and "error" not in base and base.get("peak_rss_kib"):
            ratio = round(full["peak_rss_kib"] / base["peak_rss_kib"], 3)
        full["rss_ratio_vs_10k"] = ratio
        full["bounds"] = {
            "all_entities_arrived": _bound(
                full["all_entities_arrived"], "every entity, once", full["entities_in_port"]
            ),
            "requests_within_1_05_floor": _bound(
                full["requests_over_floor"] <= 1.05, 1.05, full["requests_over_floor"]
            ),
            "rss_under_250MB": _bound(full["peak_rss_kib"] * 1024 < RSS_LIMIT_BYTES, 250, full["peak_rss_mb"]),
            "rss_ratio_vs_10k_at_most_1_5": _bound(
                None if ratio is None else ratio <= 1.5,
                1.5,
                ratio,
                "" if ratio is not None else "alerts_10k not run in this invocation",
            ),
        }
        full["checks"] = {"exit_code_zero": _bound(full["exit_code"] == 0, 0, full["exit_code"])}
    second = results.get("full_second_run")
    if second and "error" not in second and full and "error" not in full:
        second["bounds"] = {
            "second_run_writes_zero": _bound(
                second["entity_writes"] == 0 and second["port_write_requests"] == 0,
                0,
                {"entities": second["entity_writes"], "write_requests": second["port_write_requests"]},
            ),
            "second_run_under_third": _bound(
                second["wall_ratio_to_first"] < 1 / 3, 0.3333, second["wall_ratio_to_first"]
            ),
        }
        second["checks"] = {
            "exit_code_zero": _bound(second["exit_code"] == 0, 0, second["exit_code"]),
            "requests_within_1_05_floor": _bound(
                second["requests_over_floor"] <= 1.05, 1.05, second["requests_over_floor"]
            ),
        }
    ceiling = results.get("ceiling")
    if ceiling and "error" not in ceiling:
        ceiling["bounds"] = {
            "all_entities_arrived": _bound(
                ceiling["all_entities_arrived"], ceiling["entities_expected"], ceiling["entities_in_port"]
            )
        }
        ceiling["checks"] = {"exit_code_zero": _bound(ceiling["exit_code"] == 0, 0, ceiling["exit_code"])}
    faults = results.get("faults")
    if faults and "error" not in faults:
        share = faults["throttled_429"]["share"]
        faults["bounds"] = {
            "all_entities_arrived": _bound(
                faults["all_entities_arrived"], faults["entities_expected"], faults["entities_in_port"]
            ),
            "exit_code_zero": _bound(faults["exit_code"] == 0, 0, faults["exit_code"]),
            "throttled_share_under_2pct": _bound(share < 0.02, 0.02, share),
        }
    add_ocean_bounds(results)
    mapping = results.get("mapping")
    if mapping and "error" not in mapping:
        rate = mapping["entities_per_second"]
        mapping["bounds"] = {
            "mapping_at_least_10k_per_s": _bound(rate >= 10_000 and mapping["mapping_errors"] == 0, 10_000, rate)
        }
    failed = []
    for name, result in results.items():
        if "error" in result:
            failed.append(f"{name}: {result['error']}")
            continue
        failed += [f"{name}.{bound}" for bound, entry in result.get("bounds", {}).items() if entry["holds"] is False]
    return failed


def add_ocean_bounds(results: dict[str, Any]) -> None:
    """Issue 13's "Done when" for Port's default mapping. The exit code is reported, not bound:
    the verbatim mapping's schedule-oncall collides on teams owning two schedules (issue 12)."""
    first = results.get("ocean_default")
    if first and "error" not in first:
        floor = (first["latency_floor_seconds"] or {}).get("floor")
        cpu = first["cpu_seconds"]
        limit = round(1.3 * max(floor or 0.0, cpu), 3)
        port_peak = first["concurrency_reached"]["port"]
        first["bounds"] = {
            "wall_within_1_3_of_max_latency_floor_cpu": _bound(
                first["wall_seconds"] <= limit, limit, first["wall_seconds"], f"floor {floor}s, cpu {cpu}s"
            ),
            "port_in_flight_at_least_12": _bound(port_peak is not None and port_peak >= 12, 12, port_peak),
            "requests_equal_floor": _bound(
                first["requests"]["total"] == first["floor"]["total"],
                first["floor"]["total"],
                {"opsgenie": first["requests"]["opsgenie"], "port": first["requests"]["port"]},
            ),
        }
        first["checks"] = {
            "exit_code": _bound(None, 0, first["exit_code"], "reported only (issue 12)"),
            "all_entities_arrived": _bound(first["all_entities_arrived"], "every entity", first["entities_in_port"]),
        }
    second = results.get("ocean_default_second_run")
    if second and "error" not in second and first and "error" not in first:
        ratio = second.get("cpu_ratio_to_first")
        second["bounds"] = {
            "second_run_writes_zero": _bound(
                second["entity_writes"] == 0 and second["port_write_requests"] == 0,
                0,
                {"entities": second["entity_writes"], "write_requests": second["port_write_requests"]},
            ),
            "second_run_cpu_at_most_40pct": _bound(ratio is not None and ratio <= 0.4, 0.4, ratio),
        }
        second["checks"] = {
            "exit_code": _bound(None, 0, second["exit_code"], "reported only (issue 12)"),
            "requests_equal_floor": _bound(
                second["requests"]["total"] == second["floor"]["total"],
                second["floor"]["total"],
                second["requests"]["total"],
            ),
        }


# -- main ------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="append", choices=ORDER, help="run this scenario (repeatable)")
    parser.add_argument("--quick", action="store_true", help=f"only {' + '.join(QUICK)}")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sync-timeout", type=float, default=1800, help="seconds before a sync is killed")
    parser.add_argument("--ready-timeout", type=float, default=300, help="seconds for the emulators to start")
    parser.add_argument(
        "--sync-arg", dest="sync_args", action="append", default=[], help="extra argument for the sync (repeatable)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (summaries, stderr)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    selected = set(args.scenario or (QUICK if args.quick else ORDER))
    shape = mapping_shape()
    workdir = Path(tempfile.mkdtemp(prefix="opsgenie-bench-"))
    started = dt.datetime.now(dt.UTC)
    load_at_start = [round(x, 2) for x in os.getloadavg()]
    results: dict[str, Any] = {}
    try:
        for name in ORDER:
            if name not in selected or name in results:
                continue
            try:
                if name == "mapping":
                    results[name] = mapping_scenario(args)
                elif name in ("full", "full_second_run", "ocean_default", "ocean_default_second_run"):
                    base = name.removesuffix("_second_run")
                    first, again = two_runs(base, args, shape, workdir, f"{base}_second_run" in selected)
                    results[base] = first
                    if again is not None:
                        results[f"{base}_second_run"] = again
                else:
                    results[name] = http_scenario(name, args, shape, workdir)
            except Exception as exc:  # one broken scenario must not lose the others' figures
                log(f"{name}: failed: {type(exc).__name__}: {exc}")
                results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        if args.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    failed = add_bounds(results)
    document = {
        "benchmark": "opsgenie-export issues 3 and 13",
        "timestamp": started.isoformat(timespec="seconds"),
        "seconds": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 1),
        "machine": {
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_start": load_at_start,
        },
        "git": _git(),
        "mapping": {"path": str(MAPPING.relative_to(REPO)), **shape},
        "scenarios": {name: results[name] for name in ORDER if name in results},
        "failed_bounds": failed,
    }
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _git() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return {}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


if __name__ == "__main__":
    sys.exit(main())
