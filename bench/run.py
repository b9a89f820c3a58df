"""Performance bench (issue 8): the webhook, end-to-end processing, tracking codes, the callback
and memory, measured in one run on this machine, each figure beside its target.

    uv run python bench/run.py            # full run (~5 min on 2 cores)
    uv run python bench/run.py --quick    # smoke run (~2 min): same phases, shorter and smaller
    uv run python bench/run.py --json bench/results/latest.json
    uv run python bench/run.py --quick --only lanes   # issue 17: lanes on vs off (bench/lanes.py)

It uses the local PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379), starting them when
they are down (and stopping what it started), with a database of its own (`qualifica_bench`,
or BENCH_DB_NAME: dropped and re-created, migrated) and Redis db 9 (or BENCH_REDIS_URL:
flushed). It starts gunicorn (bench.wsgi: the product plus the reference endpoints),
2 Celery worker processes and a Graph API stub,
and stops every process it started at the end. Traffic goes to 127.0.0.1 only. The lanes
phase (bench/lanes.py) starts its own web server and workers for each mode: lanes on
(`-Q live,sending` + `-Q bulk,maintenance`) and off (WHATSAPP_LANES=false, one queue).

The exit status is 0 when the run completed (whatever the verdicts), 1 when it failed.

Needs `wrk` for the saturation runs (`apt-get install -y wrk`; without it a slower Python
closed loop is used and the report says so). Not a test: CI never runs it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import lanes, loadgen  # noqa: E402

PG_BASE = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
DB_NAME = os.environ.get("BENCH_DB_NAME", "qualifica_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
SECRET = "bench_app_secret_not_real"
WEBHOOK = "/api/v1/whatsapp/webhook"
CALLBACK = "/api/v1/whatsapp/embedded-signup/callback"
NUMBER_A = ("102000000000101", "304000000000101", "5511940001234")   # statuses, inbound
NUMBER_B = ("102000000000202", "304000000000202", "5521970005678")   # echoes, history

# name -> (comparison, target, unit, what)
TARGETS = {
    "webhook_ratio": (">=", 0.9, "x", "webhook saturation / reference view saturation"),
    "fixed_p99_ms": ("<", 50.0, "ms", "webhook p99 at half the reference's saturation rate"),
    "fixed_p99_9_ms": ("<", 200.0, "ms", "webhook p99.9 at half the reference's saturation rate"),
    "fixed_errors": ("==", 0, "", "webhook errors at the fixed rate"),
    "own_half_p99_ms": ("<", 50.0, "ms", "(info) webhook p99 at half its own saturation"),
    "e2e_events_per_s": (">=", 1000.0, "ev/s", "status/message events through 2 worker processes"),
    "e2e_drain_events_per_s": (">=", 1500.0, "ev/s", "same, burst queued first (workers only)"),
    "e2e_lost_or_duplicated": ("==", 0, "", "deliveries or rows lost or duplicated in the burst"),
    "history_seconds": ("<", 1.0, "s", "one 3 MB history chunk, POST to processed"),
    "tracking_redis_p99_ms": ("<", 2.0, "ms", "onboarding_for_code p99, Redis hit"),
    "tracking_db_p99_ms": ("<", 10.0, "ms", "onboarding_for_code p99, DB fallback"),
    "callback_p95_ms": ("<", 3000.0, "ms", "Embedded Signup callback p95 (Graph stub)"),
    "web_rss_mb": ("<", 150.0, "MB", "largest gunicorn worker RSS after the load"),
    "celery_rss_mb": ("<", 200.0, "MB", "largest Celery worker process RSS after the burst"),
    "outbound_sends_per_s": (">=", 300.0, "/s", "sends accepted, 10 numbers, 2 worker processes"),
    "outbound_over_limit": ("==", 0, "", "sends above a number's limit in any 1-s window"),
    **lanes.TARGETS,
}


def log(message: str) -> None:
    print(f"[{dt.datetime.now(dt.UTC):%H:%M:%S}] {message}", flush=True)


# --- Processes ----------------------------------------------------------------------------------

class Processes:
    """Every process the bench starts, each in its own session; stopped by pid at the end."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.started: list[tuple[str, subprocess.Popen]] = []
        self.cleanups: list = []

    def start(self, name: str, argv: list[str], env: dict) -> subprocess.Popen:
        out = open(self.workdir / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.started.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30) -> None:
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)  # the group of a process we started (its own session)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def stop_all(self) -> None:
        for _name, proc in reversed(self.started):
            self.stop(proc)
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as exc:  # keep tearing down the rest
                log(f"cleanup failed: {exc}")

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port: int, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    request = loadgen.http_request("GET", path, port)
    while time.monotonic() < deadline:
        result = loadgen.closed_loop(port, [request], concurrency=1, timeout=2)
        if result.statuses.get(200):
            return
        time.sleep(0.3)
    raise RuntimeError(f"127.0.0.1:{port}{path} did not answer 200 within {timeout} s")


def settle(port: int, timeout: float = 180) -> None:
    """Waits until the server is idle again, so runs do not overlap.

    An overloaded open-loop run leaves requests the client gave up on in gunicorn's listen
    backlog; the server still stores them afterwards. Idle = no new webhook row for 1.5 s and
    a fast /healthz.
    """
    from django.db import connection

    def rows() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT (SELECT count(*) FROM whatsapp_webhook_logs) + "
                           "(SELECT count(*) FROM bench_reference_deliveries)")
            return cursor.fetchone()[0]

    request = loadgen.http_request("GET", "/healthz", port)
    deadline = time.monotonic() + timeout
    before = rows()
    while time.monotonic() < deadline:
        time.sleep(1.5)
        now = rows()
        if now == before:
            result = loadgen.closed_loop(port, [request] * 5, concurrency=1, timeout=5)
            if result.statuses.get(200) == 5 and max(result.latencies_ms) < 50:
                return
        before = now
    log(f"warning: the server did not settle within {timeout} s")


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry))
    return sorted(found)


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    except OSError:
        pass
    return math.nan


def _cpu_times() -> tuple[int, int]:
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields), idle


def cpu_busy_pct(seconds: float) -> float:
    """Share of all CPUs busy over `seconds` (before the bench starts: other people's load)."""
    total0, idle0 = _cpu_times()
    time.sleep(seconds)
    total1, idle1 = _cpu_times()
    return round(100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0)), 1)


class LoadSampler(threading.Thread):
    """Samples the 1-minute load average every 2 s while the bench runs."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.wait(2.0):
            self.samples.append(os.getloadavg()[0])


# --- Services (PostgreSQL, Redis) ---------------------------------------------------------------

def ensure_services(procs: Processes) -> dict:
    import psycopg
    import redis

    started = {}
    try:
        psycopg.connect(f"{PG_BASE}/postgres", connect_timeout=3).close()
    except Exception:
        version = sorted(os.listdir("/etc/postgresql"))[0]
        log(f"PostgreSQL is down: starting cluster {version}/main")
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                       check=True)
        started["postgresql"] = version
        procs.cleanups.append(lambda: subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop"], check=False))
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except Exception:
        log("Redis is down: starting redis-server on 127.0.0.1:6379")
        subprocess.run(["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port",
                        "6379", "--save", "", "--appendonly", "no"], check=True)
        started["redis"] = "127.0.0.1:6379"
        procs.cleanups.append(lambda: redis.Redis.from_url(REDIS_URL).shutdown(nosave=True))
        for _ in range(50):
            try:
                client.ping()
                break
            except Exception:
                time.sleep(0.1)
    return started


def recreate_database(*, create: bool = True) -> None:
    import psycopg

    with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{DB_NAME}"')


def bench_env(graph_port: int, prefetch: int | None = None) -> dict:
    extra = {"CELERY_WORKER_PREFETCH_MULTIPLIER": str(prefetch)} if prefetch else {}
    return {
        **extra,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": f"{PG_BASE}/{DB_NAME}",
        "REDIS_URL": REDIS_URL,
        "DJANGO_DEBUG": "false",
        "DJANGO_SECRET_KEY": "bench-secret-key-not-for-production",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "META_APP_ID": "1531656324571133",
        "META_CONFIG_ID": "1410410867548573",
        "META_APP_SECRET": SECRET,
        "META_WEBHOOK_VERIFY_TOKEN": "bench-verify-token",
        "META_SYSTEM_USER_TOKEN": "bench-system-user-token",
        "META_GRAPH_API_URL": f"http://127.0.0.1:{graph_port}",
        "META_SANDBOX": "false",
        "TOKEN_ENCRYPTION_KEY": "33" * 32,
        "LOG_LEVEL": "WARNING",
        # The bench's callback run would otherwise meet the per-organization API limit.
        "RATELIMIT_API_PER_MINUTE": "1000000",
        # The outbound phase sends (to the Graph stub); no other phase queues a send.
        "WHATSAPP_SEND_MODE": "enabled",
    }


# --- Payloads -----------------------------------------------------------------------------------

def _ingest_module():
    """bench/ingest.py (issue 5's bench) for its fixtures and 3 MB history chunk builder.

    It sets its own database variables when imported; they are put back right after.
    """
    saved = dict(os.environ)
    try:
        import bench.ingest as ingest
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return ingest


def _value(body: dict) -> dict:
    return body["entry"][0]["changes"][0]["value"]


def _lead(i: int) -> tuple[str, str]:
    return f"55119{i:08d}", f"BR.{7 * 10**18 + i}"


def live_numbers(n: int) -> list[tuple[str, str, str]]:
    """(WABA, phone_number_id, display) of the Cloud API numbers the burst spreads over: the
    fixtures' number A, then bench-only ones."""
    extra = [(f"10200000001{k:04d}", f"30400000001{k:04d}", f"5511940{k:06d}")
             for k in range(1, n)]
    return [NUMBER_A, *extra]


def _for_number(body: dict, number: tuple[str, str, str] | None) -> dict:
    if number:
        waba, pnid, display = number
        body["entry"][0]["id"] = waba
        _value(body)["metadata"] = {"display_phone_number": display, "phone_number_id": pnid}
    return body


def status_delivery(ingest, items: list[tuple[str, str, int, int]],
                    number: tuple[str, str, str] | None = None) -> bytes:
    """One `messages` delivery carrying statuses (wamid, status, timestamp, lead) for a number
    (default: number A)."""
    body = _for_number(ingest.load("messages_status_sent.json"), number)
    value = _value(body)
    template = value["statuses"][0]
    contacts, statuses = {}, []
    for wamid, status, ts, lead in items:
        phone, user = _lead(lead)
        contacts[user] = {"profile": {"name": f"Lead {lead}"}, "wa_id": phone, "user_id": user}
        statuses.append({**template, "id": wamid, "status": status, "timestamp": str(ts),
                         "recipient_id": phone, "recipient_user_id": user})
    value["contacts"] = list(contacts.values())
    value["statuses"] = statuses
    return loadgen.wire(body)


def inbound_delivery(ingest, wamid: str, lead: int, ts: int,
                     number: tuple[str, str, str] | None = None) -> bytes:
    body = _for_number(ingest.load("messages_text_inbound.json"), number)
    value = _value(body)
    phone, user = _lead(lead)
    value["contacts"] = [{"profile": {"name": f"Lead {lead}"}, "wa_id": phone, "user_id": user}]
    message = value["messages"][0]
    message.update({"from": phone, "from_user_id": user, "id": wamid, "timestamp": str(ts)})
    message["text"] = {"body": f"Ol\u00e1! O apartamento {lead} ainda est\u00e1 dispon\u00edvel?"}
    return loadgen.wire(body)


def echo_delivery(ingest, wamid: str, lead: int, ts: int) -> bytes:
    body = ingest.load("smb_message_echoes_text.json")
    value = _value(body)
    phone, user = _lead(lead)
    value["contacts"] = [{"wa_id": phone, "user_id": user}]
    echo = value["message_echoes"][0]
    echo.update({"to": phone, "to_user_id": user, "id": wamid, "timestamp": str(ts)})
    return loadgen.wire(body)


def endpoint_mix(ingest, n: int, run: str) -> list[bytes]:
    """Bodies for the endpoint load: 3 statuses per outbound message, inbound, echoes (~1 KB)."""
    bodies = []
    for i in range(n):
        kind = i % 10
        if kind < 7:
            status = ("sent", "delivered", "read")[kind % 3]
            bodies.append(status_delivery(ingest, [(f"wamid.BENCHEP{run}{i:07d}", status,
                                                    1790000000 + i, i % 300)]))
        elif kind < 9:
            bodies.append(inbound_delivery(ingest, f"wamid.BENCHEPIN{run}{i:07d}", i % 300,
                                           1790000000 + i))
        else:
            bodies.append(echo_delivery(ingest, f"wamid.BENCHEPEC{run}{i:07d}", i % 300,
                                        1790000000 + i))
    return bodies


def burst_deliveries(ingest, *, outbound: int, inbound: int, echoes: int, batch: int,
                     leads: int, numbers: list[tuple[str, str, str]]
                     ) -> tuple[list[bytes], dict[str, list[str]], dict]:
    """The mixed burst: sent/delivered/read for each outbound message (`batch` statuses per
    delivery, in stage order), inbound texts one per delivery, both spread over `numbers`;
    echoes one per delivery on the coexistence number B; all interleaved.

    Returns the bodies, the outbound wamids per phone_number_id and the expected counts."""
    out_wamids: dict[str, list[str]] = {pnid: [] for _, pnid, _ in numbers}
    for i in range(outbound):
        out_wamids[numbers[i % len(numbers)][1]].append(f"wamid.BENCHOUT{i:08d}")
    status_bodies = []
    for stage, status in enumerate(("sent", "delivered", "read")):
        for start in range(0, -(-outbound // len(numbers)), batch):
            for number in numbers:
                chunk = out_wamids[number[1]][start:start + batch]
                if not chunk:
                    continue
                items = [(w, status, 1790000000 + int(w[-8:]) * 3 + stage,
                          int(w[-8:]) % leads) for w in chunk]
                status_bodies.append(status_delivery(ingest, items, number))
    others = [inbound_delivery(ingest, f"wamid.BENCHIN{i:08d}", i % leads, 1790000000 + i,
                               numbers[i % len(numbers)])
              for i in range(inbound)]
    others += [echo_delivery(ingest, f"wamid.BENCHECHO{i:08d}", i % leads, 1790000500 + i)
               for i in range(echoes)]
    random.Random(8).shuffle(others)
    # Interleave: statuses keep their stage order, other deliveries are spread among them.
    deliveries, j = [], 0
    step = max(1, len(status_bodies) // max(1, len(others)))
    for i, body in enumerate(status_bodies):
        deliveries.append(body)
        if i % step == 0 and j < len(others):
            deliveries.append(others[j])
            j += 1
    deliveries += others[j:]
    expected = {"statuses": outbound * 3, "inbound": inbound, "echoes": echoes,
                "events": outbound * 3 + inbound + echoes, "deliveries": len(deliveries)}
    return deliveries, out_wamids, expected


# --- Phases -------------------------------------------------------------------------------------

def phase_webhook(args, ingest, port: int, gunicorn: subprocess.Popen) -> dict:
    """Saturation (wrk) of the product, the reference view and the bare WSGI ceiling, then the
    product and the reference at a fixed rate of half the reference's saturation (open loop).

    The reference (the target's denominator) is a Django view mounted by bench/urls.py, so it
    runs through the same handler and middleware as the product and does the minimum: HMAC,
    one raw INSERT, one LPUSH. The ceiling is the same work as a plain WSGI callable.
    """
    from bench import reference

    bodies = endpoint_mix(ingest, 600, "A")
    sizes = sorted(len(b) for b in bodies)
    out: dict = {"bodies": {"count": len(bodies), "median_bytes": sizes[len(sizes) // 2],
                            "mix": "70% statuses (sent/delivered/read), 20% inbound, 10% echoes"}}
    conns, dur = args.connections, args.saturation_seconds
    paths = {"reference": reference.DJANGO_PATH, "product": WEBHOOK,
             "ceiling": reference.BARE_PATH}
    sat: dict[str, list] = {name: [] for name in paths}
    log(f"warm-up: 2 s on each endpoint (c={conns})")
    for path in paths.values():
        loadgen.saturate(port, path, bodies, SECRET, connections=conns, duration=2)

    def one(name: str) -> None:
        settle(port)
        result = loadgen.saturate(port, paths[name], bodies, SECRET, connections=conns,
                                  duration=dur)
        sat[name].append(result)
        log(f"saturation {name}: {result['rps']} req/s ({result['errors']} errors, "
            f"tool {result['tool']})")

    for _ in range(args.rounds):
        one("reference")
        one("product")
    one("ceiling")
    best = {k: max(v, key=lambda r: r["rps"]) for k, v in sat.items() if v}
    out["saturation"] = {"rounds": sat, "best": best}
    out["ratio"] = round(best["product"]["rps"] / best["reference"]["rps"], 3)
    out["ratio_to_ceiling"] = round(best["product"]["rps"] / best["ceiling"]["rps"], 3)

    rate = round(best["reference"]["rps"] / 2.0, 1)
    out["fixed_rate_rps"] = rate
    out["fixed"] = {}
    # The reference first: it is not overloaded at half its own saturation, while the product
    # may be, and then leaves a backlog that settle() waits out.
    for name in ("reference", "product"):
        requests = [loadgen.signed_post(paths[name], port, b, SECRET) for b in bodies]
        settle(port)
        log(f"open loop: {name} at {rate} req/s for {args.fixed_seconds} s")
        result = loadgen.open_loop(port, requests, rate=rate, duration=args.fixed_seconds)
        out["fixed"][name] = result.as_dict()
        f = out["fixed"][name]
        log(f"  p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, p99.9 {f['p99_9_ms']} ms, "
            f"max {f['max_ms']} ms, errors {f['errors']}, achieved {f['achieved_rps']} req/s")
    # For information: the product at half of its *own* saturation, i.e. not overloaded.
    own = round(best["product"]["rps"] / 2.0, 1)
    requests = [loadgen.signed_post(WEBHOOK, port, b, SECRET) for b in bodies]
    settle(port)
    log(f"open loop: product at half its own saturation, {own} req/s for {args.fixed_seconds} s")
    result = loadgen.open_loop(port, requests, rate=own, duration=args.fixed_seconds)
    out["fixed_own_half"] = {"rate_rps": own, **result.as_dict()}
    f = out["fixed_own_half"]
    log(f"  p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, p99.9 {f['p99_9_ms']} ms, "
        f"max {f['max_ms']} ms, errors {f['errors']}, achieved {f['achieved_rps']} req/s")
    settle(port)
    workers = children(gunicorn.pid)
    out["gunicorn_worker_rss_mb"] = {str(pid): rss_mb(pid) for pid in workers}
    return out


def seed_numbers(ingest, n_live: int) -> dict:
    """Numbers A and B of the fixtures (bench/ingest.py), plus bench-only Cloud API numbers."""
    from organizations.models import Organization
    from whatsapp.models import Connection, PhoneNumber

    configs = ingest.numbers()
    for waba, pnid, display in live_numbers(n_live)[1:]:
        org = Organization.objects.create(name=f"Bench {pnid}", slug=f"bench-{pnid}")
        connection = Connection.objects.create(organization=org, waba_id=waba,
                                               status=Connection.Status.CONNECTED)
        configs[pnid] = PhoneNumber.objects.create(
            connection=connection, organization=org, phone_number_id=pnid,
            display_phone_number=display, status=PhoneNumber.Status.CONFIGURED)
    configs[NUMBER_A[1]] = configs["A"]
    return configs


def setup_in_process() -> None:
    """For the in-process tools (bench.webcpu, bench.queries, bench.process): Django on the
    database a `--keep-db` run left, or a clear exit when it is not there."""
    import django
    from django.db import OperationalError, connection

    os.environ.update(bench_env(1))
    django.setup()
    try:
        connection.ensure_connection()
    except OperationalError:
        sys.exit(f"database {DB_NAME} does not exist: run `uv run python bench/run.py --quick "
                 "--only tracking --keep-db` first")


def seed_leads(args, configs: dict) -> int:
    """The burst's leads, known to every organization before either burst (through the
    product's ContactBook): statuses are for leads the business already messaged, and both
    bursts then start from the same state (otherwise the first would also create them)."""
    from django.db import transaction

    from whatsapp.conversations.contacts import ContactBook, sighting
    from whatsapp.core.payloads import Party

    when = dt.datetime(2026, 9, 20, tzinfo=dt.UTC)
    org_ids = {configs[pnid].organization_id for _, pnid, _ in live_numbers(args.numbers)}
    org_ids.add(configs["B"].organization_id)
    parties = [Party(user_id=user, wa_id=phone, profile_name=f"Lead {i}")
               for i, (phone, user) in ((i, _lead(i)) for i in range(args.leads))]
    for org_id in sorted(org_ids, key=str):
        with transaction.atomic():
            book = ContactBook(org_id)
            book.resolve([sighting(p, when) for p in parties])
            book.save()
    log(f"leads: {args.leads} known to each of {len(org_ids)} organizations before the bursts")
    return args.leads * len(org_ids)


def reset_queues_and_logs() -> None:
    import redis
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE whatsapp_webhook_logs, bench_reference_deliveries")
    redis.Redis.from_url(REDIS_URL).flushdb()


def start_celery(procs: Processes, env: dict) -> subprocess.Popen:
    proc = procs.start("celery", [
        sys.executable, "-m", "celery", "-A", "config", "worker", "-c", "2", "-P", "prefork",
        "-n", "bench@%h", "--loglevel=WARNING", "--without-gossip", "--without-mingle",
        "--without-heartbeat",
    ], env)
    from config.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5):
            return proc
        if proc.poll() is not None:
            raise RuntimeError("Celery exited at startup:\n" + procs.log_tail("celery"))
    raise RuntimeError("Celery did not answer a ping within 60 s")


def wait_processed(first_id: int, count: int, timeout: float) -> tuple[float, dict]:
    """Polls until `count` logs from `first_id` on are finished; returns (time, status counts)."""
    from django.db.models import Count

    from whatsapp.models import WebhookLog

    logs = WebhookLog.objects.filter(id__gte=first_id)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        finished = logs.filter(status__in=["processed", "dead", "parked"]).count()
        if finished >= count:
            break
        time.sleep(0.05)
    done = time.perf_counter()
    return done, dict(logs.values_list("status").annotate(n=Count("id")).order_by())


def run_burst(args, ingest, port: int, configs: dict, tag: str, *, drain: bool) -> dict:
    """Posts one mixed burst and waits until every delivery is processed; counts the rows.

    drain=False: workers consume while the burst is being posted (production-like; the web,
    PostgreSQL, Redis and both workers share the two cores); timed from the first POST.
    drain=True: the workers' consumer is paused while posting, then resumed; timed from the
    resume, so the figure is the rate of the 2 worker processes alone on a queued burst.
    """
    from django.db.models import Count, Max

    from config.celery import app
    from whatsapp.models import Message, MessageStatus, WebhookLog

    numbers = live_numbers(args.numbers)
    deliveries, per_number, expected = burst_deliveries(
        ingest, outbound=args.outbound, inbound=args.inbound, echoes=args.echoes,
        batch=args.status_batch, leads=args.leads, numbers=numbers)
    prefix = f"wamid.BENCH{tag}"
    deliveries = [d.replace(b"wamid.BENCH", prefix.encode()) for d in deliveries]
    per_number = {k: [w.replace("wamid.BENCH", prefix) for w in v] for k, v in per_number.items()}
    out_wamids = [w for wamids in per_number.values() for w in wamids]
    Message.objects.bulk_create([
        Message(organization_id=configs[pnid].organization_id, config=configs[pnid], wamid=w,
                direction="outbound", source="cloud_api", type="text",
                timestamp=dt.datetime(2026, 9, 21, tzinfo=dt.UTC))
        for pnid, wamids in per_number.items() for w in wamids], batch_size=1000)
    first_id = (WebhookLog.objects.aggregate(m=Max("id"))["m"] or 0) + 1
    requests = [loadgen.signed_post(WEBHOOK, port, b, SECRET) for b in deliveries]
    log(f"burst {tag} ({'queued, then drained' if drain else 'posted while processing'}): "
        f"{expected['deliveries']} deliveries, {expected['events']} events "
        f"({expected['statuses']} statuses in batches of {args.status_batch} and "
        f"{expected['inbound']} inbound over {len(numbers)} numbers, {expected['echoes']} "
        f"echoes on 1)")
    if drain:
        # limit=1: the one bench worker's reply ends the wait (without a limit a broadcast
        # waits its whole timeout for more replies: 5 s a queue, which the drain figure used
        # to include after the resume).
        for queue in _queues():
            app.control.cancel_consumer(queue, reply=True, timeout=5, limit=1)
    started = time.perf_counter()
    generator_cpu = time.process_time()
    posted = loadgen.closed_loop(port, requests, concurrency=args.burst_connections)
    posted_at = time.perf_counter()
    generator_cpu = time.process_time() - generator_cpu
    stored_after_post = WebhookLog.objects.filter(id__gte=first_id).count()
    processed_after_post = WebhookLog.objects.filter(id__gte=first_id,
                                                     status="processed").count()
    if drain:
        started = time.perf_counter()
        for queue in _queues():
            app.control.add_consumer(queue, reply=True, timeout=5, limit=1)
    done, statuses = wait_processed(first_id, len(deliveries), timeout=args.e2e_timeout)
    elapsed = done - started
    out = {"mode": "drain" if drain else "concurrent", "expected": expected,
           "post": posted.as_dict(), "post_seconds": round(posted_at - started, 3)
           if not drain else round(posted.elapsed_s, 3),
           "total_seconds": round(elapsed, 3),
           "events_per_s": round(expected["events"] / elapsed, 1),
           "deliveries_per_s": round(expected["deliveries"] / elapsed, 1),
           "log_statuses": statuses, "status_batch": args.status_batch,
           "stored_after_post": stored_after_post,
           "processed_after_post": processed_after_post,
           # CPU the bench's own HTTP client spent posting, on the same two cores.
           "load_generator_cpu_s": round(generator_cpu, 3),
           "numbers": len(numbers)}
    logs = WebhookLog.objects.filter(id__gte=first_id)
    stored = logs.count()
    distinct_bodies = logs.values("body_sha256").distinct().count()
    status_rows = MessageStatus.objects.filter(wamid__in=out_wamids).count()
    read = Message.objects.filter(wamid__in=out_wamids, status="read").count()
    inbound_rows = Message.objects.filter(wamid__startswith=f"{prefix}IN").count()
    echo_rows = Message.objects.filter(wamid__startswith=f"{prefix}ECHO",
                                       source="phone_app").count()
    dup_wamids = (Message.objects.values("wamid").annotate(n=Count("id")).filter(n__gt=1).count())
    checks = {
        "deliveries_stored": (stored, expected["deliveries"]),
        "deliveries_distinct": (distinct_bodies, expected["deliveries"]),
        "deliveries_processed": (statuses.get("processed", 0), expected["deliveries"]),
        "status_rows": (status_rows, expected["statuses"]),
        "outbound_messages_read": (read, len(out_wamids)),
        "inbound_messages": (inbound_rows, expected["inbound"]),
        "echo_messages": (echo_rows, expected["echoes"]),
        "duplicate_wamids": (dup_wamids, 0),
    }
    out["checks"] = {k: {"found": f, "expected": e} for k, (f, e) in checks.items()}
    out["lost_or_duplicated"] = sum(abs(f - e) for f, e in checks.values())
    out["posting_errors"] = posted.errors
    log(f"  {out['events_per_s']} events/s ({out['deliveries_per_s']} deliveries/s), "
        f"{elapsed:.2f} s; posting took {out['post_seconds']} s "
        f"({processed_after_post} processed by then, load generator CPU "
        f"{generator_cpu:.2f} s); "
        f"checks off by {out['lost_or_duplicated']}")
    return out


def phase_e2e(args, ingest, port: int, celery: subprocess.Popen, configs: dict) -> dict:
    from django.db.models import Max

    from whatsapp.models import Message, WebhookLog

    out = {"leads_seeded": seed_leads(args, configs)}
    out.update(run_burst(args, ingest, port, configs, "C", drain=False))
    out["drain"] = run_burst(args, ingest, port, configs, "D", drain=True)

    # One 3 MB history chunk, alone.
    body, count = ingest.history_body(1, "BENCHHIST")
    first_id = (WebhookLog.objects.aggregate(m=Max("id"))["m"] or 0) + 1
    log(f"history: one chunk of {len(body)} bytes, {count} messages")
    started = time.perf_counter()
    posted = loadgen.closed_loop(port, [loadgen.signed_post(WEBHOOK, port, body, SECRET)],
                                 concurrency=1)
    done, statuses = wait_processed(first_id, 1, timeout=120)
    row = WebhookLog.objects.filter(id__gte=first_id).values(
        "status", "received_at", "processed_at").first() or {}
    imported = Message.objects.filter(wamid__startswith="wamid.BENCHHIST").count()
    out["history"] = {
        "bytes": len(body), "messages": count, "imported": imported,
        "post_status": posted.statuses, "post_ms": round(posted.latencies_ms[0], 1),
        "seconds": round(done - started, 3), "status": row.get("status"),
        "stored_to_processed_s": (
            round((row["processed_at"] - row["received_at"]).total_seconds(), 3)
            if row.get("processed_at") else None),
    }
    log(f"  history: {out['history']['seconds']} s POST to processed, "
        f"{imported}/{count} messages imported, status {row.get('status')}")
    pool = children(celery.pid)
    out["celery_rss_mb"] = {"main": rss_mb(celery.pid),
                            **{str(pid): rss_mb(pid) for pid in pool}}
    return out


def phase_tracking(args) -> dict:
    from organizations.models import Organization
    from whatsapp.onboarding import signup, tracking

    org = Organization.objects.create(name="Bench tracking", slug="bench-tracking")
    onboardings = [signup.onboarding_start(organization=org, user=None,
                                             redirect_path="/dashboard/settings/whatsapp")
                   for _ in range(args.tracking_codes)]
    codes = [str(o.tracking_code) for o in onboardings]
    out = {"codes": len(codes), "lookups_per_path": args.tracking_lookups}

    def measure(label: str) -> dict:
        latencies = []
        for i in range(args.tracking_lookups):
            code = codes[i % len(codes)]
            t = time.perf_counter()
            found = signup.onboarding_for_code(code)
            latencies.append((time.perf_counter() - t) * 1000.0)
            assert found is not None and str(found.tracking_code) == code, label
        return loadgen.summarize(latencies)

    for code in codes[:50]:  # warm the connection and the query paths
        signup.onboarding_for_code(code)
    out["redis_hit"] = measure("redis")
    raw = []
    for i in range(args.tracking_lookups):
        t = time.perf_counter()
        tracking.lookup(codes[i % len(codes)])
        raw.append((time.perf_counter() - t) * 1000.0)
    # The Redis layer alone (tracking.lookup): what a lookup costs before the DB query that
    # onboarding_for_code still makes on a hit.
    out["redis_get_only"] = loadgen.summarize(raw)
    for code in codes:
        tracking.forget(code)
    assert tracking.lookup(codes[0]) is None
    out["db_fallback"] = measure("db")
    log(f"tracking: Redis hit p99 {out['redis_hit']['p99_ms']} ms, "
        f"DB fallback p99 {out['db_fallback']['p99_ms']} ms")
    return out


def phase_callback(args, port: int) -> dict:
    from django.contrib.auth import get_user_model

    from organizations.models import ApiToken, Membership, Organization
    from whatsapp.onboarding import signup

    User = get_user_model()
    requests, wabas = [], []
    for i in range(args.callbacks):
        org = Organization.objects.create(name=f"Bench callback {i}", slug=f"bench-cb-{i}")
        user = User.objects.create(username=f"bench-cb-{i}@bench.test",
                                   email=f"bench-cb-{i}@bench.test")
        Membership.objects.create(user=user, organization=org, role=Membership.Role.ADMIN)
        _, raw = ApiToken.issue(user=user, organization=org)
        onboarding = signup.onboarding_start(organization=org, user=user,
                                               redirect_path="/dashboard/settings/whatsapp")
        waba = f"1099{i:011d}"
        wabas.append(waba)
        body = json.dumps({"state": str(onboarding.tracking_code), "event": "FINISH",
                           "code": f"code-{waba}", "wabaId": waba,
                           "phoneNumberId": f"3099{i:011d}", "businessId": f"2099{i:011d}"})
        requests.append(loadgen.http_request("POST", CALLBACK, port, body.encode(), {
            "Content-Type": "application/json", "Authorization": f"Bearer {raw}"}))
    log(f"callback: {len(requests)} Embedded Signup FINISH callbacks, one at a time")
    result = loadgen.closed_loop(port, requests, concurrency=1, keep_bodies=True)
    out = {"graph": f"local stub, {args.graph_latency_ms} ms per call", **result.as_dict()}
    ok = sum(1 for b in result.bodies if b'"success":true' in b.replace(b" ", b""))
    out["succeeded"] = ok
    log(f"  p50 {out['p50_ms']} ms, p95 {out['p95_ms']} ms, {ok}/{len(requests)} succeeded")
    return out


# --- Report -------------------------------------------------------------------------------------

def verdict(name: str, value) -> str:
    op, target, _unit, _what = TARGETS[name]
    if op == "info":
        return "info"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    ok = {">=": value >= target, "<": value < target, "==": value == target}[op]
    return "PASS" if ok else "MISS"


def build_table(results: dict) -> list[dict]:
    rows = []
    w = results.get("webhook", {})
    if w:
        best = w["saturation"]["best"]
        rows.append(("webhook_ratio", w["ratio"],
                     f"product {best['product']['rps']} req/s / reference view "
                     f"{best['reference']['rps']} req/s (bare WSGI ceiling "
                     f"{best['ceiling']['rps']} req/s: {w['ratio_to_ceiling']}x)"))
        fixed = w["fixed"]["product"]
        rows.append(("fixed_p99_ms", fixed["p99_ms"], f"at {w['fixed_rate_rps']} req/s, "
                     f"p50 {fixed['p50_ms']} ms "
                     f"(reference p99 {w['fixed']['reference']['p99_ms']} ms)"))
        rows.append(("fixed_p99_9_ms", fixed["p99_9_ms"], f"max {fixed['max_ms']} ms, "
                     f"{fixed['sent']} requests"))
        rows.append(("fixed_errors", fixed["errors"], f"statuses {fixed['statuses']}"))
        own = w["fixed_own_half"]
        rows.append(("own_half_p99_ms", own["p99_ms"],
                     f"product at half its own saturation, {own['rate_rps']} req/s: p50 "
                     f"{own['p50_ms']} ms, p99.9 {own['p99_9_ms']} ms, {own['errors']} errors"))
        rows.append(("web_rss_mb", max(w["gunicorn_worker_rss_mb"].values()),
                     f"{len(w['gunicorn_worker_rss_mb'])} workers: "
                     f"{sorted(w['gunicorn_worker_rss_mb'].values())}"))
    e = results.get("e2e", {})
    if e:
        rows.append(("e2e_events_per_s", e["events_per_s"],
                     f"{e['expected']['events']} events in {e['expected']['deliveries']} "
                     f"deliveries over {e['numbers'] + 1} numbers, {e['total_seconds']} s "
                     f"({e['deliveries_per_s']} deliveries/s)"))
        d = e["drain"]
        rows.append(("e2e_drain_events_per_s", d["events_per_s"],
                     f"same burst queued first, then drained by the 2 workers alone: "
                     f"{d['total_seconds']} s ({d['deliveries_per_s']} deliveries/s)"))
        rows.append(("e2e_lost_or_duplicated", e["lost_or_duplicated"] + d["lost_or_duplicated"],
                     "rows counted against what was sent, both bursts"))
        h = e["history"]
        rows.append(("history_seconds", h["seconds"],
                     f"{h['bytes']} bytes, {h['imported']}/{h['messages']} messages"))
        rows.append(("celery_rss_mb", max(e["celery_rss_mb"].values()),
                     f"main + pool: {sorted(e['celery_rss_mb'].values())}"))
    t = results.get("tracking", {})
    if t:
        rows.append(("tracking_redis_p99_ms", t["redis_hit"]["p99_ms"],
                     f"p50 {t['redis_hit']['p50_ms']} ms, {t['redis_hit']['count']} lookups; "
                     f"Redis GET alone p99 {t['redis_get_only']['p99_ms']} ms"))
        rows.append(("tracking_db_p99_ms", t["db_fallback"]["p99_ms"],
                     f"p50 {t['db_fallback']['p50_ms']} ms, {t['db_fallback']['count']} lookups"))
    c = results.get("callback", {})
    if c:
        rows.append(("callback_p95_ms", c["p95_ms"],
                     f"p50 {c['p50_ms']} ms, {c['succeeded']}/{c['count']} ok, {c['graph']}"))
    o = results.get("outbound", {})
    if o:
        busiest = {pnid: f"{n['max_in_1s_granted']}/{n['limit']}"
                   for pnid, n in o["per_number"].items()}
        rows.append(("outbound_sends_per_s", o["sends_per_s"],
                     f"{o['sends']} sends over {o['numbers']} numbers in {o['seconds']} s, "
                     f"{o['statuses']}; Graph saw {o['graph_calls_per_s']} calls/s"))
        rows.append(("outbound_over_limit", o["windows_over_limit"],
                     f"busiest 1-s window per number (granted/limit): "
                     f"{sorted(busiest.values())}; at Graph: at most "
                     f"{o['max_over_limit_at_graph']:+d} vs limit"))
    rows.extend(lanes.table_rows(results))
    table = []
    for name, value, note in rows:
        op, target, unit, what = TARGETS[name]
        table.append({"metric": name, "what": what, "value": value, "unit": unit,
                      "target": "-" if op == "info" else f"{op} {target}",
                      "verdict": verdict(name, value), "note": note})
    return table


def print_table(table: list[dict]) -> None:
    print()
    print(f"{'metric':24} {'value':>10} {'unit':5} {'target':>10} {'verdict':7} note")
    print("-" * 110)
    for row in table:
        value = row["value"]
        shown = f"{value:.3f}" if isinstance(value, float) and value < 10 else str(value)
        print(f"{row['metric']:24} {shown:>10} {row['unit']:5} {row['target']:>10} "
              f"{row['verdict']:7} {row['note']}")
    print()


# --- Main ---------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Issue 8 performance bench: the webhook beside a minimal reference view, "
                    "end-to-end processing, tracking codes, the signup callback and memory, "
                    "and (issue 17) a tenant's latency during another's bulk work with the "
                    "lanes on and off, in one run.",
        epilog="Needs local PostgreSQL and Redis (started if down) and wrk "
               f"({loadgen.WRK_INSTALL_HINT}). Uses database {DB_NAME} and {REDIS_URL}.")
    parser.add_argument("--quick", action="store_true",
                        help="short smoke run (~2 min): shorter loads, a smaller burst")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--web-workers", type=int, default=4,
                        help="gunicorn worker processes (default 4: 2 per core)")
    parser.add_argument("--web-threads", type=int, default=1,
                        help="threads per gunicorn worker (>1 uses the gthread worker class)")
    parser.add_argument("--connections", type=int, default=16,
                        help="wrk connections for the saturation runs (default 16)")
    parser.add_argument("--graph-latency-ms", type=float, default=0.0,
                        help="delay the Graph stub adds to every call (default 0)")
    parser.add_argument("--status-batch", type=int, default=5,
                        help="statuses per status delivery in the burst (default 5)")
    parser.add_argument("--numbers", type=int, default=4,
                        help="Cloud API numbers the burst's statuses and inbound messages are "
                             "spread over (default 4; one number's deliveries are serialized "
                             "by its row lock)")
    lanes.add_arguments(parser)
    parser.add_argument("--prefetch", type=int, default=None,
                        help="CELERY_WORKER_PREFETCH_MULTIPLIER for the bench's workers "
                             "(default: the product's setting)")
    parser.add_argument("--only", choices=["webhook", "e2e", "tracking", "callback", "outbound",
                                           "lanes"],
                        action="append", help="run only these phases (repeatable)")
    parser.add_argument("--send-threads", type=int, default=0,
                        help="outbound phase: also run a Celery worker with a pool of this many "
                             "threads (default 0: only the 2 prefork processes)")
    parser.add_argument("--keep-db", action="store_true",
                        help=f"keep the {DB_NAME} database at the end (for inspection)")
    parser.add_argument("--gc-pauses", metavar="DIR",
                        help="time every garbage collection of the web and worker processes "
                             "into DIR and print each process's pauses (bench/gcpauses.py)")
    parser.add_argument("--profile", metavar="DIR",
                        help="record py-spy profiles of a web and a worker process into DIR")
    args = parser.parse_args(argv)
    quick = args.quick
    args.saturation_seconds = 4 if quick else 12
    args.rounds = 1 if quick else 2
    args.fixed_seconds = 6 if quick else 30
    args.outbound = 150 if quick else 1500
    args.inbound = 100 if quick else 800
    args.echoes = 40 if quick else 300
    args.leads = 60 if quick else 400
    args.burst_connections = 8
    args.e2e_timeout = 120 if quick else 300
    args.tracking_codes = 200 if quick else 1000
    args.tracking_lookups = 1000 if quick else 5000
    args.callbacks = 15 if quick else 100
    # Sends per number in the outbound phase: each number several seconds at its limit.
    args.outbound_per_cloud = 120 if quick else 400
    args.outbound_per_coexistence = 40 if quick else 100
    lanes.configure(args)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    # `kill` (SIGTERM) tears down like Ctrl-C: every process the bench started is stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    phases = set(args.only or ["webhook", "e2e", "tracking", "callback", "outbound", "lanes"])
    workdir = Path(tempfile.mkdtemp(prefix="qualifica-bench-"))
    procs = Processes(workdir)
    sampler = LoadSampler()
    results: dict = {
        "command": " ".join(["uv run python bench/run.py",
                             *(sys.argv[1:] if argv is None else argv)]),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "loadavg_before": [round(x, 2) for x in os.getloadavg()]},
        "config": {},
    }
    if not loadgen.wrk_available():
        log(f"wrk not found: saturation uses the Python closed loop (slower, CPU-hungrier). "
            f"Install it with: {loadgen.WRK_INSTALL_HINT}")
    results["machine"]["cpu_busy_before_pct"] = cpu_busy_pct(3.0)
    log(f"load average before the run: {results['machine']['loadavg_before']}, CPU busy "
        f"{results['machine']['cpu_busy_before_pct']} % over 3 s (other users); logs in {workdir}")
    exit_code = 0
    try:
        results["services_started"] = ensure_services(procs)
        graph_port, web_port = free_port(), free_port()
        env = {**os.environ, **bench_env(graph_port, args.prefetch)}
        if args.gc_pauses:  # the started processes only (bench/gcpauses.py), not this one
            env["BENCH_GC_LOG"] = args.gc_pauses
        os.environ.update(bench_env(graph_port, args.prefetch))
        log(f"database {DB_NAME}: drop, create, migrate; Redis {REDIS_URL}: flush")
        recreate_database()
        procs.cleanups.append(lambda: None if args.keep_db else _drop_database())
        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        from bench import reference

        with connection.cursor() as cursor:
            cursor.execute(reference.CREATE_TABLE)
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        procs.cleanups.append(lambda: redis.Redis.from_url(REDIS_URL).flushdb())
        ingest = _ingest_module()
        configs = seed_numbers(ingest, args.numbers)

        procs.start("graph-stub", [sys.executable, "-m", "bench.graph_stub", "--port",
                                   str(graph_port), "--latency-ms", str(args.graph_latency_ms)],
                    env)
        worker_class = "gthread" if args.web_threads > 1 else "sync"
        gunicorn = procs.start("gunicorn", [
            sys.executable, "-m", "gunicorn", "bench.wsgi:application",
            "--bind", f"127.0.0.1:{web_port}", "--workers", str(args.web_workers),
            "--worker-class", worker_class, "--threads", str(args.web_threads),
            "--worker-tmp-dir", "/dev/shm", "--log-level", "warning",
        ], env)
        wait_http(web_port, "/healthz")
        wait_http(graph_port, "/v25.0/debug_token")
        results["config"] = {
            "gunicorn": f"{args.web_workers} workers x {args.web_threads} threads "
                        f"({worker_class}), no keep-alive (Connection: close)",
            "celery": "celery -A config worker -c 2 -P prefork, every queue (acks_late, prefetch "
                      f"{_setting('CELERY_WORKER_PREFETCH_MULTIPLIER')}, "
                      f"CELERY_DB_REUSE_MAX={_setting('CELERY_DB_REUSE_MAX')})",
            "load_generator": ("wrk (saturation), asyncio open loop (fixed rate)"
                               if loadgen.wrk_available() else "asyncio (both)"),
            "database": f"{PG_BASE}/{DB_NAME}", "redis": REDIS_URL,
            "saturation": f"{args.rounds} round(s) x {args.saturation_seconds} s per endpoint, "
                          f"c={args.connections}, best round kept",
            "fixed_rate_seconds": args.fixed_seconds,
        }
        sampler.start()

        if "webhook" in phases:
            log("phase 1: webhook endpoint beside the reference view and the bare WSGI ceiling "
                "(Celery workers stopped)")
            results["webhook"] = _profiled(args, "web", gunicorn.pid,
                                           lambda: phase_webhook(args, ingest, web_port, gunicorn))
        reset_queues_and_logs()
        celery = start_celery(procs, env)
        if "e2e" in phases:
            log("phase 2: end-to-end burst through 2 Celery worker processes")
            results["e2e"] = _profiled(args, "worker", celery.pid,
                                       lambda: phase_e2e(args, ingest, web_port, celery, configs))
        if "tracking" in phases:
            log("phase 3a: tracking-code resolution (in-process, Redis then DB)")
            results["tracking"] = phase_tracking(args)
        if "callback" in phases:
            log("phase 3b: Embedded Signup callback through gunicorn, Graph stub")
            results["callback"] = phase_callback(args, web_port)
        if "outbound" in phases:
            log("phase 4: outbound sends for 10 numbers through the 2 worker processes, paced")
            from bench.outbound import phase_outbound

            if args.send_threads:
                # Sends mostly wait (PostgreSQL, Redis, Graph): one more process with a
                # thread pool beside the 2 prefork ones, for this phase only.
                sender = procs.start("celery-send", [
                    sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "threads",
                    "-c", str(args.send_threads), "-n", "bench-send@%h", "--loglevel=WARNING",
                    "--without-gossip", "--without-mingle", "--without-heartbeat"], env)
                from config.celery import app

                name = f"bench-send@{socket.gethostname()}"
                deadline = time.monotonic() + 60
                while not app.control.ping(destination=[name], timeout=0.5):
                    if time.monotonic() > deadline or sender.poll() is not None:
                        raise RuntimeError("the send worker did not start:\n"
                                           + procs.log_tail("celery-send"))
                results["config"]["celery_send"] = (f"+ celery worker -P threads -c "
                                                    f"{args.send_threads} (outbound phase)")
            results["outbound"] = _profiled(args, "worker-outbound", celery.pid,
                                            lambda: phase_outbound(args, graph_port))
            if args.send_threads:
                procs.stop(sender)
        if "lanes" in phases:
            log("phase 5: lanes (issue 17): tenant B's messages during tenant A's bulk work, "
                "lanes on and off, each with its own web server and workers")
            procs.stop(celery)
            results["lanes"] = lanes.phase_lanes(args, ingest, procs, env)
    except Exception as exc:
        exit_code = 1
        log(f"bench failed: {type(exc).__name__}: {exc}")
        import traceback

        traceback.print_exc()
        for name, _ in procs.started:
            tail = procs.log_tail(name, 15)
            if tail:
                print(f"--- {name}.log (tail) ---\n{tail}")
    finally:
        sampler.stop_event.set()
        log("tearing down: stopping every process the bench started")
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        procs.stop_all()

    load = sampler.samples
    results["machine"]["loadavg_during"] = {
        "min": round(min(load), 2) if load else None, "max": round(max(load), 2) if load else None,
        "mean": round(sum(load) / len(load), 2) if load else None}
    results["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    results["table"] = build_table(results)
    print_table(results["table"])
    print(f"config: {json.dumps(results['config'])}")
    print(f"load average before {results['machine']['loadavg_before']}, during (1-min) "
          f"{results['machine']['loadavg_during']}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2, default=str))
        log(f"results written to {path}")
    if args.gc_pauses:
        from bench import gcpauses

        results["gc_pauses"] = gcpauses.summary(args.gc_pauses)
        print(f"garbage collector pauses (bench/gcpauses.py, {args.gc_pauses}):\n"
              + gcpauses.report(args.gc_pauses))
    log(f"process logs kept in {workdir}")
    return exit_code


def _queues() -> list[str]:
    """The Celery queues a worker without -Q consumes (config/settings/lanes.py)."""
    return [queue.name for queue in _setting("CELERY_TASK_QUEUES")]


def _setting(name: str):
    from django.conf import settings

    return getattr(settings, name, None)


def _drop_database() -> None:
    recreate_database(create=False)


def _profiled(args, label: str, pid: int, fn):
    """Runs fn, recording a py-spy profile of pid and its children when --profile is given."""
    if not args.profile:
        return fn()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out_dir = Path(args.profile)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / label
    recorders = [subprocess.Popen(
        [pyspy, "record", "--pid", str(pid), "--subprocesses", "--rate", "100", "--format", fmt,
         "--output", f"{stem}.{ext}", "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for fmt, ext in (("raw", "txt"), ("speedscope", "speedscope.json"))]
    try:
        return fn()
    finally:
        for rec in recorders:
            if rec.poll() is None:
                os.killpg(rec.pid, signal.SIGINT)  # py-spy writes its file on SIGINT
        for rec in recorders:
            try:
                rec.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(rec.pid, signal.SIGKILL)
        log(f"profile of {label} (pid {pid} and children): {stem}.txt / .speedscope.json")


if __name__ == "__main__":
    sys.exit(main())
