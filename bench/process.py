"""CPU and wall time per processed delivery, in-process (no Celery, no load generator).

    uv run python bench/run.py --quick --only tracking --keep-db   # leaves qualifica_bench
    uv run python -m bench.process [--deliveries 400] [--batch 20] [--profile] [--async-commit]
                                   [--server-side-binding] [--drainers N] [--our-sends]

Builds the end-to-end burst's mix (statuses in batches of 5, inbound texts, echoes; see
bench/run.py), stores every delivery, then processes them as a drainer does: in batches of
--batch with process_batch (default 50, the drainer's WHATSAPP_WEBHOOK_DRAIN_BATCH), or with
--batch 1 one by one with webhook_process (the drainer before batched processing), and prints
CPU and wall milliseconds and SQL statements per delivery, and the CPU the PostgreSQL server
process of the connection spent meanwhile (read from /proc: the database runs on this
machine). --profile adds a cProfile of the processing, summed by layer (Django ORM, psycopg,
our code…): note that cProfile counts time blocked on the database as psycopg's. --async-commit and
--server-side-binding try two PostgreSQL settings the product does not use, for comparison.
Run it twice: the first run also creates the burst's leads. The burst's outbound messages are
stored first, as bench/run.py does, so its statuses move real rows. --our-sends also stores
them as our sends (OutboundMessage rows with those wamids, as after a campaign), so that the
statuses also move our sends (`whatsapp/sending/statuses.py`); without it they match none.

--drainers N announces the deliveries to the live inbox and runs N forked processes that drain
it as the Celery drainer task does (`inbox.drain`, batches of --batch): the wall time then
includes the drainers' waits on each other's row locks, and the CPU is summed over the
drainers and their PostgreSQL server processes.
"""

import argparse
import cProfile
import datetime as dt
import os
import pstats
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run as R  # noqa: E402

R.setup_in_process()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from whatsapp.models import Message, OutboundMessage, PhoneNumber  # noqa: E402
from whatsapp.webhooks import inbox  # noqa: E402
from whatsapp.webhooks.intake import webhook_announce, webhook_store  # noqa: E402
from whatsapp.webhooks.process import process_batch, webhook_process  # noqa: E402

ROOT = str(Path(__file__).resolve().parent.parent)
LAYERS = (("django/db/models/sql", "Django ORM: query compiling"),
          ("django/db/models", "Django ORM: models, querysets, fields"),
          ("django/db/backends", "Django database backends"), ("django", "Django, other"),
          ("psycopg", "psycopg (includes waiting for PostgreSQL)"))
TICK = os.sysconf("SC_CLK_TCK")


def layer(filename: str) -> str:
    for needle, name in LAYERS:
        if needle in filename:
            return name
    if filename.startswith(ROOT) and "/.venv/" not in filename:
        return "our code"
    return "other (stdlib, builtins, libraries)"


def backend_cpu() -> float:
    """CPU seconds (user + system) of this connection's PostgreSQL server process so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    return _proc_cpu(pid)


def _proc_cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / TICK


def seeded_numbers(ingest) -> dict[str, PhoneNumber]:
    """The burst's numbers by phone_number_id (created on the first run)."""
    if not PhoneNumber.objects.filter(phone_number_id=R.live_numbers(4)[1][1]).exists():
        R.seed_numbers(ingest, 4)
    return {c.phone_number_id: c for c in PhoneNumber.objects.all()}


def our_sends(config: PhoneNumber, wamids: list[str]) -> list[OutboundMessage]:
    """A campaign's sends on `config`, accepted by Meta with these wamids (one lead each)."""
    return OutboundMessage.objects.bulk_create([
        OutboundMessage(organization_id=config.organization_id, config=config,
                        kind=OutboundMessage.Kind.TEMPLATE, to=f"55119{k:08d}",
                        template_name="campanha", template_language="pt_BR",
                        status=OutboundMessage.Status.ACCEPTED, wamid=wamid)
        for k, wamid in enumerate(wamids)], batch_size=1000)


def build(args) -> tuple[list[int], dict]:
    ingest = R._ingest_module()
    numbers = R.live_numbers(4)
    configs = seeded_numbers(ingest)
    scale = max(1, args.deliveries) / 2000
    bodies, per_number, expected = R.burst_deliveries(
        ingest, outbound=int(1500 * scale), inbound=int(800 * scale), echoes=int(300 * scale),
        batch=5, leads=200, numbers=numbers)
    tag = f"wamid.P{time.time_ns() % 10**9}"
    Message.objects.bulk_create([
        Message(organization_id=configs[pnid].organization_id, config=configs[pnid],
                wamid=w.replace("wamid.BENCH", tag), direction="outbound", source="cloud_api",
                type="text", timestamp=dt.datetime(2026, 9, 21, tzinfo=dt.UTC))
        for pnid, wamids in per_number.items() for w in wamids], batch_size=1000)
    if args.our_sends:  # the same wamids as our sends, so their statuses move them
        for pnid, wamids in per_number.items():
            our_sends(configs[pnid], [w.replace("wamid.BENCH", tag) for w in wamids])
    ids = [webhook_store(body=b.replace(b"wamid.BENCH", tag.encode()), headers={})
           for b in bodies]
    return ids, expected, [b.replace(b"wamid.BENCH", tag.encode()) for b in bodies]


def in_process(args, ids: list[int]) -> tuple[Counter, int, float, float, float, object]:
    profile = cProfile.Profile() if args.profile else None
    server = backend_cpu()
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
    server = backend_cpu() - server
    return outcomes, len(statements), cpu, wall, server, profile


def drained(args, ids: list[int], bodies: list[bytes]) -> tuple[Counter, int, float, float, float]:
    """N forked drainers on the live inbox, as the Celery task runs them (no helper tasks
    published: every slot is started here)."""
    settings.WHATSAPP_WEBHOOK_DRAIN_BATCH = args.batch
    settings.WHATSAPP_WEBHOOK_DRAIN_SECONDS = 3600
    settings.WHATSAPP_WEBHOOK_DRAINERS = args.drainers
    inbox._start_drainer = lambda lane, slot, token: None
    inbox._start_if_free = lambda lane, slot: False
    for log_id, body in zip(ids, bodies, strict=True):
        webhook_announce(log_id, body=body)
    connection.close()
    pipes = []
    started = time.perf_counter()
    for slot in range(args.drainers):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            code = 0
            try:
                inbox.redis_client().delete(inbox.SLOT.format("live", slot))
                server = backend_cpu()
                cpu = time.process_time()
                outcomes: Counter = Counter()

                def count(log_id: int, status: str, outcomes: Counter = outcomes) -> None:
                    outcomes.update([str(status)])

                inbox.drain("live", slot, f"bench-{slot}", on_result=count)
                line = (f"{time.process_time() - cpu} {backend_cpu() - server} "
                        + " ".join(f"{k}={v}" for k, v in outcomes.items()))
                os.write(write, line.encode())
            except BaseException:
                import traceback
                traceback.print_exc()
                code = 1
            finally:
                os._exit(code)
        os.close(write)
        pipes.append((pid, read))
    outcomes, cpu, server = Counter(), 0.0, 0.0
    for pid, read in pipes:
        os.waitpid(pid, 0)
        parts = os.read(read, 65536).decode().split()
        os.close(read)
        if not parts:
            continue
        cpu += float(parts[0])
        server += float(parts[1])
        outcomes.update({k: int(v) for k, v in (p.split("=") for p in parts[2:])})
    wall = time.perf_counter() - started
    return outcomes, 0, cpu, wall, server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=400,
                        help="about how many deliveries to build (default 400)")
    parser.add_argument("--batch", type=int, default=50,
                        help="deliveries per process_batch call (default 50); 1: one by one "
                             "with webhook_process")
    parser.add_argument("--drainers", type=int, default=0,
                        help="drain the live inbox with N forked drainers instead")
    parser.add_argument("--our-sends", action="store_true",
                        help="the outbound messages are also our sends (OutboundMessage rows), "
                             "so their statuses go through statuses.outbound_statuses_apply")
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
    ids, expected, bodies = build(args)
    profile = None
    if args.drainers:
        outcomes, statements, cpu, wall, server = drained(args, ids, bodies)
        how = f"{args.drainers} drainers, batch {args.batch}"
    else:
        outcomes, statements, cpu, wall, server, profile = in_process(args, ids)
        how = f"batch {args.batch}"
    n = len(ids)
    print(f"{n} deliveries, {expected['events']} events, outcomes {dict(outcomes)}")
    print(f"per delivery: CPU {1000 * cpu / n:.2f} ms + PostgreSQL {1000 * server / n:.2f} ms, "
          f"wall {1000 * wall / n:.2f} ms"
          + (f", {statements / n:.1f} SQL statements" if statements else "")
          + f" ({how}){' (under cProfile)' if profile else ''}; "
          f"{expected['events'] / wall:.0f} events/s wall; load {os.getloadavg()[0]:.2f}")
    if profile:
        by_layer: Counter = Counter()
        for (filename, _, _), (_, _, own, _, _) in pstats.Stats(profile).stats.items():
            by_layer[layer(filename)] += own
        total = sum(by_layer.values())
        for name, seconds in by_layer.most_common():
            print(f"  {100 * seconds / total:5.1f} %  {name}")
        if args.profile:
            pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
