"""A loopback HTTP proxy that forwards to one upstream server and injects faults.

Put it in front of the static file server or moto's S3 to make any network source meet
trouble: ``error_rate`` of the requests it picks answer 503, ``drop_rate`` lose their
connection before an answer, ``short_rate`` answer with half the body promised. Picks are
deterministic per request and attempt and never more than ``max_consecutive`` in a row for
the same request, so a client that retries each request enough always gets through, and
one that retries a whole batch, or not at all, does not.
"""

from __future__ import annotations

import http.client
import socket
import threading
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

from tests.servers import LoopbackServer

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "host"}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: FaultyProxy

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        proxy = self.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        fault = proxy.fault_for(self.command, self.path, dict(self.headers))
        if fault == "drop":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if fault == "error":
            payload = b"Service Unavailable (injected)"
            self.send_response(503)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        upstream = urlsplit(proxy.upstream)
        connection = http.client.HTTPConnection(upstream.hostname, upstream.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_HEADERS}
        headers["Host"] = self.headers.get("Host", upstream.netloc)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            answer = connection.getresponse()
            data = answer.read()
        finally:
            connection.close()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in _HOP_HEADERS and key.lower() != "content-length":
                self.send_header(key, value)
        length = answer.getheader("Content-Length") if self.command == "HEAD" else None
        self.send_header("Content-Length", length or str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault == "short" and len(data) > 1:
            self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _forward


class FaultyProxy(LoopbackServer):
    """``with FaultyProxy(upstream_url, error_rate=0.3) as proxy:`` forwards
    ``proxy.url`` to ``upstream_url``. ``picks(method, path, headers)`` says which
    requests may meet a fault (default: every GET). ``counts`` tallies requests and
    faults."""

    def __init__(
        self,
        upstream: str,
        *,
        error_rate: float = 0.0,
        drop_rate: float = 0.0,
        short_rate: float = 0.0,
        max_consecutive: int = 2,
        picks: Callable[[str, str, dict[str, str]], bool] | None = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.rates = (("error", error_rate), ("drop", drop_rate), ("short", short_rate))
        self.max_consecutive = max_consecutive
        self.picks = picks or (lambda method, path, headers: method == "GET")
        self.lock = threading.Lock()
        self.attempts: dict[str, int] = {}
        self.streak: dict[str, int] = {}
        self.counts = {"requests": 0, "faults": 0}
        handler = type("Handler", (_Handler,), {"proxy": self})
        super().__init__(handler)

    def __enter__(self) -> FaultyProxy:
        super().__enter__()
        return self

    def fault_for(self, method: str, path: str, headers: dict[str, str]) -> str | None:
        key = f"{method} {path} {headers.get('Range', '')}"
        with self.lock:
            self.counts["requests"] += 1
            if not self.picks(method, path, headers):
                return None
            attempt = self.attempts.get(key, 0)
            self.attempts[key] = attempt + 1
            if self.streak.get(key, 0) >= self.max_consecutive:
                self.streak[key] = 0
                return None
            draw = (zlib.crc32(f"{key}#{attempt}".encode()) % 10_000) / 10_000
            edge = 0.0
            for kind, rate in self.rates:
                edge += rate
                if draw < edge:
                    self.streak[key] = self.streak.get(key, 0) + 1
                    self.counts["faults"] += 1
                    return kind
            self.streak[key] = 0
            return None
