"""The outbound phase of bench/run.py: sends for 10 numbers at once through the Celery workers
against the Graph stub, paced by Redis (whatsapp/sending/pacing.py).

8 Cloud API numbers (80 messages/s each) and 2 coexistence numbers (20/s), each with more
sends queued than it may make in a second, every send to its own recipient (the pair gate is
not what is measured here; tests/sending/test_pair_rate.py pins it). Every send is queued
through the product's `outbound_queue` in one transaction, so each number's drain
(`send_outbound_number`, whatsapp/sending/batch.py) is published once when it commits; timed
from that commit to the last send accepted. The Graph stub records when each
call arrived per number: the busiest one-second window of each number is counted from those
times (and from `graph_called_at`, the instant the pacer granted), against its limit.
"""

import json
import time
import urllib.request
from bisect import bisect_left
from collections import defaultdict

CLOUD, COEXISTENCE = 8, 2


def busiest_window(times: list[float]) -> int:
    """The most calls in any one-second window [t, t + 1) starting at a call."""
    times = sorted(times)
    return max((bisect_left(times, t + 1.0) - i for i, t in enumerate(times)), default=0)


def seed(per_cloud: int, per_coexistence: int) -> tuple[list, dict]:
    from organizations.models import Organization
    from whatsapp.models import (
        Connection,
        MessageTemplate,
        PhoneNumber,
        SendPolicy,
    )

    numbers, plan = [], {}
    for i in range(CLOUD + COEXISTENCE):
        coexistence = i >= CLOUD
        org = Organization.objects.create(name=f"Bench outbound {i}", slug=f"bench-out-{i}")
        connection = Connection(organization=org, waba_id=f"1029{i:011d}",
                                status=Connection.Status.CONNECTED)
        connection.set_access_token(f"EAAB-bench-out-{i}")
        connection.save()
        config = PhoneNumber.objects.create(
            connection=connection, organization=org, phone_number_id=f"3049{i:011d}",
            display_phone_number=f"55119{i:08d}", status=PhoneNumber.Status.CONFIGURED,
            is_on_biz_app=coexistence)
        SendPolicy.objects.create(organization=org, mode="enabled")
        MessageTemplate.objects.create(organization=org, connection=connection,
                                       waba_id=connection.waba_id, name="lembrete",
                                       language="pt_BR", status="APPROVED")
        numbers.append(config)
        plan[config.phone_number_id] = per_coexistence if coexistence else per_cloud
    return numbers, plan


def phase_outbound(args, graph_port: int, timeout: float = 300) -> dict:
    from django.db import transaction
    from django.db.models import Count

    from whatsapp.models import OutboundMessage
    from whatsapp.sending import pacing, rules
    from whatsapp.sending.queue import outbound_queue

    numbers, plan = seed(args.outbound_per_cloud, args.outbound_per_coexistence)
    stub = f"http://127.0.0.1:{graph_port}/v25.0/bench/sends"
    urllib.request.urlopen(stub, timeout=10).read()  # forget earlier calls
    total = sum(plan.values())
    with transaction.atomic():
        for config in numbers:
            for k in range(plan[config.phone_number_id]):
                outbound_queue(organization=config.organization, request=rules.SendRequest(
                    kind="template", to=f"5521{config.pk % 100:02d}{k:07d}",
                    template_name="lembrete", template_language="pt_BR"))
        started = time.perf_counter()  # the tasks are published as this commits
    sends = OutboundMessage.objects.filter(config__in=numbers)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sends.filter(status__in=["queued", "sending"]).exists():
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    statuses = dict(sends.values_list("status").annotate(n=Count("id")).order_by())
    calls = json.loads(urllib.request.urlopen(stub, timeout=10).read())
    granted: dict[str, list[float]] = defaultdict(list)
    for pnid, at in sends.filter(graph_called_at__isnull=False).values_list(
            "config__phone_number_id", "graph_called_at"):
        granted[pnid].append(at.timestamp())
    per_number = {}
    for config in numbers:
        pnid = config.phone_number_id
        per_number[pnid] = {
            "limit": pacing.limit_for(config), "sends": plan[pnid],
            "graph_calls": len(calls.get(pnid, [])),
            "max_in_1s_at_graph": busiest_window(calls.get(pnid, [])),
            "max_in_1s_granted": busiest_window(granted[pnid]),
        }
    over = sum(max(0, n["max_in_1s_granted"] - n["limit"]) for n in per_number.values())
    first = min((t for ts in calls.values() for t in ts), default=0.0)
    last = max((t for ts in calls.values() for t in ts), default=0.0)
    return {
        "numbers": len(numbers), "sends": total, "seconds": round(seconds, 2),
        "sends_per_s": round(statuses.get("accepted", 0) / seconds, 1),
        "graph_calls_per_s": round(sum(map(len, calls.values())) / max(last - first, 1e-9), 1),
        "statuses": statuses, "per_number": per_number,
        "windows_over_limit": over,
        # At Graph, arrival times include the network and the stub's own queueing, so one
        # window may look one or two calls fuller than the pacer granted.
        "max_over_limit_at_graph": max(n["max_in_1s_at_graph"] - n["limit"]
                                       for n in per_number.values()),
    }
