"""SQL queries per processed delivery, by kind (in-process, no load generator).

    uv run python bench/run.py --quick --only tracking --keep-db   # leaves qualifica_bench
    uv run python -m bench.queries [--show]

Stores deliveries with webhook_store and processes them with webhook_process, exactly as a
drainer does, and prints how many queries each took (BEGIN, SAVEPOINT and COMMIT included):
an inbound text from a new lead and from a known one, a 5-status delivery (sent, then
delivered, for known leads) and a phone-app echo. --show prints the SQL of each.
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run as R  # noqa: E402

R.setup_in_process()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from whatsapp.models import Message, PhoneNumber  # noqa: E402
from whatsapp.webhooks.intake import webhook_store  # noqa: E402
from whatsapp.webhooks.process import webhook_process  # noqa: E402


def measure(label: str, body: bytes, show: bool) -> int:
    log_id = webhook_store(body=body, headers={})
    with CaptureQueriesContext(connection) as queries:
        status = webhook_process(log_id)
    print(f"{label:48} {len(queries.captured_queries):3} queries  ({status})")
    if show:
        for query in queries.captured_queries:
            print("    " + query["sql"][:160])
    return len(queries.captured_queries)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="print each query's SQL")
    args = parser.parse_args()
    ingest = R._ingest_module()
    number = R.live_numbers(2)[1]
    config = PhoneNumber.objects.filter(phone_number_id=number[1]).first()
    if config is None:
        config = R.seed_numbers(ingest, 2)[number[1]]
    run = str(time.time_ns())[-9:]
    lead = int(run) % 10**7  # a lead this database has never seen
    wamids = [f"wamid.Q{run}{k}" for k in range(5)]
    Message.objects.bulk_create([
        Message(organization_id=config.organization_id, config=config, wamid=w,
                direction="outbound", source="cloud_api", type="text",
                timestamp=timezone.now()) for w in wamids])
    ts = 1790000000
    measure("inbound text, new lead",
            R.inbound_delivery(ingest, f"wamid.QIN{run}a", lead, ts, number), args.show)
    measure("inbound text, known lead",
            R.inbound_delivery(ingest, f"wamid.QIN{run}b", lead, ts + 1, number), args.show)
    for k in range(5):  # the five statuses' leads, known
        body = R.inbound_delivery(ingest, f"wamid.QIN{run}c{k}", lead + 1 + k, ts, number)
        webhook_process(webhook_store(body=body, headers={}))
    items = [(w, "sent", ts + 10 + k, lead + 1 + k) for k, w in enumerate(wamids)]
    measure("5 statuses (sent), known leads", R.status_delivery(ingest, items, number),
            args.show)
    items = [(w, "delivered", ts + 20 + k, lead + 1 + k) for k, w in enumerate(wamids)]
    measure("5 statuses (delivered), known leads", R.status_delivery(ingest, items, number),
            args.show)
    measure("phone-app echo (coexistence number)",
            R.echo_delivery(ingest, f"wamid.QECHO{run}", lead, ts + 30), args.show)


if __name__ == "__main__":
    main()
