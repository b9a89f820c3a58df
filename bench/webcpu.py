"""CPU per webhook request inside one process, by component (no network, no load generator).

    uv run python bench/run.py --quick --only tracking --keep-db   # leaves qualifica_bench
    uv run python -m bench.webcpu

Calls bench.wsgi's application directly with signed bodies and prints, per request (best of
3 × 1,500), the CPU time of this process and of its PostgreSQL backend (read from /proc when
PostgreSQL runs on this host; 10 ms ticks), for: the bare WSGI reference, the reference view,
the product's webhook, the product through every middleware (MACHINE_ENDPOINTS empty), with a
Celery publish per delivery (inbox off), then without CONN_HEALTH_CHECKS and without the
announce. The README's decomposition was read from this.
"""

import io
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import run as R  # noqa: E402

R.setup_in_process()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from bench import loadgen, wsgi  # noqa: E402
from whatsapp.webhooks import intake  # noqa: E402

BODIES = R.endpoint_mix(R._ingest_module(), 300, "W")


def environ(path: str, body: bytes) -> dict:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": path, "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1:8000", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/json", "REMOTE_ADDR": "127.0.0.1",
            "HTTP_X_HUB_SIGNATURE_256": loadgen.sign(body, R.SECRET), "wsgi.errors": sys.stderr}


def start_response(status, headers):
    assert status.startswith("200"), status


def backend_ticks() -> int:
    """CPU ticks (user + system) of this process's PostgreSQL backend so far."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # PostgreSQL on another host
        return 0
    return int(fields[11]) + int(fields[12])


TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def run(path: str, n: int) -> None:
    for i in range(n):
        b"".join(wsgi.application(environ(path, BODIES[i % len(BODIES)]), start_response))


def measure(label: str, path: str, n: int = 1500) -> None:
    run(path, 100)
    best = None
    for _ in range(3):
        ticks = backend_ticks()
        cpu, wall = time.process_time(), time.perf_counter()
        run(path, n)
        result = (1000 * (time.process_time() - cpu) / n, 1000 * (time.perf_counter() - wall) / n,
                  (backend_ticks() - ticks) * TICK_MS / n)
        best = result if best is None or result[0] < best[0] else best
    print(f"{label:55} cpu {best[0]:.3f} ms  PostgreSQL {best[2]:.3f} ms  "
          f"wall {best[1]:.3f} ms", flush=True)


def main() -> None:
    measure("bare WSGI reference", "/bench/reference-webhook")
    measure("reference view (Django, all middleware)", "/bench/reference-webhook-django")
    measure("product webhook (Redis inbox)", R.WEBHOOK)
    machine = settings.MACHINE_ENDPOINTS
    settings.MACHINE_ENDPOINTS = []
    wsgi.django_application.load_middleware()
    measure("product, through every middleware", R.WEBHOOK)
    settings.MACHINE_ENDPOINTS = machine
    wsgi.django_application.load_middleware()
    settings.WHATSAPP_WEBHOOK_INBOX = False
    measure("product, a Celery publish per delivery (inbox off)", R.WEBHOOK)
    settings.WHATSAPP_WEBHOOK_INBOX = True
    connection.settings_dict["CONN_HEALTH_CHECKS"] = False
    connection.health_check_enabled = False
    measure("product, no CONN_HEALTH_CHECKS", R.WEBHOOK)
    intake.webhook_announce = lambda log_id, **kwargs: None  # this process only
    measure("product, no health checks, no announce", R.WEBHOOK)


if __name__ == "__main__":
    main()
