"""A lead event receiver for the tests: a tiny threaded HTTP server that checks the Standard
Webhooks signature the way README's snippet does, answers what the test scripts (500s, a
hang), and keeps every request it got."""

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = "whsec_" + base64.b64encode(b"lead-events-test-secret-32-bytes").decode()
TOLERANCE_SECONDS = 300


def verify(secret: str, headers, body: bytes, now: float | None = None) -> dict:
    """README's verification snippet: raises ValueError unless the signature and timestamp hold."""
    msg_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    if abs((now or time.time()) - int(stamp)) > TOLERANCE_SECONDS:
        raise ValueError("timestamp too old or in the future")
    key = base64.b64decode(secret.removeprefix("whsec_"))
    expected = base64.b64encode(
        hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()).decode()
    given = [s.partition(",")[2] for s in headers["webhook-signature"].split()
             if s.startswith("v1,")]
    if not any(hmac.compare_digest(expected, g) for g in given):
        raise ValueError("bad signature")
    return json.loads(body)


@dataclass
class Got:
    """One request: its headers and body, whether the signature held, what was answered."""

    headers: dict
    body: bytes
    valid: bool
    answered: int | None = None

    @property
    def event(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """`script`: statuses to answer, in order (then 200); "hang" blocks until `release()`.
    `refuse`: event ids always answered 500 (a receiver that cannot take one event)."""

    def __init__(self, script: list | None = None) -> None:
        self.script = list(script or [])
        self.refuse: set[str] = set()
        self.got: list[Got] = []
        self.lock = threading.Lock()
        self.hanging = threading.Event()
        self._release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/lead-events"

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    verify(SECRET, self.headers, body)
                    valid = True
                except (ValueError, KeyError):
                    valid = False
                got = Got(dict(self.headers), body, valid)
                with receiver.lock:
                    receiver.got.append(got)
                    answer = receiver.script.pop(0) if receiver.script else 200
                    if valid and got.event.get("id") in receiver.refuse:
                        answer = 500
                if answer == "hang":
                    receiver.hanging.set()
                    receiver._release.wait(60)
                    answer = 500
                try:
                    self.send_response(answer if valid else 401)
                    self.end_headers()
                    got.answered = answer if valid else 401
                except OSError:
                    pass  # the sender died while we held its request: never acknowledged

            def log_message(self, *args) -> None:
                pass

        return Handler

    def release(self) -> None:
        self._release.set()

    def acknowledged(self) -> list[dict]:
        """The events answered 2xx, in the order they arrived."""
        with self.lock:
            return [g.event for g in self.got if g.answered and 200 <= g.answered < 300]


@contextmanager
def receiving(script: list | None = None) -> Iterator[Receiver]:
    receiver = Receiver(script)
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release()
        receiver.server.shutdown()
        receiver.server.server_close()
