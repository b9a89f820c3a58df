"""CPU and wall time of one 3 MB history chunk's import, in-process (no Celery, no web server).

    uv run python bench/run.py --quick --only tracking --keep-db   # leaves the bench database
    uv run python -m bench.history [--chunks 3] [--profile] [--sql] [--redeliver]

Builds `bench/ingest.py`'s 3 MB history chunk for number B (a new wamid prefix every run),
stores it as the webhook would (`webhook_store`), then processes it as the bulk drainer does
(`webhook_process`: claim, parse, route and lock, import, mark processed), and prints per chunk
the CPU and wall seconds, split into the parse of the body (`parse_delivery`, timed apart on
the same bytes) and the rest, with the number of SQL statements and the database's share of
the wall time (each statement timed around its execution, COMMIT included).
--profile adds a cProfile of the processing summed by layer (as `bench.process`) and the
functions with the most own time; cProfile counts time blocked on PostgreSQL as psycopg's.
--sql lists the slowest statements. --redeliver processes each chunk a second time (a
redelivered chunk: nothing new to insert).
"""

import argparse
import cProfile
import gc
import os
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run as R  # noqa: E402

R.setup_in_process()

from django.db import connection  # noqa: E402

from bench.process import layer  # noqa: E402
from whatsapp.conversations import bulk  # noqa: E402
from whatsapp.core.payloads import parse_delivery  # noqa: E402
from whatsapp.models import Message, PhoneNumber, WebhookLog  # noqa: E402
from whatsapp.webhooks.intake import webhook_store  # noqa: E402
from whatsapp.webhooks.process import webhook_process  # noqa: E402


class Statements:
    """Each SQL statement's wall time (the execute wrapper runs around the driver's call)."""

    def __init__(self) -> None:
        self.timed: list[tuple[float, str]] = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.timed.append((time.perf_counter() - started, sql))


class Timed:
    """Wall seconds spent inside `owner.name` (patched on the instance or module)."""

    def __init__(self, owner, name: str) -> None:
        self.seconds, self.owner, self.name = 0.0, owner, name
        self.original = getattr(owner, name, None)
        if self.original:  # (an older tree without it: 0)
            setattr(owner, name, self)

    def __call__(self, *args, **kwargs):
        started = time.perf_counter()
        try:
            return self.original(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started


class GcTime:
    """CPU seconds the cyclic garbage collector ran (gc.callbacks), by generation."""

    def __init__(self) -> None:
        self.seconds, self.runs, self.started = 0.0, Counter(), 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self.started = time.process_time()
        else:
            self.seconds += time.process_time() - self.started
            self.runs[info["generation"]] += 1


def intake(ingest, times: int, prefix: str) -> None:
    """CPU and wall per POST of the 3 MB chunk through the webhook view, and its parts."""
    import hashlib

    from django.test import Client

    from whatsapp.core import lanes
    from whatsapp.webhooks.signatures import sign

    body, _ = ingest.history_body(999, prefix + "I")
    client = Client(SERVER_NAME="127.0.0.1")  # the bench's ALLOWED_HOSTS
    for _ in range(times):
        cpu, wall = time.process_time(), time.perf_counter()
        response = client.post("/api/v1/whatsapp/webhook", data=body,
                               content_type="application/json",
                               HTTP_X_HUB_SIGNATURE_256=sign(body, R.SECRET))
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"POST {len(body)} bytes: {response.status_code}, CPU {cpu:.3f} s, wall {wall:.3f} s")
    parts = {"HMAC-SHA256": lambda: sign(body, R.SECRET),
             "sha256": lambda: hashlib.sha256(body).hexdigest(),
             "lane byte scan (fields_in, tenant_of)": lambda: (lanes.fields_in(body),
                                                                lanes.tenant_of(body))}
    for name, part in parts.items():
        cpu = time.process_time()
        part()
        print(f"  {name}: CPU {1000 * (time.process_time() - cpu):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=3, help="chunks to import (default 3)")
    parser.add_argument("--profile", action="store_true", help="cProfile, summed by layer")
    parser.add_argument("--sql", action="store_true", help="the slowest statements")
    parser.add_argument("--no-gc", action="store_true",
                        help="the cyclic garbage collector off around each webhook_process")
    parser.add_argument("--intake", type=int, default=0, metavar="N",
                        help="also POST the chunk N times through the webhook view (Django test "
                             "client: signature, hashes, lane scan, INSERT, announce)")
    parser.add_argument("--redeliver", action="store_true", help="process every chunk twice")
    args = parser.parse_args()
    ingest = R._ingest_module()
    if not PhoneNumber.objects.filter(phone_number_id=R.NUMBER_B[1]).exists():
        R.seed_numbers(ingest, 1)
    prefix = f"H{time.time_ns() % 10**9:09d}"
    profile = cProfile.Profile() if args.profile else None
    for order in range(1, args.chunks + 1):
        body, count = ingest.history_body(order, prefix)
        cpu = time.process_time()
        parse_delivery(body)
        parse_cpu = time.process_time() - cpu
        for attempt in range(2 if args.redeliver else 1):
            log_id = webhook_store(body=body, headers={})
            statements = Statements()
            collector = GcTime()
            commit, copy = Timed(connection, "commit"), Timed(bulk, "_copy_rows")
            cpu, wall = time.process_time(), time.perf_counter()
            if profile:
                profile.enable()
            if args.no_gc:
                gc.disable()
            with connection.execute_wrapper(statements):
                status = webhook_process(log_id)
            gc.enable()
            if profile:
                profile.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            del connection.commit
            gc.callbacks.remove(collector)
            if copy.original:
                bulk._copy_rows = copy.original
            db = sum(t for t, _ in statements.timed)
            imported = Message.objects.filter(
                wamid__startswith=f"wamid.{prefix}{order:03d}").count()
            print(f"chunk {order}{' (again)' if attempt else ''}: {len(body)} bytes, {count} "
                  f"messages, {imported} stored, {status}: CPU {cpu:.3f} s (parse {parse_cpu:.3f}"
                  f" s), wall {wall:.3f} s, {len(statements.timed)} SQL statements taking "
                  f"{db:.3f} s wall, COPY {copy.seconds:.3f} s, COMMIT {commit.seconds:.3f} s, GC "
                  f"{collector.seconds:.3f} s CPU {dict(sorted(collector.runs.items()))}"
                  f"{' (under cProfile)' if profile else ''}")
            if args.sql:
                for seconds, sql in sorted(statements.timed, reverse=True)[:8]:
                    print(f"    {1000 * seconds:8.1f} ms  {' '.join(sql.split())[:110]}")
            WebhookLog.objects.filter(pk=log_id).update(raw_body=None)
    if args.intake:
        intake(ingest, args.intake, prefix)
    if profile:
        stats = pstats.Stats(profile)
        by_layer: Counter = Counter()
        for (filename, _, _), (_, _, own, _, _) in stats.stats.items():
            by_layer[layer(filename)] += own
        total = sum(by_layer.values())
        for name, seconds in by_layer.most_common():
            print(f"  {100 * seconds / total:5.1f} %  {seconds:6.3f} s  {name}")
        stats.sort_stats("tottime").print_stats(25)
        stats.sort_stats("cumulative").print_stats(45)
    print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
