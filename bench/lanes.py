"""The lanes scenario of bench/run.py (issue 17): while tenant A's history chunks (3 MB each)
and a status burst are being processed, how long tenant B's inbound text messages take from
receipt to processed, with the lanes on and switched off, side by side.

Each mode gets its own web server and workers (WHATSAPP_LANES is read by both: the webhook
picks the inbox lane, the workers the queues), the same traffic and the same number of worker
processes:

- lanes on: `celery -A config worker -Q live,sending -c LIVE` and `-Q bulk,maintenance -c BULK`
  (README "Lanes, queues and workers", one machine);
- lanes off: one `celery -A config worker -c LIVE+BULK` on the single queue.

Tenant A is the fixtures' number B (its WABA has the history), tenant B the fixtures' number A.
B's messages are posted one at a time every `--lanes-interval-ms`, starting once A's traffic
is on its way. Latency is the row's `processed_at - received_at` (both stamped by the product,
one clock).
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time


def _run():
    # bench/run.py's helpers (imported here: run.py imports this module).
    from bench import run

    return run


def build_traffic(args, ingest) -> dict:
    """Tenant A's chunks and statuses, tenant B's messages (bytes, built once for both modes)."""
    run = _run()
    log = run.log
    log(f"lanes: building {args.lanes_chunks} history chunks of 3 MB for tenant A")
    # One chunk built, the others are copies with their own message ids (same length).
    first = ingest.history_body(1, "BENCHLANE")[0]
    chunks = [first.replace(b"wamid.BENCHLANE001", f"wamid.BENCHLANE{order:03d}".encode())
              for order in range(1, args.lanes_chunks + 1)]
    statuses = []
    batch = args.status_batch
    for start in range(0, args.lanes_statuses, batch):
        items = [(f"wamid.BENCHLANEST{i:07d}", "delivered", 1790000000 + i, i % args.leads)
                 for i in range(start, min(start + batch, args.lanes_statuses))]
        statuses.append(run.status_delivery(ingest, items, run.NUMBER_B))
    messages = [run.inbound_delivery(ingest, f"wamid.BENCHLANEIN{i:06d}", i, 1790100000 + i,
                                     run.NUMBER_A)
                for i in range(args.lanes_messages)]
    return {"chunks": chunks, "statuses": statuses, "messages": messages}


def _start_workers(procs, env: dict, args, lanes_on: bool) -> list:
    common = [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "prefork",
              "--loglevel=WARNING", "--without-gossip", "--without-mingle",
              "--without-heartbeat"]
    if lanes_on:
        layout = [("live", ["-Q", "live,sending", "-c", str(args.live_workers)]),
                  ("bulk", ["-Q", "bulk,maintenance", "-c", str(args.bulk_workers)])]
    else:
        layout = [("all", ["-c", str(args.live_workers + args.bulk_workers)])]
    tag = "on" if lanes_on else "off"
    workers = [procs.start(f"celery-lanes-{tag}-{name}",
                           [*common, *options, "-n", f"lanes-{tag}-{name}@%h"], env)
               for name, options in layout]
    from config.celery import app

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if len(app.control.ping(timeout=0.5) or []) >= len(workers):
            return workers
        if any(w.poll() is not None for w in workers):
            break
    raise RuntimeError("lanes: the workers did not start:\n"
                       + procs.log_tail(f"celery-lanes-{tag}-{layout[0][0]}"))


def run_mode(args, procs, env: dict, traffic: dict, *, lanes_on: bool) -> dict:
    run = _run()
    from django.db.models import Max

    from whatsapp.models import WebhookLog

    run.reset_queues_and_logs()
    tag = "on" if lanes_on else "off"
    env = {**env, "WHATSAPP_LANES": "true" if lanes_on else "false"}
    port = run.free_port()
    web = procs.start(f"gunicorn-lanes-{tag}", [
        sys.executable, "-m", "gunicorn", "bench.wsgi:application", "--bind",
        f"127.0.0.1:{port}", "--workers", str(args.web_workers), "--worker-tmp-dir", "/dev/shm",
        "--log-level", "warning"], env)
    workers = []
    try:
        run.wait_http(port, "/healthz")
        workers = _start_workers(procs, env, args, lanes_on)
        # Each mode imports its own copy of the chunks' and statuses' messages.
        mark = b"wamid.BENCHLANE", f"wamid.BENCHLAN{tag[1].upper()}".encode()
        a_bodies = [b.replace(*mark) for b in traffic["chunks"] + traffic["statuses"]]
        b_bodies = [b.replace(*mark) for b in traffic["messages"]]
        first_id = (WebhookLog.objects.aggregate(m=Max("id"))["m"] or 0) + 1
        chunk_posts = [run.loadgen.signed_post(run.WEBHOOK, port, b, run.SECRET)
                       for b in a_bodies[:len(traffic["chunks"])]]
        status_posts = [run.loadgen.signed_post(run.WEBHOOK, port, b, run.SECRET)
                        for b in a_bodies[len(traffic["chunks"]):]]
        run.log(f"lanes {tag}: tenant A posts {len(chunk_posts)} history chunks and "
                f"{len(status_posts)} status deliveries; tenant B {len(b_bodies)} messages, "
                f"one every {args.lanes_interval_ms:.0f} ms")
        senders = [threading.Thread(target=run.loadgen.closed_loop, args=(port, posts),
                                    kwargs={"concurrency": c})
                   for posts, c in ((chunk_posts, 2), (status_posts, 4))]
        started = time.perf_counter()
        for sender in senders:
            sender.start()
        time.sleep(args.lanes_head_start)
        b_errors = 0
        for body in b_bodies:
            result = run.loadgen.closed_loop(
                port, [run.loadgen.signed_post(run.WEBHOOK, port, body, run.SECRET)],
                concurrency=1)
            b_errors += result.errors
            time.sleep(args.lanes_interval_ms / 1000)
        b_hashes = {_sha256(b) for b in b_bodies}
        a_rows = WebhookLog.objects.filter(id__gte=first_id).exclude(body_sha256__in=b_hashes)
        a_pending_after_b = a_rows.exclude(status__in=["processed", "dead", "parked"]).count()
        for sender in senders:
            sender.join()
        total = len(a_bodies) + len(b_bodies)
        done, statuses = run.wait_processed(first_id, total, timeout=args.e2e_timeout)
        rows = WebhookLog.objects.filter(id__gte=first_id, body_sha256__in=b_hashes)
        latencies = sorted((r["processed_at"] - r["received_at"]).total_seconds() * 1000
                           for r in rows.values("received_at", "processed_at")
                           if r["processed_at"])
        summary = run.loadgen.summarize(latencies)
        out = {"lanes": lanes_on, "b_messages": len(b_bodies), "b_processed": len(latencies),
               "b_errors": b_errors, "b_p50_ms": summary["p50_ms"],
               "b_p99_ms": summary["p99_ms"], "b_max_ms": summary["max_ms"],
               "a_deliveries": len(a_bodies),
               "a_unfinished_when_b_done": a_pending_after_b,
               "total_seconds": round(done - started, 2), "log_statuses": statuses}
        run.log(f"  lanes {tag}: B receipt→processed p50 {out['b_p50_ms']} ms, p99 "
                f"{out['b_p99_ms']} ms ({len(latencies)}/{len(b_bodies)} processed); "
                f"{a_pending_after_b} of A's deliveries were still unfinished after B's last "
                f"message; all done in {out['total_seconds']} s")
        return out
    finally:
        for proc in [web, *workers]:
            procs.stop(proc)


def _sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def phase_lanes(args, ingest, procs, env: dict) -> dict:
    traffic = build_traffic(args, ingest)
    out = {"layout": {"on": f"-Q live,sending -c {args.live_workers} + -Q bulk,maintenance "
                            f"-c {args.bulk_workers}",
                      "off": f"-c {args.live_workers + args.bulk_workers} (one queue)"},
           "chunks": args.lanes_chunks, "statuses": args.lanes_statuses}
    for lanes_on in (True, False):
        out["on" if lanes_on else "off"] = run_mode(args, procs, env, traffic,
                                                    lanes_on=lanes_on)
    return out


def add_arguments(parser) -> None:
    parser.add_argument("--live-workers", type=int, default=2,
                        help="lanes phase: processes of the worker serving live,sending "
                             "(default 2)")
    parser.add_argument("--bulk-workers", type=int, default=1,
                        help="lanes phase: processes of the worker serving bulk,maintenance "
                             "(default 1); lanes off runs one worker with both counts added")
    parser.add_argument("--lanes-interval-ms", type=float, default=250.0,
                        help="lanes phase: pause between tenant B's messages (default 250)")


def configure(args) -> None:
    quick = args.quick
    args.lanes_chunks = 5 if quick else 20
    args.lanes_statuses = 2000 if quick else 10000
    args.lanes_messages = 20 if quick else 60
    args.lanes_head_start = 1.0


def table_rows(results: dict) -> list[tuple]:
    """(name, value, detail) rows for bench/run.py's table."""
    lanes = results.get("lanes")
    if not lanes or "on" not in lanes or "off" not in lanes:
        return []
    on, off = lanes["on"], lanes["off"]
    detail = (f"B's {on['b_messages']} messages while A's {lanes['chunks']} chunks + "
              f"{lanes['statuses']} statuses run; lanes on [{lanes['layout']['on']}] vs off "
              f"[{lanes['layout']['off']}]: p50 {on['b_p50_ms']} vs {off['b_p50_ms']} ms, "
              f"p99 {on['b_p99_ms']} vs {off['b_p99_ms']} ms")
    return [("lanes_b_p50_ms", on["b_p50_ms"], detail),
            ("lanes_b_p99_ms", on["b_p99_ms"], "same run, lanes on"),
            ("lanes_off_b_p50_ms", off["b_p50_ms"], "same run, lanes off (WHATSAPP_LANES=false)"),
            ("lanes_off_b_p99_ms", off["b_p99_ms"], "same run, lanes off")]


TARGETS = {
    "lanes_b_p50_ms": ("<", 200.0, "ms", "tenant B receipt→processed p50 during A's bulk, lanes"),
    "lanes_b_p99_ms": ("<", 1000.0, "ms", "tenant B receipt→processed p99 during A's bulk, lanes"),
    "lanes_off_b_p50_ms": ("info", None, "ms", "(info) the same, WHATSAPP_LANES=false"),
    "lanes_off_b_p99_ms": ("info", None, "ms", "(info) the same, WHATSAPP_LANES=false"),
}
