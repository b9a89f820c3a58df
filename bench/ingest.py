"""Webhook ingestion benchmark through a real Celery worker.

    uv run python bench/ingest.py [--messages 2000] [--chunks 3] [--keep-db]

Creates its own PostgreSQL database (`qualifica_bench_ingest`) and uses its own Redis db
(`redis://127.0.0.1:6379/5`) — override with BENCH_DATABASE_URL / BENCH_REDIS_URL — migrates
it, starts `celery -A config worker -c 2` as a subprocess on them, posts signed deliveries to
the webhook view (Django test client: real signature check, real insert, real enqueue), waits
until the worker has processed every one, and prints a table and one JSON line.

Scenarios:
- messages: one inbound text per delivery (many leads), the common live traffic;
- statuses: sent/delivered/read per delivery for outbound messages;
- history: ~3 MB history chunks (~12k messages each) for one coexistence number;
- history in-process: the same chunk size processed by calling webhook_process directly, to
  isolate the import cost from queueing.
"""

import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.loadgen import wire  # noqa: E402  (the bytes Meta signs)

DB_URL = os.environ.get("BENCH_DATABASE_URL",
                        "postgres://postgres@127.0.0.1:5432/qualifica_bench_ingest")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
SECRET = "bench_app_secret_not_real"
PAYLOADS = Path(os.environ.get("META_PAYLOADS_DIR", ROOT.parent / "shared" / "meta-payloads"))
ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.base",
    "DATABASE_URL": DB_URL,
    "REDIS_URL": REDIS_URL,
    "META_APP_SECRET": SECRET,
    "DJANGO_ALLOWED_HOSTS": "testserver,localhost,127.0.0.1",
    "TOKEN_ENCRYPTION_KEY": "22" * 32,
    # Production-like: DEBUG keeps every SQL query in memory.
    "DJANGO_DEBUG": "false",
}
RESULTS = ROOT / "bench" / "results"
os.environ.update(ENV)


def recreate_database(*, create: bool = True) -> None:
    import psycopg

    base, name = DB_URL.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if create:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def numbers():
    from organizations.models import Organization
    from whatsapp.models import Connection, PhoneNumber

    configs = {}
    for key, waba, pnid, display in (("A", "102000000000101", "304000000000101", "5511940001234"),
                                     ("B", "102000000000202", "304000000000202", "5521970005678")):
        org = Organization.objects.create(name=f"Bench {key}", slug=f"bench-{key.lower()}")
        connection = Connection.objects.create(organization=org, waba_id=waba,
                                               status=Connection.Status.CONNECTED)
        configs[key] = PhoneNumber.objects.create(connection=connection, organization=org,
                                             phone_number_id=pnid, display_phone_number=display,
                                             status=PhoneNumber.Status.CONFIGURED)
    return configs


def load(name: str) -> dict:
    return json.loads((PAYLOADS / name).read_bytes())


def message_bodies(n: int) -> list[bytes]:
    template = load("messages_text_inbound.json")
    bodies = []
    for i in range(n):
        body = copy.deepcopy(template)
        value = body["entry"][0]["changes"][0]["value"]
        lead = i % 500
        phone, user = f"55119{lead:08d}", f"BR.{8 * 10**18 + lead}"
        value["contacts"][0].update(wa_id=phone, user_id=user,
                                    profile={"name": f"Lead {lead}"})
        value["messages"][0].update(id=f"wamid.BENCHMSG{i:09d}", timestamp=str(1790000000 + i),
                                    **{"from": phone, "from_user_id": user})
        if i % 2:
            # Half the traffic on the second number: one number's deliveries are serialized
            # by its row lock, two numbers use both worker processes.
            body["entry"][0]["id"] = "102000000000202"
            value["metadata"] = {"display_phone_number": "5521970005678",
                                 "phone_number_id": "304000000000202"}
        bodies.append(wire(body))
    return bodies


def status_bodies(n: int) -> tuple[list[bytes], list[str]]:
    template = load("messages_status_sent.json")
    bodies, wamids = [], []
    for i in range(n // 3):
        wamid = f"wamid.BENCHOUT{i:09d}"
        wamids.append(wamid)
        for j, status in enumerate(("sent", "delivered", "read")):
            body = copy.deepcopy(template)
            item = body["entry"][0]["changes"][0]["value"]["statuses"][0]
            item.update(id=wamid, status=status, timestamp=str(1790000000 + i * 10 + j))
            bodies.append(wire(body))
    return bodies, wamids


def history_body(order: int, prefix: str) -> tuple[bytes, int]:
    """One history chunk of at most 3 MB on the wire, for number B."""
    body = copy.deepcopy(load("history_phase1_chunk1.json"))
    history = body["entry"][0]["changes"][0]["value"]["history"][0]
    history["metadata"] = {"phase": 1, "chunk_order": order, "progress": min(99, order * 10)}
    threads, n = [], 0
    size = len(wire(body))
    while size < 3 * 1024 * 1024 - 8192:
        t = len(threads)
        phone, user = f"55219{order:03d}{t:05d}", f"BR.{6 * 10**18 + order * 10**6 + t}"
        thread = {"id": phone, "context": {"wa_id": phone, "user_id": user}, "messages": []}
        for _ in range(40):
            n += 1
            outbound = n % 3 == 0
            message = {"from": "5521970005678" if outbound else phone,
                       "id": f"wamid.{prefix}{order:03d}{n:07d}",
                       "timestamp": str(1780000000 + n), "type": "text",
                       "text": {"body": f"Mensagem {n}: ainda tem o apartamento da rua {t}?"},
                       "history_context": {"status": "READ"}}
            message.update({"to": phone} if outbound else {"from_user_id": user})
            thread["messages"].append(message)
        threads.append(thread)
        size += len(wire(thread)) + 1
    history["threads"] = threads
    while len(wire(body)) > 3 * 1024 * 1024:
        threads.pop()
    return wire(body), sum(len(t["messages"]) for t in threads)


def start_worker() -> subprocess.Popen:
    RESULTS.mkdir(exist_ok=True)
    log = (RESULTS / "worker.log").open("w")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-c", "2",
         "--loglevel=WARNING", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env={**os.environ, **ENV}, start_new_session=True, stdout=log, stderr=log,
    )
    from config.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if app.control.ping(timeout=0.5):
            return worker
        if worker.poll() is not None:
            sys.exit(f"The Celery worker exited during startup; see {RESULTS / 'worker.log'}.")
    sys.exit("The Celery worker did not answer a ping within 60 s.")


def stop_worker(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)  # our own process group only
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)


def run_through_worker(name: str, bodies: list[bytes], events: int, timeout: float) -> dict:
    """Posts every body to the webhook view, then waits until the worker processed them all."""
    from django.db.models import Count
    from django.test import Client

    from whatsapp.models import WebhookLog
    from whatsapp.webhooks.intake import webhook_enqueue
    from whatsapp.webhooks.signatures import sign

    client = Client()
    first_id = (WebhookLog.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1
    started = time.monotonic()
    for body in bodies:
        response = client.post("/api/v1/whatsapp/webhook", data=body,
                               content_type="application/json",
                               HTTP_X_HUB_SIGNATURE_256=sign(body, SECRET))
        assert response.status_code == 200, response.status_code
    posted = time.monotonic()
    logs = WebhookLog.objects.filter(id__gte=first_id)
    resent, last_pending, last_progress = 0, None, time.monotonic()
    while time.monotonic() - started < timeout:
        pending = logs.exclude(status__in=["processed", "dead", "parked"]).count()
        if pending == 0:
            break
        if pending != last_pending:
            last_pending, last_progress = pending, time.monotonic()
        elif time.monotonic() - last_progress > 10:
            # What the production sweeper does for tasks lost on the way (e.g. a flushed
            # broker db): re-enqueue rows still waiting. Counted, so a run that needed it shows.
            for log_id in logs.filter(status="received").values_list("id", flat=True):
                webhook_enqueue(log_id)
                resent += 1
            last_progress = time.monotonic()
        time.sleep(0.05)
    done = time.monotonic()
    statuses = dict(logs.values_list("status").annotate(n=Count("id")))
    elapsed = done - started
    return {
        "scenario": name,
        "deliveries": len(bodies),
        "events": events,
        "post_seconds": round(posted - started, 2),
        "total_seconds": round(elapsed, 2),
        "events_per_second": round(events / elapsed, 1),
        "deliveries_per_second": round(len(bodies) / elapsed, 1),
        "statuses": statuses,
        "re_enqueued_by_bench_sweeper": resent,
    }


def run_in_process(name: str, body: bytes, events: int) -> dict:
    from whatsapp.models import WebhookLog
    from whatsapp.webhooks.intake import webhook_store
    from whatsapp.webhooks.process import webhook_process

    log_id = webhook_store(body=body, headers={})
    started = time.monotonic()
    status = webhook_process(log_id)
    elapsed = time.monotonic() - started
    return {"scenario": name, "deliveries": 1, "events": events, "post_seconds": 0.0,
            "total_seconds": round(elapsed, 2), "events_per_second": round(events / elapsed, 1),
            "deliveries_per_second": round(1 / elapsed, 2),
            "statuses": {status: 1}, "bytes": len(body),
            "processed": WebhookLog.objects.get(pk=log_id).status == "processed"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="message deliveries")
    parser.add_argument("--statuses", type=int, default=1500, help="status deliveries")
    parser.add_argument("--chunks", type=int, default=3, help="3 MB history chunks")
    parser.add_argument("--keep-db", action="store_true", help="do not drop the bench database")
    args = parser.parse_args()

    recreate_database()
    setup_django()
    configs = numbers()
    from whatsapp.models import Message

    results = []
    # Measured before the worker starts, so nothing else competes for the two CPUs.
    chunk, count = history_body(99, "INPROC")
    results.append(run_in_process("history 3 MB chunk (in-process)", chunk, count))

    worker = start_worker()
    try:
        bodies = message_bodies(args.messages)
        results.append(run_through_worker("messages (1 per delivery, 2 numbers)", bodies,
                                          len(bodies), 600))

        bodies, wamids = status_bodies(args.statuses)
        a = configs["A"]
        Message.objects.bulk_create([
            Message(organization=a.organization, config=a, wamid=w, direction="outbound",
                    type="text", timestamp="2026-09-21T00:00:00Z") for w in wamids])
        results.append(run_through_worker("statuses (sent/delivered/read)", bodies, len(bodies),
                                          600))

        chunks = [history_body(order, "HIST") for order in range(1, args.chunks + 1)]
        results.append(run_through_worker(
            f"history ({args.chunks} x 3 MB chunks, one number)", [b for b, _ in chunks],
            sum(n for _, n in chunks), 900))
    finally:
        stop_worker(worker)
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            recreate_database(create=False)

    print(f"\n{'scenario':48} {'deliveries':>10} {'events':>8} {'seconds':>8} {'events/s':>9}")
    for r in (r for r in results if r["deliveries"]):
        print(f"{r['scenario']:48} {r['deliveries']:>10} {r['events']:>8} "
              f"{r['total_seconds']:>8} {r['events_per_second']:>9}")
    # Other processes on the box (tests, other benchmarks) share the CPUs: report the load.
    print(f"load average (1, 5, 15 min): {os.getloadavg()}")
    print(json.dumps({"cpus": os.cpu_count(), "worker_concurrency": 2,
                      "loadavg": os.getloadavg(), "results": results}))


if __name__ == "__main__":
    main()
