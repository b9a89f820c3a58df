"""CPU, wall time and SQL statements per status of OUR sends, in-process (issue 17 item 3).

    BENCH_DB_NAME=qualifica_bench_x uv run python -m bench.outstatus [--sends 2000]
        [--batch 250] [--write unnest|orm] [--profile]

After a campaign Meta sends back sent, delivered and read for each of our sends. This queues
--sends sends (OutboundMessage rows with wamids, status accepted) on the fixtures' number A,
then applies their statuses as the live drainer does (`statuses.outbound_statuses_apply`, one
call per batch of --batch statuses in one transaction: a drainer's batch of 50 deliveries of 5
statuses is 250): `sent` (half of them matched by our callback data, half by wamid alone, with
pricing), `delivered` (with pricing), `read`. Then Meta's redelivery of every status (nothing
new: nothing to write). It prints, per status, the worker's CPU, the CPU of the connection's
PostgreSQL server process (read from /proc: the database runs on this machine), wall time and
SQL statements. --write orm writes the changed sends with Django's `bulk_update` instead of the
product's `UPDATE … FROM unnest` (to compare the two). --profile adds a cProfile of the first
pass. The sends stay in the database (a later bench run recreates it).
"""

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run as R  # noqa: E402

R.setup_in_process()

from django.db import connection, transaction  # noqa: E402

from bench.process import backend_cpu, our_sends, seeded_numbers  # noqa: E402
from whatsapp.core.payloads.messages import StatusItem  # noqa: E402
from whatsapp.models import OutboundMessage  # noqa: E402
from whatsapp.sending import statuses  # noqa: E402

PRICING = {"billable": True, "pricing_model": "PMP", "category": "marketing", "type": "regular"}


def sends(count: int) -> list[OutboundMessage]:
    config = seeded_numbers(R._ingest_module())[R.NUMBER_A[1]]
    tag = time.time_ns() % 10**9
    return our_sends(config, [f"wamid.OUT{tag}.{k}" for k in range(count)])


def status_items(messages: list[OutboundMessage]) -> list[StatusItem]:
    """sent, delivered, read of every send, in stage order (as Meta sends them back)."""
    items = []
    for stage, status in enumerate(("sent", "delivered", "read")):
        for k, m in enumerate(messages):
            item = {"id": m.wamid, "status": status, "timestamp": str(1790000000 + 3 * k + stage),
                    "recipient_id": m.to}
            if status != "read":
                item["pricing"] = PRICING
            if k % 2 == 0:
                item["biz_opaque_callback_data"] = m.callback_data
            items.append(StatusItem.from_item(item))
    return items


def apply(organization_id, items: list[StatusItem], batch: int,
          profile: cProfile.Profile | None = None) -> tuple[int, float, float, float]:
    statements = []
    server = backend_cpu()
    cpu, wall = time.process_time(), time.perf_counter()
    if profile:
        profile.enable()
    with connection.execute_wrapper(lambda run, sql, *a: (statements.append(1), run(sql, *a))[1]):
        for i in range(0, len(items), batch):
            with transaction.atomic():
                statuses.outbound_statuses_apply(organization_id, items[i:i + batch])
    if profile:
        profile.disable()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return len(statements), cpu, wall, backend_cpu() - server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=2000, help="sends (3 statuses each)")
    parser.add_argument("--batch", type=int, default=250, help="statuses per call (default 250)")
    parser.add_argument("--write", choices=("unnest", "orm"), default="unnest",
                        help="how the changed sends are written (default: the product's)")
    parser.add_argument("--profile", action="store_true", help="cProfile of the first pass")
    args = parser.parse_args()
    if args.write == "orm":
        statuses._sends_update = lambda messages: OutboundMessage.objects.bulk_update(
            messages, statuses.WRITTEN_FIELDS)
    messages = sends(args.sends)
    items = status_items(messages)
    organization_id = messages[0].organization_id
    profile = cProfile.Profile() if args.profile else None
    for name, run in (("first", profile), ("again (redelivered)", None)):
        statements, cpu, wall, server = apply(organization_id, items, args.batch, run)
        n = len(items)
        print(f"{name}: {n} statuses in batches of {args.batch}: per status CPU "
              f"{1000 * cpu / n:.3f} ms + PostgreSQL {1000 * server / n:.3f} ms, wall "
              f"{1000 * wall / n:.3f} ms, {statements / n:.3f} SQL statements "
              f"({statements} in all)")
    done = OutboundMessage.objects.filter(pk__in=[m.pk for m in messages],
                                          status=OutboundMessage.Status.READ).count()
    print(f"{done} of {len(messages)} sends read; write: {args.write}")
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
