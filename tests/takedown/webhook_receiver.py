"""A real HTTP server on loopback that receives webhooks: the fixture `webhook_receiver`.

It records every request (method, path, headers, body) and, when given the contact's `whsec_` secret, checks
each one's Standard Webhooks signature with the standardwebhooks library (`Received.verified`, `.error`). What
it answers is scripted: `respond(...)` sets the answer for every request from now on, `then(...)` queues
answers for the next requests only (a 500 then the default 200, say). An answer can be slow (`delay`), a
redirect (`status=302, location=...`) or carry a JSON body (`body={"reference": ...}`, as a partner's ntd
answers). The server runs in threads of the test process, so a worker in another process reaches it too.
A test module gets the fixture by listing this module in pytest_plugins (tests/conftest.py) or by importing
`webhook_receiver_fixture`.

    def test_x(webhook_receiver):
        webhook_receiver.secret = secret
        webhook_receiver.then(500)          # the first request fails, later ones get 200
        ...
        [first, second] = webhook_receiver.wait_for(2)
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a worker killed mid-request, a time-out) is not an error of the receiver."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: Any = None  # JSON-able; None: {"ok": true}
    location: str = ""
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    verified: bool | None  # None: no secret was set to check with
    error: str = ""
    answered: int = 0

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")


class Receiver:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.secret: str | None = None
        self.requests: list[Received] = []
        self._default = Answer()
        self._script: list[Answer] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                receiver._handle(self)

            def do_GET(self) -> None:  # noqa: N802
                receiver._handle(self)

            def do_PUT(self) -> None:  # noqa: N802
                receiver._handle(self)

        self.server = _QuietServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.host, self.port = self.server.server_address[:2]
        self._thread = threading.Thread(target=self.server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()

    # --- configuration ------------------------------------------------------------------------------------

    def url(self, path: str = "/hook") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def respond(self, status: int = 200, *, body: Any = None, location: str = "", delay: float = 0.0,
                headers: dict[str, str] | None = None) -> None:
        """The answer to every request from now on (after any queued with `then`)."""
        self._default = Answer(status, body, location, delay, headers or {})

    def then(self, status: int = 200, *, body: Any = None, location: str = "", delay: float = 0.0,
             headers: dict[str, str] | None = None, times: int = 1) -> None:
        """Answer the next `times` requests so, before the default answer."""
        with self._lock:
            self._script.extend([Answer(status, body, location, delay, headers or {})] * times)

    # --- what arrived -------------------------------------------------------------------------------------

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        """Wait until at least `count` requests arrived; all of them so far."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self.requests)} webhook requests arrived, not {count}, "
                                         f"within {timeout} s")
                self._arrived.wait(left)
            return list(self.requests)

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.requests)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- serving ------------------------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in handler.headers.items()}
        verified, error = None, ""
        if self.secret:
            try:
                Webhook(self.secret).verify(body, headers, json_parse=False)
                verified = True
            except WebhookVerificationError as failure:
                verified, error = False, str(failure)
        with self._lock:
            answer = self._script.pop(0) if self._script else self._default
            received = Received(handler.command, handler.path, headers, body, verified, error, answer.status)
            self.requests.append(received)
            self._arrived.notify_all()
        if answer.delay:
            time.sleep(answer.delay)
        payload = json.dumps({"ok": True} if answer.body is None else answer.body).encode()
        try:
            handler.send_response(answer.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            if answer.location:
                handler.send_header("Location", answer.location)
            for name, value in answer.headers.items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:  # the client gave up (a time-out test)
            pass


def closed_port_url(path: str = "/hook") -> str:
    """An address on loopback where nothing listens: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


@pytest.fixture(name="webhook_receiver")
def webhook_receiver_fixture() -> Iterator[Receiver]:
    """The fixture `webhook_receiver` (named so that a test module can import it without shadowing it)."""
    receiver = Receiver()
    try:
        yield receiver
    finally:
        receiver.stop()
