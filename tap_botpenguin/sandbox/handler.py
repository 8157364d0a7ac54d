"""The sandbox's HTTP side: each request checked, answered, or misbehaved at as scripted.

`Handler` serves one connection on a server thread; the data, faults and clock are the
`Sandbox`'s (`server`). Every answer carries a `Date` header from the sandbox's clock, which a
test may set apart from this machine's (`Inboxes.set_clock`), as an API's clock may be.
"""

from __future__ import annotations

import email.utils
import io
import json
import socket
import struct
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tap_botpenguin.sandbox.faults import LISTING_PATH, Fault, ReceivedRequest

if TYPE_CHECKING:
    from tap_botpenguin.sandbox.server import Sandbox


class Server(ThreadingHTTPServer):
    """The sandbox's listening socket: a thread per connection, none waited for at close."""

    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that vanish mid-request (a killed tap, a timeout) are routine here."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


def envelope(data: Any, *, success: bool = True, message: str = "ok", code: int = 200) -> bytes:
    """The API's answer body: `{success, message, code, data}`."""
    body = {"success": success, "message": message, "code": code, "data": data}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class Handler(BaseHTTPRequestHandler):
    """One connection's requests, answered as the API would (or as a fault says)."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm on, each response
    # would stall ~40 ms on the client's delayed ACK.
    disable_nagle_algorithm = True
    sandbox: Sandbox  # set on the per-server subclass

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests read `Sandbox.requests` instead."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header: the sandbox's clock, which may differ from this machine's."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        return email.utils.format_datetime(self.sandbox.now(), usegmt=True)

    def do_GET(self) -> None:
        """`GET /inbox/direct/chats`: checked, throttled, answered or misbehaved at."""
        split = urlsplit(self.path)
        params = {k: v[0] for k, v in parse_qs(split.query).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        received = ReceivedRequest(time.monotonic(), split.path, params, headers)
        sandbox = self.sandbox
        with sandbox._lock:
            sandbox.requests.append(received)
        if split.path != LISTING_PATH:
            self._reply(
                received,
                HTTPStatus.NOT_FOUND,
                envelope(None, success=False, message="Not Found", code=404),
            )
            return
        cached = None if sandbox.cache is None else sandbox.cache.lookup(self.path, headers)
        if cached is not None:  # the cache answers: the API never sees the request
            self._reply(received, HTTPStatus.OK, *cached)
            return
        if sandbox.latency:
            sandbox._stopping.wait(sandbox.latency)
        if sandbox.before_request is not None:
            sandbox.before_request(sandbox)
        if sandbox.before_answer is not None:
            sandbox.before_answer(sandbox, received)
        with sandbox._lock:
            token = sandbox._authenticate(headers)
            if token is None:
                self._reply(
                    received,
                    HTTPStatus.UNAUTHORIZED,
                    envelope(
                        None,
                        success=False,
                        message="Unauthorized: invalid or missing token",
                        code=401,
                    ),
                )
                return
            wait = sandbox._retry_after(token)
            fault = None if wait is not None else sandbox._take_fault(params)
            problem = sandbox._validate(token, params)
            overrun = None if problem is not None else sandbox.past_bound(params)
        if overrun is not None:
            body = envelope(None, success=False, message=overrun, code=HTTPStatus.IM_A_TEAPOT)
            self._reply(received, HTTPStatus.IM_A_TEAPOT, body)
        elif wait is not None:
            body = envelope(None, success=False, message="Too Many Requests", code=429)
            self._reply(received, HTTPStatus.TOO_MANY_REQUESTS, body, {"Retry-After": str(wait)})
        elif fault is not None and self._misbehave(received, fault, params, problem):
            return
        elif problem is not None:
            self._reply(
                received,
                HTTPStatus.BAD_REQUEST,
                envelope(None, success=False, message=problem, code=400),
            )
        else:
            status, body = sandbox.answer(params["botId"], params["type"], int(params["page"]))
            if sandbox.cache is not None and status == HTTPStatus.OK:
                sandbox.cache.store(self.path, body)
            self._reply(received, status, body, {"X-Cache": "MISS"} if sandbox.cache else None)

    def _misbehave(
        self, received: ReceivedRequest, fault: Fault, params: dict[str, str], problem: str | None
    ) -> bool:
        """Apply `fault`; False when the request should then be answered normally."""
        sandbox = self.sandbox
        if fault.kind == "status":
            extra = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
            body = envelope(None, success=False, message=fault.message, code=fault.status)
            self._reply(received, fault.status, body, extra)
        elif fault.kind == "envelope":
            code = fault.code if fault.code is not None else 500
            self._reply(
                received,
                HTTPStatus.OK,
                envelope([], success=False, message=fault.message, code=code),
            )
        elif fault.kind == "body":
            self._reply(received, fault.status, fault.body, content_type="text/html; charset=utf-8")
        elif fault.kind == "reset":
            received.status = -1
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
        elif fault.kind == "hang":
            sandbox._stopping.wait(fault.delay)
            return False
        elif fault.kind == "redirect":
            self._reply(received, fault.status, b"", {"Location": fault.location + self.path})
        elif problem is not None:
            return False
        elif fault.kind == "truncated":
            _, body = sandbox.answer(params["botId"], params["type"], int(params["page"]))
            received.status = -2
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif fault.kind == "trickle":
            status, body = sandbox.answer(params["botId"], params["type"], int(params["page"]))
            self._trickle(received, status, body, fault.delay)
        elif fault.kind in {"ignore_page", "repeat"}:
            page = 1 if fault.kind == "ignore_page" else max(int(params["page"]) - 1, 1)
            self._reply(received, *sandbox.answer(params["botId"], params["type"], page))
        elif fault.kind == "data":
            assert fault.transform is not None, "a 'data' fault needs a transform"
            records = sandbox.page(params["botId"], params["type"], int(params["page"]))
            # A copy as served: the transform may change it freely.
            records = json.loads(json.dumps(sandbox.served(records)))
            self._reply(received, HTTPStatus.OK, envelope(fault.transform(records)))
        else:
            msg = f"unknown fault kind {fault.kind!r}"
            raise ValueError(msg)
        return True

    def _trickle(self, received: ReceivedRequest, status: int, body: bytes, delay: float) -> None:
        """Answer as `_reply` would, one byte at a time (a slow proxy, a hostile server)."""
        out, buffer = self.wfile, io.BytesIO()
        self.wfile = buffer
        self._reply(received, status, body)
        self.wfile = out
        for byte in buffer.getvalue():
            if self.sandbox._stopping.wait(delay):
                break
            out.write(bytes([byte]))
            out.flush()
        self.close_connection = True

    def _reply(
        self,
        received: ReceivedRequest,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json; charset=utf-8",
    ) -> None:
        received.status = int(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        with self.sandbox._answered:
            received.answered_at = time.monotonic()
            self.sandbox._answered.notify_all()
