"""`opsgenie-export serve`: receive Opsgenie webhooks and keep Port's alert entities current.

`POST /integration/webhook` (the path of Port's integration) answers within milliseconds: 401
without the shared secret, 413 over 1 MiB (from Content-Length, before reading), 400 for a body
that is not a webhook event, 503 + Retry-After when the queue is full (Opsgenie retries), else 202
with the event queued. `GET /healthz` needs no secret and says how many events wait.

Standard library only (`ThreadingHTTPServer`): a thread per connection, at most
`--max-connections` at once (more get 503 without a thread), one request per connection, bounded
reads with a socket timeout. Webhook traffic is a few requests per second;
the work happens in one worker thread (`webhook.Worker`), so the server needs no framework and
the package gains no dependency. Put TLS termination (an ingress or reverse proxy) in front.

On SIGTERM/SIGINT the listener closes, the queue drains (each waiting event gets its turn now,
bounded by --drain-timeout), and the process exits 0 — or 1 when events were left unapplied
(named in the log); a second signal stops at once.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from opsgenie_export.errors import AuthError, ConfigError, ExportError
from opsgenie_export.exit_codes import ExitCode
from opsgenie_export.mapping import compile_mapping, load_mapping
from opsgenie_export.opsgenie.client import OpsgenieClient
from opsgenie_export.port.client import PortClient
from opsgenie_export.report import redact, safe_json
from opsgenie_export.settings import (
    MIN_SECRET_LENGTH,
    Options,
    Settings,
    known_secrets,
    load_environment,
    require_credentials,
    resolve,
)
from opsgenie_export.transport import StopSignal, WaitBudget, log_requests
from opsgenie_export.webhook import (
    AlertMapper,
    BadEvent,
    EventQueue,
    Health,
    PayloadProcessor,
    PortWriter,
    Processor,
    RefetchProcessor,
    RetryPolicy,
    Worker,
    parse_event,
)

WEBHOOK_PATH = "/integration/webhook"
HEALTH_PATH = "/healthz"
MAX_BODY = 1_048_576
MAX_DISCARD = 4 * MAX_BODY  # unread body bytes swallowed after an early answer, so the client sees it
SECRET_NAME = "OPSGENIE_WEBHOOK_SECRET"
MODES = ("refetch", "payload")


@dataclass
class ServeConfig:
    secret: str
    host: str = "127.0.0.1"
    port: int = 0
    mode: str = "refetch"
    queue_size: int = 1000
    settle: float = 0.25  # seconds an event waits so that a burst on one alert coalesces
    lookup_ttl: float = 60.0  # seconds enrichment lookups (incidents, teams…) are reused
    retry: RetryPolicy | None = None
    timeout: float = 30.0  # per HTTP request towards Opsgenie/Port
    max_retries: int = 3  # inside the clients, per request
    max_wait: float = 60.0  # seconds of client retry waits per event
    retry_after: int = 5  # seconds, on 503 (queue full)
    drain_timeout: float = 30.0
    ca_bundle: str | None = None
    max_connections: int = 64  # open connections served at once; more get 503 without a thread
    log_format: str = "text"  # text: one plain line per event; json: one JSON record per line
    quiet: bool = False  # only warnings and errors
    debug: bool = False  # also every HTTP request towards Opsgenie and Port


# --------------------------------------------------------------------------- HTTP


def authorised(headers: Mapping[str, str], secret: bytes) -> bool:
    """The secret as `X-Webhook-Secret` or as the basic-auth password (any user name);
    compared in constant time."""
    header = headers.get("X-Webhook-Secret")
    if header is not None and hmac.compare_digest(header.encode("utf-8", "surrogateescape"), secret):
        return True
    scheme, _, encoded = (headers.get("Authorization") or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    _user, colon, password = decoded.partition(b":")
    return bool(colon) and hmac.compare_digest(password, secret)


class WebhookHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most `max_connections` at once: beyond that a connection gets
    a bare 503 with Retry-After and is closed, so idle or trickling clients cannot exhaust threads."""

    daemon_threads = False  # server_close() waits for requests in progress
    block_on_close = True

    def __init__(
        self, address: tuple[str, int], secret: str, queue: EventQueue, retry_after: int, max_connections: int = 64
    ) -> None:
        super().__init__(address, WebhookHandler)
        self.secret = secret.encode("utf-8")
        self.queue = queue
        self.retry_after = retry_after
        self.health = Health()  # the worker's, once the service is built
        self._connections = threading.BoundedSemaphore(max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._connections.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()

    def _refuse(self, request: Any) -> None:
        """Answer without reading the request (it may never come) and close."""
        reply = (
            "HTTP/1.1 503 Service Unavailable\r\n"
            f"Retry-After: {self.retry_after}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(OSError):
            request.settimeout(1.0)
            request.sendall(reply.encode("ascii"))
            request.setblocking(False)  # drop what already arrived, so closing does not reset the reply
            while request.recv(65536):
                pass
        self.shutdown_request(request)


class WebhookHandler(BaseHTTPRequestHandler):
    server: WebhookHTTPServer
    timeout = 10  # seconds per socket read: a slow or stalled client cannot hold a thread long
    server_version = "opsgenie-export"
    sys_version = ""
    body_unread = False  # set while a POST body has not been read

    def log_message(self, format: str, *args: Any) -> None:  # the worker logs events instead
        return

    def do_GET(self) -> None:
        if urlsplit(self.path).path == HEALTH_PATH:
            healthy, body = self.server.health.report()
            self._reply(200 if healthy else 503, {**body, "queued": len(self.server.queue)})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        self.body_unread = True
        if urlsplit(self.path).path != WEBHOOK_PATH:
            self._reply(404, {"error": "not found"})
            return
        if not authorised(self.headers, self.server.secret):
            self._reply(401, {"error": "unauthorised"}, {"WWW-Authenticate": 'Basic realm="opsgenie-export"'})
            return
        length = self._content_length()
        if length is None:
            return
        body = self.rfile.read(length)
        self.body_unread = False
        if len(body) != length:
            self._reply(400, {"error": "body shorter than Content-Length"})
            return
        self._accept(body)

    def _content_length(self) -> int | None:
        """The body length, or None after answering 411/400/413 (the body is never read)."""
        if self.headers.get("Transfer-Encoding"):
            self._reply(411, {"error": "send a Content-Length (chunked bodies are not accepted)"})
            return None
        raw = self.headers.get("Content-Length")
        if raw is None or not raw.strip().isdigit():
            self._reply(411 if raw is None else 400, {"error": "missing or invalid Content-Length"})
            return None
        length = int(raw)
        if length > MAX_BODY:
            self._reply(413, {"error": f"body larger than {MAX_BODY} bytes"})
            return None
        return length

    def _accept(self, body: bytes) -> None:
        try:
            event = parse_event(body)
        except BadEvent as exc:
            self._reply(400, {"error": str(exc)})
            return
        if not self.server.queue.offer(event):
            self._reply(503, {"error": "queue full, retry later"}, {"Retry-After": str(self.server.retry_after)})
            return
        self._reply(202, {"status": "accepted", "alertId": event.alert_id, "action": event.action})

    def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        raw = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(raw)
        self.wfile.flush()
        self.close_connection = True
        if self.body_unread:
            self._discard_body()

    def _discard_body(self) -> None:
        """Read (and drop) what the client is still sending after an early answer, up to a
        limit: closing with unread data would reset the connection before it reads the answer."""
        declared = self.headers.get("Content-Length", "")
        remaining = min(int(declared), MAX_DISCARD) if declared.strip().isdigit() else MAX_DISCARD
        self.connection.settimeout(1.0)
        try:
            while remaining > 0 and (chunk := self.rfile.read1(min(65536, remaining))):  # type: ignore[attr-defined]
                remaining -= len(chunk)
        except OSError:
            pass


# --------------------------------------------------------------------------- the service


class WebhookService:
    """The HTTP listener, the queue and the worker, started and stopped together."""

    def __init__(
        self,
        httpd: WebhookHTTPServer,
        queue: EventQueue,
        worker: Worker,
        stop: StopSignal,
        closers: list[Callable[[], None]],
        log: Callable[[str], None],
    ) -> None:
        self.httpd = httpd
        self.queue = queue
        self.worker = worker
        self.stop_signal = stop
        self._closers = closers
        self._log = log
        httpd.health = worker.health
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.1,), name="webhook-http", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> WebhookService:
        self.worker.start()
        self._thread.start()
        return self

    def close_listener(self) -> None:
        """Stop accepting: shut the listening socket, finish the requests in progress."""
        self.httpd.shutdown()
        self.httpd.server_close()  # waits for requests in progress: their events are queued

    def drain(self, timeout: float = 30.0) -> list[str]:
        """Apply every queued event (each gets its turn now); the alert ids left unapplied."""
        self.queue.close()
        self.worker.join(timeout)
        if self.worker.is_alive():
            self.stop_signal.set(signal.SIGTERM)  # interrupt retry waits inside the clients
            self.worker.join(5.0)
        left = self.queue.waiting_ids()
        if self.worker.interrupted is not None:
            left.insert(0, self.worker.interrupted.alert_id)
        for close in self._closers:
            close()
        return left

    def stop(self, drain_timeout: float = 30.0) -> list[str]:
        self.close_listener()
        return self.drain(drain_timeout)


def build_service(
    settings: Settings,
    mapping_path: Path,
    config: ServeConfig,
    log: Callable[[str], None],
    *,
    check_credentials: bool = True,
) -> WebhookService:
    """Everything `serve` runs, bound to (host, port) but not started. ConfigError on a bad mapping
    or one without alert resources; AuthError when Port (or Opsgenie, in refetch mode) refuses."""
    mapping = load_mapping(mapping_path)
    mapper = AlertMapper(compile_mapping(mapping))
    if not mapper.resources:
        raise ConfigError(f"{mapping_path}: the mapping has no 'kind: alert' resource; webhooks only update alerts")
    stop = StopSignal()
    budget = WaitBudget(config.max_wait, stop)
    common: dict[str, Any] = {"budget": budget, "timeout": config.timeout, "max_retries": config.max_retries}
    common["ca_bundle"] = config.ca_bundle
    port = PortClient(settings.port_url, settings.port_client_id, settings.port_client_secret, **common)
    port.credentials_origin = settings.credential_origins()[1]
    closers: list[Callable[[], None]] = [port.close]
    writer = PortWriter(port, mapping)
    processor: Processor = PayloadProcessor(mapper, writer)
    opsgenie: OpsgenieClient | None = None
    if config.mode == "refetch":
        opsgenie = OpsgenieClient(settings.opsgenie_url, settings.opsgenie_token, **common)
        opsgenie.key_origin = settings.credential_origins()[0]
        refetch = RefetchProcessor(mapper, writer, opsgenie, lookup_ttl=config.lookup_ttl)
        closers += [refetch.close, opsgenie.close]
        processor = refetch
    if check_credentials:
        port.authenticate()
        if opsgenie is not None:
            opsgenie.learn_rate_limits()  # a bad key fails here (401), before any webhook
    queue = EventQueue(config.queue_size, settle=config.settle)
    worker = Worker(queue, processor, budget, log, config.retry)
    httpd = WebhookHTTPServer(
        (config.host, config.port), config.secret, queue, config.retry_after, config.max_connections
    )
    return WebhookService(httpd, queue, worker, stop, closers, log)


# --------------------------------------------------------------------------- the command


def webhook_secret(options: Options) -> str:
    value = load_environment(options).get(SECRET_NAME, ("", ""))[0].strip()
    if any(char.isspace() or not char.isprintable() for char in value):
        raise ConfigError(f"{SECRET_NAME} holds whitespace or a control character inside it; set the secret only")
    if value and len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{SECRET_NAME} is {len(value)} characters long: too short to be safe (or kept out of logs); "
            "use a long random value"
        )
    if not value:
        raise ConfigError(
            f"missing webhook secret: set {SECRET_NAME} (environment or .env). The server refuses to run "
            "without one: anyone who reaches an unauthenticated webhook can delete entities. Send it from "
            "Opsgenie as the basic-auth password or an X-Webhook-Secret custom header."
        )
    return value


def resolve_serve_settings(options: Options, mode: str) -> Settings:
    if mode not in MODES:
        raise ConfigError(f"--mode {mode!r}: expected one of {', '.join(MODES)}")
    if mode == "payload" and options.mapping is None:
        raise ConfigError("--mode payload needs --mapping (e.g. examples/webhook/mapping.yaml): it maps the payload")
    settings = resolve(options, need_credentials=False)
    required = ["opsgenie_token"] if mode == "refetch" else []
    values = {
        "opsgenie_token": settings.opsgenie_token,
        "port_client_id": settings.port_client_id,
        "port_client_secret": settings.port_client_secret,
    }
    require_credentials(values, [*required, "port_client_id", "port_client_secret"])
    return settings


def serve_command(options: Options, config: ServeConfig, stderr: IO[str] | None = None) -> int:
    """Run until SIGTERM/SIGINT; the exit code. `config.secret` is filled from the environment."""
    stream = stderr or sys.stderr
    secrets: tuple[str, ...] = known_secrets()

    def log(line: str, level: str | None = None) -> None:
        level = level or log_level(line)
        if config.quiet and level in ("info", "debug"):
            return
        if config.log_format == "json":
            now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            record = {"time": now, "level": level, "event": "serve", "kind": None, "counts": None, "message": line}
            line = safe_json(record)
        stream.write(redact(line, secrets) + "\n")
        stream.flush()

    if config.debug:  # the caller turns it off again (log_requests(None))
        log_requests(lambda text: log(text, "debug"))

    try:
        config.secret = webhook_secret(options)
        settings = resolve_serve_settings(options, config.mode)
        secrets = (*settings.secrets, config.secret, *secrets)
        config.ca_bundle = str(settings.ca_bundle) if settings.ca_bundle else None
        service = build_service(settings, settings.mapping_path, config, log)
    except ConfigError as exc:
        log(f"error: {exc}")
        return int(ExitCode.CONFIG)
    except AuthError as exc:
        log(f"error: {exc}")
        return int(ExitCode.AUTH)
    except (ExportError, OSError) as exc:
        log(f"error: cannot start: {exc}")
        return int(ExitCode.PARTIAL)
    for warning in settings.warnings:
        log(f"warning: {warning}")
    if len(config.secret) < 16:
        log(f"warning: {SECRET_NAME} is shorter than 16 characters; use a long random value")
    return _run_until_signal(service, config, settings.mapping_path, log)


def log_level(line: str) -> str:
    """The level of a serve log line, from how it reads."""
    if line.startswith("error:") or "FAILED" in line:
        return "error"
    if line.startswith("warning:") or "retrying" in line or "not applied" in line or "interrupted" in line:
        return "warning"
    return "info"


def _run_until_signal(service: WebhookService, config: ServeConfig, mapping: Path, log: Callable[[str], None]) -> int:
    requested = threading.Event()

    def on_signal(number: int, frame: object) -> None:
        if requested.is_set():
            service.stop_signal.set(number)  # a second signal: stop waiting on retries now
        requested.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        service.start()
        log(f"listening on {service.url}{WEBHOOK_PATH} (mode {config.mode}, mapping {mapping})")
        while not requested.wait(0.5):
            pass
        service.close_listener()
        log(f"stopping: listener closed, draining {len(service.queue)} queued event(s)")
        started = time.monotonic()
        left = service.drain(config.drain_timeout)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if left:
        log(f"stopped with {len(left)} event(s) not applied (alerts {', '.join(left[:20])}); run `sync` to reconcile")
        return int(ExitCode.PARTIAL)
    log(f"stopped: queue drained in {time.monotonic() - started:.1f}s, {service.worker.processed} event(s) applied")
    return int(ExitCode.OK)
