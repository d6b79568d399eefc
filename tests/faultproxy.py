"""A loopback HTTP proxy between boto3 and the moto server that counts calls and injects faults.

boto3 is pointed at the proxy with ``AWS_ENDPOINT_URL``; the proxy forwards each request to moto
one at a time (IAM decides who wins a race atomically; moto's dictionaries need the help) and
records its service, operation and whether it writes. Rules make chosen calls fail the way AWS
and networks fail: a ``Throttling`` 400, a 500, a connection reset before or after moto saw the
request, a ``NoSuchEntity`` while IAM catches up, or the caller killed right after a write.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import struct
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOOPBACK = ("127.0.0.1", "localhost")
READ_PREFIXES = ("Get", "List", "Describe", "Head")
# Headers that belong to one hop; the proxy sets its own.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "te", "upgrade"}
_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/")

THROTTLE = "throttle"
SERVER_ERROR = "500"
RESET_BEFORE = "reset-before"
RESET_AFTER = "reset-after"
NOT_YET = "no-such-entity"
KILL_AFTER = "kill-after"
ECHO_SECRETS = "echo-secrets"


@dataclass
class Call:
    service: str
    operation: str
    write: bool
    fault: str = ""


@dataclass
class Rule:
    """Fail ``times`` matching calls (after letting ``skip`` of them through) with ``fault``.

    ``operation`` is an API name (``CreateRole``), ``"write"`` for any write, or ``"*"``.
    """

    fault: str
    operation: str = "*"
    times: int = 1
    skip: int = 0
    seen: int = 0

    def matches(self, call: Call) -> bool:
        if self.operation == "write":
            return call.write
        return self.operation in ("*", call.operation)

    def fires(self, call: Call) -> bool:
        if not self.matches(call):
            return False
        self.seen += 1
        return self.skip < self.seen <= self.skip + self.times


@dataclass
class FaultProxy:
    upstream: str
    calls: list[Call] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    victim: int | None = None
    headers_seen: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        target = urlsplit(self.upstream)
        if target.hostname not in LOOPBACK:
            raise ValueError(f"the fault proxy only forwards to loopback, not {target.hostname}")
        self._upstream = (target.hostname, target.port or 80)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset(self, *rules: Rule) -> None:
        with self._lock:
            self.calls.clear()
            self.headers_seen.clear()
            self.rules = list(rules)
            self.victim = None

    @property
    def writes(self) -> list[str]:
        return [call.operation for call in self.calls if call.write]

    @property
    def faults(self) -> list[str]:
        return [call.fault for call in self.calls if call.fault]

    # -- one request -------------------------------------------------------------------------

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        call = describe(request.command, request.path, dict(request.headers), body)
        with self._lock:
            self.calls.append(call)
            self.headers_seen.append(dict(request.headers))
            rule = next((rule for rule in self.rules if rule.fires(call)), None)
            call.fault = rule.fault if rule else ""
            if rule is None or rule.fault in (RESET_AFTER, KILL_AFTER):
                status, headers, payload = self._forward(request, body)
        if rule is None:
            _respond(request, status, headers, payload)
        elif rule.fault in (RESET_BEFORE, RESET_AFTER):
            _reset(request)
        elif rule.fault == KILL_AFTER:
            self._kill()
            _reset(request)
        else:
            _respond(request, *_injected(rule.fault, call, request))

    def _forward(self, request: BaseHTTPRequestHandler, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
            connection.request(request.command, request.path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders() if k.lower() not in {*HOP_BY_HOP, "server", "date"}]
            if request.command == "HEAD":
                kept.append(("Content-Length", response.getheader("Content-Length") or "0"))
            return response.status, kept, payload
        finally:
            connection.close()

    def _kill(self) -> None:
        if self.victim is None:
            raise RuntimeError("kill-after fired before the test named the process to kill")
        os.kill(self.victim, signal.SIGKILL)


def describe(method: str, path: str, headers: dict[str, str], body: bytes) -> Call:
    """Which API a request calls: the query ``Action``, the JSON target, or the REST method and path."""
    lowered = {k.lower(): v for k, v in headers.items()}
    signed_for = _SERVICE.search(lowered.get("authorization", ""))
    service = signed_for.group(1) if signed_for else "?"
    if lowered.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        action = parse_qs(body.decode("utf-8", "replace")).get("Action", ["?"])[0]
        return Call(service, action, not action.startswith(READ_PREFIXES))
    if "x-amz-target" in lowered:
        action = lowered["x-amz-target"].rsplit(".", 1)[-1]
        return Call(service, action, not action.startswith(READ_PREFIXES))
    return Call(service, f"{method} {urlsplit(path).path}", method not in ("GET", "HEAD"))


def _handler_for(proxy: FaultProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        was_reset = False

        def _any(self) -> None:
            proxy.handle(self)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _any

        def finish(self) -> None:
            if not self.was_reset:
                super().finish()

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the test reads ``proxy.calls`` instead."""

    return Handler


def _respond(request: BaseHTTPRequestHandler, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
    request.send_response(status)
    for key, value in headers:
        request.send_header(key, value)
    if request.command != "HEAD":
        request.send_header("Content-Length", str(len(payload)))
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(payload)


def _reset(request: BaseHTTPRequestHandler) -> None:
    """Drop the connection with a TCP reset: no status line, no bytes."""
    request.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    request.connection.close()
    request.was_reset = True  # type: ignore[attr-defined]
    request.close_connection = True


def _injected(fault: str, call: Call, request: BaseHTTPRequestHandler) -> tuple[int, list[tuple[str, str]], bytes]:
    if fault == THROTTLE:
        return _query_error(400, "Throttling", "Rate exceeded")
    if fault == SERVER_ERROR:
        return _query_error(500, "InternalFailure", "We encountered an internal error. Please try again.")
    if fault == NOT_YET:
        return _query_error(404, "NoSuchEntity", f"The {call.operation} target cannot be found yet.")
    if fault == ECHO_SECRETS:
        # A hostile or broken endpoint that quotes the request's secrets back in its error message.
        echo = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
        bare = request.headers.get("X-Amz-Security-Token", "")
        return _query_error(403, "AccessDenied", f"the security token {bare} is not valid; you sent {echo}")
    raise ValueError(f"unknown fault {fault}")


def _query_error(status: int, code: str, message: str) -> tuple[int, list[tuple[str, str]], bytes]:
    kind = "Receiver" if status >= 500 else "Sender"
    body = (
        '<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/">'
        f"<Error><Type>{kind}</Type><Code>{code}</Code><Message>{_xml(message)}</Message></Error>"
        "<RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
    ).encode()
    return status, [("Content-Type", "text/xml")], body


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_running: dict[str, FaultProxy] = {}


def shared(upstream: str) -> FaultProxy:
    """One proxy per moto server for the whole test session, cleared by each test."""
    if upstream not in _running:
        _running[upstream] = FaultProxy(upstream).start()
    proxy = _running[upstream]
    proxy.reset()
    return proxy
