"""The one HTTP port of the local stack. Mounted handlers (a fake Twilio API, the virtual clock) get
their path prefixes first; everything else goes to the API Gateway emulator."""

from __future__ import annotations

import socket
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import urlsplit

from infra.local.web import HttpRequest, HttpResponse, RouteHandler, json_response


class Gateway:
    def __init__(self, host: str, port: int, fallback: RouteHandler, log: TextIO | None = None) -> None:
        """Binds at once (so `port` is known, even for port 0) but serves only after `start()`."""
        self._mounts: list[tuple[str, RouteHandler]] = []
        self._fallback = fallback
        self._log = log
        self._server = _Server((host, port), _RequestHandler)
        self._server.gateway = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def mount(self, prefix: str, handler: RouteHandler) -> None:
        """Serve `prefix` and everything under it with `handler` (first mounted, first asked)."""
        self._mounts.append(("/" + prefix.strip("/"), handler))

    def set_fallback(self, handler: RouteHandler) -> None:
        self._fallback = handler

    def dispatch(self, request: HttpRequest) -> HttpResponse:
        for prefix, handler in self._mounts:
            if request.path == prefix or request.path.startswith(prefix + "/"):
                response = handler(request)
                if response is not None:
                    return response
        response = self._fallback(request)
        return response if response is not None else json_response(404, {"message": "Not Found"})

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="gateway", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def log(self, line: str) -> None:
        print(line, file=self._log or sys.stderr, flush=True)


class _Server(ThreadingHTTPServer):
    # Requests in flight must not keep the process alive after Ctrl-C.
    daemon_threads = True
    # Connections the kernel holds until a thread accepts them; socketserver's 5 resets the rest of a burst
    # (50 clients at once), where API Gateway would take them all.
    request_queue_size = 128
    gateway: Gateway

    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any) -> None:
        """A client that hung up mid-request is routine under load; anything else is a bug worth a traceback."""
        if isinstance(sys.exception(), ConnectionError):
            self.gateway.log(f"{client_address}: the client closed the connection")
            return
        super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as curl and urllib expect of API Gateway

    def _serve(self) -> None:
        started = time.monotonic()
        gateway = self.server.gateway
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self.close_connection = True  # the unread body must not be taken for the next request
            self._send(json_response(411, {"message": "Length Required"}))
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            self._send(json_response(400, {"message": "Bad Request"}))
            return
        url = urlsplit(self.path)
        request = HttpRequest(
            method=self.command.upper(),
            path=url.path or "/",
            query=url.query,
            headers=tuple((name, value) for name, value in self.headers.items()),
            body=self.rfile.read(length) if length > 0 else b"",
            source_ip=self.client_address[0],
            protocol=self.request_version,
        )
        try:
            response = gateway.dispatch(request)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            response = json_response(500, {"message": "local gateway error"})
        elapsed = (time.monotonic() - started) * 1000
        # Logged before the answer goes out, so whoever got the answer can also find the log line.
        gateway.log(f"{request.method} {self.path} -> {response.status} ({elapsed:.0f} ms)")
        self._send(response)

    def _send(self, response: HttpResponse) -> None:
        self.send_response_only(response.status)
        self.send_header("Date", self.date_time_string())
        for name, value in response.headers:
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "date"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: object) -> None:
        # Only errors reach here (malformed requests); the access log is written by _serve.
        self.server.gateway.log(f"{self.address_string()} {format % args}")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve
