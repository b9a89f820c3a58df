"""CPU, wall time and SQL statements per send, in-process (no Celery), one by one or in batches.

    uv run python bench/run.py --only outbound --keep-db   # leaves the outbound phase's numbers
    uv run python -m bench.sendcpu [--sends 200] [--mode both|one|batch] [--profile]

Queues --sends template sends for the first Cloud API number of the outbound phase (each to
its own recipient), then sends them against a Graph stub started in this process: `one` as
the `send_outbound` task does (worker.outbound_send, one send at a time), `batch` as the
number's drain does (batch.outbound_drain, WHATSAPP_SEND_BATCH / WHATSAPP_SEND_CONCURRENCY from
the environment). The number's limit is lifted (WHATSAPP_THROUGHPUT_MPS) so that no pacing
wait is counted: the figures are the cost of a send. --profile adds a cProfile of a batch run.
The sends it makes stay in the database (a later bench run recreates it).
"""

import argparse
import cProfile
import itertools
import os
import pstats
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import graph_stub  # noqa: E402
from bench import run as R  # noqa: E402

os.environ["WHATSAPP_THROUGHPUT_MPS"] = "1000000"
R.setup_in_process()

from django.conf import settings  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.db.models import Count  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from config.cache import redis_client  # noqa: E402
from whatsapp.models import OutboundMessage, PhoneNumber  # noqa: E402
from whatsapp.sending import rules  # noqa: E402
from whatsapp.sending.batch import outbound_drain  # noqa: E402
from whatsapp.sending.queue import outbound_queue  # noqa: E402
from whatsapp.sending.worker import outbound_send  # noqa: E402


def stub() -> None:
    """The Graph stub on a free port, in a thread; wamids that no earlier run used."""
    port = R.free_port()
    graph_stub._wamids = itertools.count(int(time.time() * 1000) * 1000)
    threading.Thread(target=graph_stub.serve, args=(port, 0.0), daemon=True).start()
    settings.META_GRAPH_API_URL = f"http://127.0.0.1:{port}"
    R.wait_http(port, "/v25.0/debug_token")


def queue(config: PhoneNumber, count: int) -> list:
    tag = int(time.time() * 1000) % 10**7
    with transaction.atomic():
        return [outbound_queue(organization=config.organization, request=rules.SendRequest(
            kind="template", to=f"55{tag:07d}{k:04d}", template_name="lembrete",
            template_language="pt_BR"))[0].pk for k in range(count)]


def measure(label: str, count: int, ids: list, run) -> None:
    redis_client().flushdb()  # the bench's own Redis db: pacing windows and pair gates
    cpu, wall = time.process_time(), time.perf_counter()
    with CaptureQueriesContext(connection) as queries:
        run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    statuses = dict(OutboundMessage.objects.filter(pk__in=ids).values_list("status")
                    .annotate(n=Count("id")).order_by())
    print(f"{label}: {count} sends, CPU {1000 * cpu / count:.2f} ms/send, wall "
          f"{1000 * wall / count:.2f} ms/send, {len(queries) / count:.2f} SQL/send "
          f"(this thread's), {statuses}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=200)
    parser.add_argument("--mode", choices=["both", "one", "batch"], default="both")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    config = (PhoneNumber.objects.select_related("organization")
              .filter(organization__slug="bench-out-0").first())
    if config is None:
        sys.exit("no outbound numbers: run `uv run python bench/run.py --only outbound "
                 "--keep-db` first")
    stub()

    def drain() -> None:
        while outbound_drain(config.pk).sent:
            pass

    if args.mode in ("both", "one"):
        ids = queue(config, args.sends)
        measure("one by one (worker.outbound_send)", args.sends, ids,
                lambda: [outbound_send(i) for i in ids])
    if args.mode in ("both", "batch"):
        ids = queue(config, args.sends)
        measure(f"batch (batch.outbound_drain, batch {settings.WHATSAPP_SEND_BATCH}, "
                f"concurrency {settings.WHATSAPP_SEND_CONCURRENCY})", args.sends, ids, drain)
    if args.profile:
        queue(config, args.sends)
        profile = cProfile.Profile()
        profile.runcall(drain)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
