"""Load generation for the bench: percentiles, signed bodies, an open-loop generator and wrk.

Pure standard library (asyncio streams, no HTTP client package), so the generator costs little
CPU on the same two cores it measures, and nothing here imports Django.

Two kinds of load:

* **closed loop** (`wrk`, or `closed_loop` as a fallback): N connections, each sends its next
  request when the previous one answered. Right for *throughput at saturation*; its latencies
  suffer from coordinated omission and are reported for information only.
* **open loop** (`open_loop`): request *i* is due at `t0 + i / rate`, whatever happened to the
  earlier ones, and its latency is measured from that intended send time. A stall therefore
  shows up in the percentiles of every request it delayed, as it would for Meta.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

# --- Pure helpers (tested in tests/test_bench_harness.py) ---------------------------------------


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list: the smallest value with >= pct % at or below.

    p100 is the maximum; an empty list gives NaN. Nearest rank (no interpolation) never reports a
    latency that no request had.
    """
    if not sorted_values:
        return math.nan
    if pct <= 0:
        return sorted_values[0]
    # Rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point, not 999.
    rank = math.ceil(round(pct * len(sorted_values) / 100.0, 9))
    return sorted_values[min(len(sorted_values), max(rank, 1)) - 1]


def summarize(latencies_ms: list[float]) -> dict:
    values = sorted(latencies_ms)
    return {
        "count": len(values),
        "mean_ms": round(sum(values) / len(values), 3) if values else math.nan,
        "p50_ms": round(percentile(values, 50), 3),
        "p90_ms": round(percentile(values, 90), 3),
        "p95_ms": round(percentile(values, 95), 3),
        "p99_ms": round(percentile(values, 99), 3),
        "p99_9_ms": round(percentile(values, 99.9), 3),
        "max_ms": round(values[-1], 3) if values else math.nan,
    }


def sign(body: bytes, secret: str) -> str:
    """`X-Hub-Signature-256` for these exact bytes (same rule as whatsapp.signatures.sign)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def wire(obj) -> bytes:
    """Compact JSON with non-ASCII as lowercase \\uXXXX escapes: the bytes Meta sends and signs."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=True).encode()


def http_request(method: str, path: str, port: int, body: bytes = b"",
                 headers: dict[str, str] | None = None) -> bytes:
    """One HTTP/1.1 request as raw bytes (`Connection: close`: one request per connection)."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def signed_post(path: str, port: int, body: bytes, secret: str) -> bytes:
    return http_request("POST", path, port, body, {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": sign(body, secret),
        "User-Agent": "facebookexternalua",
    })


_STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3})")


def status_of(response_head: bytes) -> int:
    match = _STATUS.match(response_head)
    return int(match.group(1)) if match else 0


# --- The asyncio client -----------------------------------------------------------------------


@dataclass
class Result:
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0          # non-2xx answers, connection errors and timeouts
    timeouts: int = 0
    sent: int = 0
    elapsed_s: float = 0.0
    max_in_flight: int = 0
    bodies: list[bytes] = field(default_factory=list)  # kept only when asked (keep_bodies)

    def as_dict(self) -> dict:
        out = summarize(self.latencies_ms)
        out.update(
            sent=self.sent, errors=self.errors, timeouts=self.timeouts,
            statuses={str(k): v for k, v in sorted(self.statuses.items())},
            elapsed_s=round(self.elapsed_s, 3),
            achieved_rps=round(self.sent / self.elapsed_s, 1) if self.elapsed_s else 0.0,
            max_in_flight=self.max_in_flight,
        )
        return out


async def _exchange(port: int, request: bytes, timeout: float) -> tuple[int, bytes]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), timeout)  # server closes: one response
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return status_of(head), body


class _Recorder:
    def __init__(self, result: Result, keep_bodies: bool) -> None:
        self.result = result
        self.keep_bodies = keep_bodies
        self.in_flight = 0

    async def one(self, port: int, request: bytes, started: float, timeout: float) -> None:
        r = self.result
        self.in_flight += 1
        r.max_in_flight = max(r.max_in_flight, self.in_flight)
        status = 0
        try:
            status, body = await _exchange(port, request, timeout)
            if self.keep_bodies:
                r.bodies.append(body)
        except TimeoutError:
            r.timeouts += 1
        except OSError:
            pass
        finally:
            self.in_flight -= 1
        r.latencies_ms.append((time.perf_counter() - started) * 1000.0)
        r.statuses[status] = r.statuses.get(status, 0) + 1
        if not 200 <= status < 300:
            r.errors += 1


async def _open_loop(port: int, requests: list[bytes], rate: float, duration: float,
                     timeout: float) -> Result:
    result = Result()
    recorder = _Recorder(result, keep_bodies=False)
    total = max(1, int(rate * duration))
    tasks = []
    t0 = time.perf_counter() + 0.05
    for i in range(total):
        intended = t0 + i / rate
        delay = intended - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        # Latency counts from the intended send time, so a late loop or a stalled server is
        # charged to the requests it delayed (no coordinated omission).
        tasks.append(asyncio.ensure_future(
            recorder.one(port, requests[i % len(requests)], intended, timeout)))
        result.sent += 1
    await asyncio.gather(*tasks)
    result.elapsed_s = time.perf_counter() - t0
    return result


def open_loop(port: int, requests: list[bytes], *, rate: float, duration: float,
              timeout: float = 10.0) -> Result:
    """Sends `rate` requests per second for `duration` seconds on a fixed timeline."""
    return asyncio.run(_open_loop(port, requests, rate, duration, timeout))


async def _closed_loop(port: int, requests: list[bytes], concurrency: int, duration: float | None,
                       timeout: float, keep_bodies: bool) -> Result:
    result = Result()
    recorder = _Recorder(result, keep_bodies)
    next_index = 0
    t0 = time.perf_counter()
    deadline = t0 + duration if duration else None

    async def worker() -> None:
        nonlocal next_index
        while True:
            if deadline is None:
                if next_index >= len(requests):
                    return
            elif time.perf_counter() >= deadline:
                return
            i = next_index
            next_index += 1
            result.sent += 1
            await recorder.one(port, requests[i % len(requests)], time.perf_counter(), timeout)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.elapsed_s = time.perf_counter() - t0
    return result


def closed_loop(port: int, requests: list[bytes], *, concurrency: int,
                duration: float | None = None, timeout: float = 30.0,
                keep_bodies: bool = False) -> Result:
    """`concurrency` connections back to back: for `duration` s (cycling), or each request once."""
    return asyncio.run(_closed_loop(port, requests, concurrency, duration, timeout, keep_bodies))


# --- wrk (closed loop, in C: the cheapest way to saturate two cores from the same box) ---------

WRK_INSTALL_HINT = "apt-get install -y wrk"

_WRK_LUA = r"""
local bodies = {%(bodies)s}
local sigs = {%(sigs)s}
local reqs = {}
local idx = 0
init = function(args)
  for i = 1, #bodies do
    reqs[i] = wrk.format("POST", "%(path)s", {
      ["Content-Type"] = "application/json",
      ["X-Hub-Signature-256"] = sigs[i],
      ["User-Agent"] = "facebookexternalua",
    }, bodies[i])
  end
  idx = math.random(#reqs)
end
request = function()
  idx = idx %% #reqs + 1
  return reqs[idx]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%%d,"duration_us":%%d,"connect_errors":%%d,"read_errors":%%d,' ..
    '"write_errors":%%d,"non2xx":%%d,"timeouts":%%d,"p50_us":%%d,"p99_us":%%d,' ..
    '"p99_9_us":%%d,"max_us":%%d,"mean_us":%%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    latency.mean))
end
"""


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def _lua_long_string(text: str) -> str:
    level = 1
    while f"]{'=' * level}]" in text:
        level += 1
    eq = "=" * level
    return f"[{eq}[{text}]{eq}]"


def wrk_run(port: int, path: str, bodies: list[bytes], secret: str, *, connections: int,
            duration: float, threads: int = 2) -> dict:
    """Closed-loop saturation with wrk; returns requests/s, errors and wrk's latency summary."""
    lua = _WRK_LUA % {
        "bodies": ",\n".join(_lua_long_string(b.decode("ascii")) for b in bodies),
        "sigs": ",\n".join(f'"{sign(b, secret)}"' for b in bodies),
        "path": path,
    }
    fd, script = tempfile.mkstemp(prefix="bench-wrk-", suffix=".lua")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(lua)
        proc = subprocess.run(
            ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, int(duration))}s",
             "--timeout", "10s", "-s", script, f"http://127.0.0.1:{port}{path}"],
            capture_output=True, text=True, timeout=duration + 60,
        )
    finally:
        os.unlink(script)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): "
                           f"{proc.stdout[-500:]} {proc.stderr[-500:]}")
    raw = json.loads(line[len("BENCHJSON "):])
    seconds = raw["duration_us"] / 1e6
    errors = (raw["connect_errors"] + raw["read_errors"] + raw["write_errors"] + raw["non2xx"]
              + raw["timeouts"])
    return {
        "tool": "wrk", "connections": connections, "threads": threads,
        "requests": raw["requests"], "elapsed_s": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "errors": errors, "non2xx": raw["non2xx"], "timeouts": raw["timeouts"],
        # Closed loop: these latencies hide coordinated omission; for information only.
        "p50_ms": raw["p50_us"] / 1000, "p99_ms": raw["p99_us"] / 1000,
        "p99_9_ms": raw["p99_9_us"] / 1000, "max_ms": raw["max_us"] / 1000,
    }


def saturate(port: int, path: str, bodies: list[bytes], secret: str, *, connections: int,
             duration: float) -> dict:
    """Throughput at saturation: wrk when installed, else the (costlier) asyncio closed loop."""
    if wrk_available():
        return wrk_run(port, path, bodies, secret, connections=connections, duration=duration)
    requests = [signed_post(path, port, b, secret) for b in bodies]
    result = closed_loop(port, requests, concurrency=connections, duration=duration)
    out = result.as_dict()
    return {"tool": "python-closed-loop", "connections": connections, "requests": result.sent,
            "elapsed_s": out["elapsed_s"], "rps": out["achieved_rps"], "errors": result.errors,
            "non2xx": result.errors - result.timeouts, "timeouts": result.timeouts,
            "p50_ms": out["p50_ms"], "p99_ms": out["p99_ms"], "p99_9_ms": out["p99_9_ms"],
            "max_ms": out["max_ms"]}
