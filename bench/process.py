"""CPU and wall time per processed delivery, in-process (no Celery, no load generator).

    uv run python bench/run.py --quick --only tracking --keep-db   # leaves qualifica_bench
    uv run python -m bench.process [--deliveries 400] [--batch 20] [--profile] [--async-commit]
                                   [--server-side-binding]

Builds the end-to-end burst's mix (statuses in batches of 5, inbound texts, echoes; see
bench/run.py), stores every delivery, then processes them as a drainer does: in batches of
--batch with process_batch (default 20, the drainer's WHATSAPP_WEBHOOK_DRAIN_BATCH), or with
--batch 1 one by one with webhook_process (the drainer before batched processing), and prints
CPU and wall milliseconds and SQL statements per delivery. --profile adds a cProfile of the
processing, summed by layer (Django ORM, psycopg, our code…): note that
cProfile counts time blocked on the database as psycopg's. --async-commit and
--server-side-binding try two PostgreSQL settings the product does not use, for comparison.
Run it twice: the first run also creates the burst's leads.
"""

import argparse
import cProfile
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run as R  # noqa: E402

R.setup_in_process()

from django.db import connection  # noqa: E402

from whatsapp.models import PhoneNumber  # noqa: E402
from whatsapp.webhooks.intake import webhook_store  # noqa: E402
from whatsapp.webhooks.process import process_batch, webhook_process  # noqa: E402

ROOT = str(Path(__file__).resolve().parent.parent)
LAYERS = (("django/db/models/sql", "Django ORM: query compiling"),
          ("django/db/models", "Django ORM: models, querysets, fields"),
          ("django/db/backends", "Django database backends"), ("django", "Django, other"),
          ("psycopg", "psycopg (includes waiting for PostgreSQL)"))


def layer(filename: str) -> str:
    for needle, name in LAYERS:
        if needle in filename:
            return name
    if filename.startswith(ROOT) and "/.venv/" not in filename:
        return "our code"
    return "other (stdlib, builtins, libraries)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=400,
                        help="about how many deliveries to build (default 400)")
    parser.add_argument("--batch", type=int, default=20,
                        help="deliveries per process_batch call (default 20); 1: one by one "
                             "with webhook_process")
    parser.add_argument("--profile", action="store_true", help="cProfile, summed by layer")
    parser.add_argument("--async-commit", action="store_true",
                        help="SET synchronous_commit = off for this session (not the product's)")
    parser.add_argument("--server-side-binding", action="store_true",
                        help="psycopg server-side parameter binding (not the product's)")
    args = parser.parse_args()
    if args.server_side_binding:
        connection.close()
        connection.settings_dict["OPTIONS"]["server_side_binding"] = True
    if args.async_commit:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
    ingest = R._ingest_module()
    numbers = R.live_numbers(4)
    if not PhoneNumber.objects.filter(phone_number_id=numbers[1][1]).exists():
        R.seed_numbers(ingest, 4)
    scale = max(1, args.deliveries) / 2000
    bodies, _, expected = R.burst_deliveries(
        ingest, outbound=int(1500 * scale), inbound=int(800 * scale), echoes=int(300 * scale),
        batch=5, leads=200, numbers=numbers)
    tag = f"wamid.P{time.time_ns() % 10**9}".encode()
    ids = [webhook_store(body=b.replace(b"wamid.BENCH", tag), headers={}) for b in bodies]
    profile = cProfile.Profile() if args.profile else None
    cpu, wall = time.process_time(), time.perf_counter()
    if profile:
        profile.enable()
    statements = []
    with connection.execute_wrapper(lambda run, sql, *a: (statements.append(1), run(sql, *a))[1]):
        if args.batch <= 1:
            outcomes = Counter(str(webhook_process(log_id)) for log_id in ids)
        else:
            outcomes = Counter(str(status) for i in range(0, len(ids), args.batch)
                               for _, status in process_batch(ids[i:i + args.batch]))
    if profile:
        profile.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{len(ids)} deliveries, {expected['events']} events, outcomes {dict(outcomes)}")
    print(f"per delivery: CPU {1000 * cpu / len(ids):.2f} ms, wall {1000 * wall / len(ids):.2f} ms"
          f", {len(statements) / len(ids):.1f} SQL statements (batch {args.batch})"
          f"{' (under cProfile)' if profile else ''}")
    if profile:
        by_layer: Counter = Counter()
        for (filename, _, _), (_, _, own, _, _) in pstats.Stats(profile).stats.items():
            by_layer[layer(filename)] += own
        total = sum(by_layer.values())
        for name, seconds in by_layer.most_common():
            print(f"  {100 * seconds / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
