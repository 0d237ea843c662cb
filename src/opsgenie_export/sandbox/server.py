"""A small threaded HTTP server that the Opsgenie and Port emulators are built on.

Real sockets on 127.0.0.1 with an ephemeral port, HTTP/1.1 keep-alive (so clients pool
connections as they would against the real APIs), an optional round-trip latency, a request
log for counting, and a fault plan (5xx, dropped connections, responses cut at the socket before
or after the write was applied, HTML pages, `{"data": null}`, bytes that are not UTF-8, forced
statuses) applied before or after the route handler.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    url: str  # the raw request target, path and query

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None


@dataclass
class Response:
    status: int
    body: Any = None  # JSON-serialisable, or bytes for a raw body
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[..., Response]


@dataclass
class FaultRule:
    """One kind of misbehaviour for the requests whose path matches `path` (a regex, searched).

    - `status`: answer every matching request with this status (after `skip` good ones, at most
      `times` times when set) instead of calling the handler;
    - `error_rate`: probability of a 500/502/503/504 answer;
    - `drop_rate`: probability of closing the connection without any answer;
    - `truncate_rate`: probability of cutting the response at the socket AFTER the handler ran
      (a write is applied): the full Content-Length is announced, half the body is sent, then
      the connection closes — what a proxy timeout or a reset mid-transfer looks like;
    - `cut_before_rate`: the same cut, but the handler never runs (a write is NOT applied);
    - `garble_rate`: half the body with a matching Content-Length (valid HTTP, invalid JSON);
    - `html_rate`: 200 with an HTML page instead of JSON (a proxy or gateway), handler not run;
    - `null_data_rate`: 200 with `{"data": null}` after the handler ran;
    - `non_utf8_rate`: the handler's body with bytes that are not UTF-8 spliced in.
    """

    path: str = ".*"
    method: str | None = None
    status: int | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    skip: int = 0
    times: int | None = None
    error_rate: float = 0.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    cut_before_rate: float = 0.0
    garble_rate: float = 0.0
    html_rate: float = 0.0
    null_data_rate: float = 0.0
    non_utf8_rate: float = 0.0
    _seen: int = 0
    _fired: int = 0

    def matches(self, request: Request) -> bool:
        if self.method and self.method != request.method:
            return False
        return re.search(self.path, request.path) is not None


@dataclass
class FaultPlan:
    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 7

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._lock = threading.Lock()

    def add(self, rule: FaultRule) -> FaultRule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def decide(self, request: Request) -> tuple[str, Response | None]:
        """Returns ('ok'|'status'|'drop'|<a rate fault's name>, forced response)."""
        with self._lock:
            for rule in self.rules:
                if not rule.matches(request):
                    continue
                if rule.status is not None:
                    rule._seen += 1
                    if rule._seen <= rule.skip:
                        continue
                    if rule.times is not None and rule._fired >= rule.times:
                        continue
                    rule._fired += 1
                    return "status", Response(rule.status, rule.body, dict(rule.headers))
                roll = self._random.random()
                for verdict in RATE_FAULTS:
                    rate = getattr(rule, f"{verdict}_rate")
                    if roll < rate:
                        if verdict == "error":
                            status = self._random.choice([500, 502, 503, 504])
                            return "status", Response(status, {"message": "Internal Server Error"})
                        return verdict, None
                    roll -= rate
        return "ok", None


class InFlight:
    """Requests being served at once: the current count and its peak since the last `take_peak`
    (how much concurrency a client actually reached, measured where it cannot be faked)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def enter(self) -> None:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)

    def leave(self) -> None:
        with self._lock:
            self.current -= 1

    def take_peak(self) -> int:
        """The peak so far, then start a new measurement from the current count."""
        with self._lock:
            peak, self.peak = self.peak, self.current
            return peak


# Every `<name>_rate` of a FaultRule, in the order the roll is checked.
RATE_FAULTS = ("drop", "error", "truncate", "cut_before", "garble", "html", "null_data", "non_utf8")
HTML_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"


@dataclass
class LoggedRequest:
    method: str
    path: str
    url: str
    status: int  # 0 for a dropped connection
    headers: dict[str, str]
    body: bytes


class EmulatorServer:
    """Routes + socket + latency + faults + request log. Subclasses register routes."""

    name = "emulator"

    def __init__(self, *, latency: float = 0.0, faults: FaultPlan | None = None) -> None:
        self.latency = latency
        self.faults = faults or FaultPlan()
        self.log: list[LoggedRequest] = []
        self.in_flight = InFlight()
        self.gauges: list[InFlight] = [self.in_flight]  # add a shared one to measure several servers
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._log_lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._scheme = "http"

    # -- routing ---------------------------------------------------------------------------
    def add_route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def dispatch(self, request: Request) -> Response:
        path_matched = False
        for method, pattern, handler in self._routes:
            match = pattern.match(request.path)
            if not match:
                continue
            path_matched = True
            if method == request.method:
                return handler(request, **match.groupdict())
        if path_matched:
            return self.error_response(405, "Method not allowed")
        return self.error_response(404, f"No route for {request.method} {request.path}")

    def error_response(self, status: int, message: str) -> Response:
        """The API's error body shape; subclasses override."""
        return Response(status, {"message": message})

    def before_dispatch(self, request: Request) -> Response | None:
        """Hook for authentication and rate limiting; return a response to short-circuit."""
        return None

    def decorate(self, request: Request, response: Response) -> None:
        """Hook to add headers (rate-limit state, request ids) to every response."""

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if not self._httpd:
            raise RuntimeError(f"{self.name} is not running")
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    def start(self, tls: ssl.SSLContext | None = None) -> EmulatorServer:
        """Serve on an ephemeral port of 127.0.0.1; over HTTPS with this server context if given."""
        handler_class = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
            self._scheme = "https"
        self._httpd.daemon_threads = True
        self._httpd.request_queue_size = 128
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request log -----------------------------------------------------------------------
    def record(self, entry: LoggedRequest) -> None:
        with self._log_lock:
            self.log.append(entry)

    def requests(self, method: str | None = None, path: str | None = None) -> list[LoggedRequest]:
        """Logged requests, optionally filtered by method and a path regex (searched)."""
        with self._log_lock:
            entries = list(self.log)
        return [
            e for e in entries if (method is None or e.method == method) and (path is None or re.search(path, e.path))
        ]

    def count(self, method: str | None = None, path: str | None = None) -> int:
        return len(self.requests(method, path))

    def counts_by_route(self) -> Counter[str]:
        """Counts keyed by 'METHOD /path' with ids collapsed, for benchmark reports."""
        counter: Counter[str] = Counter()
        for entry in self.requests():
            counter[f"{entry.method} {_collapse_ids(entry.path)}"] += 1
        return counter

    def reset_log(self) -> None:
        with self._log_lock:
            self.log.clear()


def _collapse_ids(path: str) -> str:
    """'/v2/teams/63374eee-…' -> '/v2/teams/{id}': segments of 6+ characters with a digit."""
    return "/".join(
        "{id}" if len(segment) >= 6 and any(c.isdigit() for c in segment) else segment for segment in path.split("/")
    )


def _make_handler(server: EmulatorServer) -> type[BaseHTTPRequestHandler]:
    class _Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes; with Nagle on, the body of a small response waits
        # for the client's delayed ACK (~40 ms per request on a keep-alive connection).
        disable_nagle_algorithm = True
        server_version = server.name

        def log_message(self, format: str, *args: Any) -> None:  # silence stderr
            return

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            for gauge in server.gauges:
                gauge.enter()
            try:
                self._serve(body)
            finally:
                for gauge in server.gauges:
                    gauge.leave()

        def _serve(self, body: bytes) -> None:
            parts = urlsplit(self.path)
            request = Request(
                method=self.command,
                path=parts.path,
                query=parse_qs(parts.query, keep_blank_values=True),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                url=self.path,
            )
            if server.latency:
                time.sleep(server.latency)
            verdict, forced = server.faults.decide(request)
            if verdict == "drop":
                server.record(LoggedRequest(request.method, request.path, request.url, 0, request.headers, body))
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(2)
                return
            if forced is not None:
                response = forced
            elif verdict == "cut_before":
                response = Response(200, {"ok": True, "data": [], "entities": [], "note": "x" * 64})
            elif verdict == "html":
                response = Response(200, HTML_PAGE, {"Content-Type": "text/html"})
            else:
                response = server.before_dispatch(request) or _safe_dispatch(server, request)
            server.decorate(request, response)
            raw = _encode(response.body)
            if verdict == "null_data":
                raw = b'{"data":null}'
            elif verdict == "non_utf8":
                raw = raw[: len(raw) // 2] + b"\xff\xfe\xc3(" + raw[len(raw) // 2 :]
            elif verdict == "garble" and len(raw) > 2:
                raw = raw[: len(raw) // 2]
            cut = verdict in ("truncate", "cut_before")
            server.record(
                LoggedRequest(request.method, request.path, request.url, response.status, request.headers, body)
            )
            self.send_response(response.status)
            if "Content-Type" not in response.headers:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command == "HEAD":
                return
            if cut:  # fewer bytes than announced, then the connection closes
                self.wfile.write(raw[: len(raw) // 2])
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_WR)
                return
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return _Handler


def _safe_dispatch(server: EmulatorServer, request: Request) -> Response:
    try:
        return server.dispatch(request)
    except json.JSONDecodeError:
        return server.error_response(400, "Malformed JSON body")
    except Exception as exc:  # an emulator bug must show up as a 500, not a hung client
        return server.error_response(500, f"Emulator error: {type(exc).__name__}: {exc}")


def _encode(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    return json.dumps(body, separators=(",", ":")).encode("utf-8")
