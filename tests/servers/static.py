"""A static file server with HTTP Range support, as object stores and CDNs answer.

Python's ``http.server`` ignores ``Range``; fsspec's HTTP filesystem reads TIFF tiles and
zarr chunks by range, so this handler serves ``206 Partial Content`` like a real server.
"""

from __future__ import annotations

import os
import re
import threading
import time
from http.server import SimpleHTTPRequestHandler
from typing import Any

from tests.servers import LoopbackServer

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """Serves files under ``directory``; honours single byte ranges."""

    requests_seen: list[tuple[str, str | None]]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        header = self.headers.get("Range")
        server: Any = self.server
        server.requests_seen.append((self.path, header))
        path = self.translate_path(self.path)
        if not header or not os.path.isfile(path):
            return super().do_GET()
        with server.lock:
            server.active += 1
            server.peak_active = max(server.peak_active, server.active)
        try:
            time.sleep(server.delay_s)  # latency, as an object store far away has
            self._send_range(header, path)
        finally:
            with server.lock:
                server.active -= 1

    def _send_range(self, header: str, path: str) -> None:
        server: Any = self.server
        match = _RANGE.match(header.strip())
        size = os.path.getsize(path)
        if not match:
            self.send_error(416, "bad range")
            return
        start_text, end_text = match.groups()
        if start_text == "":
            start, end = max(0, size - int(end_text)), size - 1
        else:
            start = int(start_text)
            end = min(int(end_text), size - 1) if end_text else size - 1
        if start >= size or start > end:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return
        with open(path, "rb") as fh:
            fh.seek(start)
            body = fh.read(end - start + 1)
        with server.lock:
            short, server.short_reads = server.short_reads > 0, max(0, server.short_reads - 1)
        if short and end > start:  # fault: a well-formed answer holding half the range
            end = start + (end - start) // 2
            body = body[: end - start + 1]
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def end_headers(self) -> None:
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()


class StaticServer(LoopbackServer):
    """``with StaticServer(folder) as url:`` serves ``folder`` at ``http://127.0.0.1:PORT``.

    Switches on ``server.httpd``: ``delay_s`` before each range answer; ``short_reads``,
    how many next range answers carry only half the bytes asked. ``peak_active`` counts
    the most range requests served at once; ``requests_seen`` every (path, Range).
    """

    def __init__(self, directory: str, delay_s: float = 0.0) -> None:
        handler = lambda *a, **k: RangeRequestHandler(*a, directory=directory, **k)  # noqa: E731
        super().__init__(handler)  # type: ignore[arg-type]
        httpd: Any = self.httpd
        httpd.requests_seen = []
        httpd.lock = threading.Lock()
        httpd.delay_s, httpd.short_reads = delay_s, 0
        httpd.active = httpd.peak_active = 0

    def __enter__(self) -> str:  # type: ignore[override]
        super().__enter__()
        return self.url


class _PlainHandler(SimpleHTTPRequestHandler):
    """The standard library's file handler, as ``python -m http.server`` runs it: no Range
    support; every (method, Range header) asked is logged in ``server.requests_seen``."""

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):  # a client that read no body
            self.close_connection = True

    def send_head(self) -> Any:
        server: Any = self.server
        server.requests_seen.append((self.command, self.headers.get("Range")))
        return super().send_head()


class PlainServer(LoopbackServer):
    """``with PlainServer(folder) as server:`` serves ``folder`` without Range support, as
    many static hosts do; ``server.requests`` lists every (method, Range) asked. Its listen
    backlog is raised from http.server's 5, so a burst of connections is not dropped."""

    def __init__(self, directory: str, backlog: int = 256) -> None:
        handler = lambda *a, **k: _PlainHandler(*a, directory=directory, **k)  # noqa: E731
        super().__init__(handler)  # type: ignore[arg-type]
        httpd: Any = self.httpd
        httpd.requests_seen = []
        httpd.socket.listen(backlog)

    @property
    def requests(self) -> list[tuple[str, str | None]]:
        return self.httpd.requests_seen  # type: ignore[attr-defined]
