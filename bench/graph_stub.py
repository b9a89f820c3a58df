"""A local stand-in for the Graph API endpoints the callback path and the pipeline call.

    python -m bench.graph_stub --port 8199 [--latency-ms 0]

Code `code-<waba>` exchanges for token `EAAB-<waba>`, whose debug_token grants that WABA; the
WABA has no phone numbers (the pipeline stops at "choose a number"). Bench only.

`POST /{phone}/messages` answers with a fresh wamid and records when it arrived, per phone
number: `GET /bench/sends` returns {phone_number_id: [epoch seconds, …]} and forgets them (the
outbound phase of bench/run.py counts each number's busiest one-second window from them).
"""

import argparse
import itertools
import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SENDS: dict[str, list[float]] = defaultdict(list)
_sends_lock = threading.Lock()
_wamids = itertools.count(1)


def answer(method: str, path: str, query: dict[str, list[str]]) -> tuple[int, dict]:
    parts = [p for p in path.split("/") if p]
    if parts and parts[0].startswith("v") and parts[0][1:2].isdigit():
        parts = parts[1:]  # drop the Graph version
    q = {k: v[0] for k, v in query.items()}
    if method == "POST" and len(parts) == 2 and parts[1] == "messages":
        with _sends_lock:
            SENDS[parts[0]].append(time.time())
            wamid = f"wamid.STUB{next(_wamids):09d}"
        return 200, {"messaging_product": "whatsapp", "messages": [{"id": wamid}]}
    if parts == ["bench", "sends"]:
        with _sends_lock:
            sends = dict(SENDS)
            SENDS.clear()
        return 200, sends
    if parts == ["oauth", "access_token"]:
        code = q.get("code", "")
        if not code.startswith("code-"):
            return 400, {"error": {"message": "Invalid verification code", "code": 100}}
        return 200, {"access_token": "EAAB-" + code[len("code-"):], "token_type": "bearer"}
    if parts == ["debug_token"]:
        token = q.get("input_token", "")
        waba = token[len("EAAB-"):] if token.startswith("EAAB-") else ""
        return 200, {"data": {
            "app_id": "1531656324571133", "type": "SYSTEM_USER", "is_valid": bool(waba),
            "expires_at": 0, "scopes": ["whatsapp_business_management",
                                        "whatsapp_business_messaging"],
            "granular_scopes": [
                {"scope": "whatsapp_business_management", "target_ids": [waba]},
                {"scope": "whatsapp_business_messaging", "target_ids": [waba]},
            ],
        }}
    if len(parts) == 2 and parts[1] == "phone_numbers":
        return 200, {"data": []}
    if len(parts) == 2 and parts[1] == "subscribed_apps":
        return 200, ({"success": True} if method != "GET" else {"data": []})
    return 200, {"success": True}


def serve(port: int, latency_ms: float) -> None:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if latency_ms:
                time.sleep(latency_ms / 1000.0)
            url = urlsplit(self.path)
            status, body = answer(self.command, url.path, parse_qs(url.query))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _reply

        def log_message(self, *args) -> None:
            pass

    # Keep-alive, as Meta's Graph API (a client that reuses its connections is measured as it
    # runs in production; one that does not still gets Connection: close answered).
    Handler.protocol_version = "HTTP/1.1"
    Handler.disable_nagle_algorithm = True  # headers and body are two writes
    # Concurrent clients (the batch sender) must not overflow the default backlog of 5.
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    serve(args.port, args.latency_ms)
