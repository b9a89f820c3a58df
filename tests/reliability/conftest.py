"""Real processes for the fault tests: throwaway Redis servers (broker, cache), a gunicorn web
server and Celery workers, all pointed at the pytest-django test database.

Nothing here touches the shared Redis on 6379: every Redis is a private `redis-server` on a free
port that the tests stop and restart at will. Every process is started in its own session and
killed (SIGKILL to its process group) at teardown.
"""

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery
from django.conf import settings
from django.db import connection

from tests.support import wait_for as wait_until
from whatsapp.webhooks.signatures import sign

ROOT = Path(settings.BASE_DIR)
VENV_BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_group(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=10)


class RedisServer:
    def __init__(self, tmp: Path, name: str) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = tmp / f"redis-{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(self.ping, timeout=10, message=f"redis on {self.port}")

    def stop(self) -> None:
        if self.proc:
            kill_group(self.proc)
            self.proc = None

    def ping(self) -> bool:
        try:
            return redis.Redis.from_url(self.url, socket_connect_timeout=0.2).ping()
        except redis.RedisError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url)


class Stack:
    """Environment and process handles for one test."""

    def __init__(self, tmp: Path, broker: RedisServer, cache: RedisServer) -> None:
        self.tmp, self.broker, self.cache = tmp, broker, cache
        self.markers = tmp / "markers"
        self.markers.mkdir(exist_ok=True)
        self.procs: list[subprocess.Popen] = []
        db = connection.settings_dict
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))},
            "DJANGO_SETTINGS_MODULE": "config.settings.base",
            "DATABASE_URL": (f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                             f"{db['PORT'] or 5432}/{db['NAME']}"),
            "DB_CONN_MAX_AGE": "0",
            "REDIS_URL": cache.url,
            "CELERY_BROKER_URL": broker.url,
            "META_APP_ID": settings.META_APP_ID,
            "META_APP_SECRET": settings.META_APP_SECRET,
            "META_WEBHOOK_VERIFY_TOKEN": settings.META_WEBHOOK_VERIFY_TOKEN,
            "TOKEN_ENCRYPTION_KEY": settings.TOKEN_ENCRYPTION_KEY,
            # Any Graph call fails fast instead of reaching Meta.
            "META_GRAPH_API_URL": "http://127.0.0.1:9",
            "SENTRY_DSN": "",
            "LOG_LEVEL": "INFO",
            # Short lease/visibility and fast retries, so crashes and backoff play out in seconds.
            "WHATSAPP_WEBHOOK_LEASE_SECONDS": "4",
            "CELERY_VISIBILITY_TIMEOUT": "8",
            "CELERY_TASK_SOFT_TIME_LIMIT": "25",
            "CELERY_TASK_TIME_LIMIT": "30",
            "WHATSAPP_WEBHOOK_SWEEP_STALE_SECONDS": "0",
            "WHATSAPP_WEBHOOK_RETRY_BASE_SECONDS": "0.5",
            "WHATSAPP_WEBHOOK_RETRY_MAX_SECONDS": "1",
            "WHATSAPP_WEBHOOK_MAX_ATTEMPTS": "3",
            "RELIABILITY_MARKERS": str(self.markers),
            "PYTHONUNBUFFERED": "1",
        }
        self.web_url = ""
        self._sender: Celery | None = None

    # --- processes ------------------------------------------------------------------------
    def _spawn(self, args: list[str], name: str, env: dict | None = None) -> subprocess.Popen:
        log = self.tmp / f"{name}.log"
        proc = subprocess.Popen(args, cwd=ROOT, env={**self.env, **(env or {})},
                                stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        proc.log_path = log  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def start_worker(self, name: str = "worker", concurrency: int = 1,
                     queues: str | None = None) -> subprocess.Popen:
        """A worker serving `queues` (`-Q`, e.g. "bulk,maintenance"), or all of them."""
        proc = self._spawn(
            [str(VENV_BIN / "celery"), "-A", "tests.reliability.celery_app", "worker",
             "-P", "prefork", "-c", str(concurrency), "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-l", "INFO", "-n", f"{name}-{uuid.uuid4().hex[:6]}@%h",
             *(["-Q", queues] if queues else [])],
            name)
        wait_until(lambda: "ready." in proc.log_path.read_text(errors="replace")
                   or proc.poll() is not None, timeout=30, message="worker ready")
        assert proc.poll() is None, proc.log_path.read_text()[-3000:]
        return proc

    def start_web(self, env: dict | None = None, name: str = "web") -> str:
        port = free_port()
        proc = self._spawn(
            [str(VENV_BIN / "gunicorn"), "config.wsgi:application", "-b", f"127.0.0.1:{port}",
             "-w", "2", "--timeout", "30", "--graceful-timeout", "1"], name, env)
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: _answers(url) or proc.poll() is not None, timeout=30,
                   message="web server")
        assert proc.poll() is None, proc.log_path.read_text()[-3000:]
        if not self.web_url:
            self.web_url = url
        return url

    def send(self, task: str, *args) -> str:
        """Publishes a task by name, as beat would (e.g. the sweeper)."""
        if self._sender is None:
            self._sender = Celery(broker=self.broker.url, set_as_current=False)
            self._sender.conf.task_serializer = "json"
        # To the queue the task is routed to (config/settings/lanes.py), as beat would.
        route = settings.CELERY_TASK_ROUTES.get(task, {})
        queue = route.get("queue", settings.CELERY_TASK_DEFAULT_QUEUE)
        return self._sender.send_task(task, args=list(args), queue=queue).id

    def sweep_until(self, condition: Callable[[], object], *, timeout: float, message: str,
                    interval: float = 1.0) -> None:
        """Sends the sweeper task (what beat does every 30 s) until `condition()` holds."""
        def swept() -> object:
            if condition():
                return True
            self.send("whatsapp.tasks.sweep_webhooks")
            return False

        wait_until(swept, timeout=timeout, interval=interval, message=message)

    def task_finished(self, task_id: str) -> bool:
        """True once a worker logged the task as finished (the logs are the workers' own)."""
        return any(f"[{task_id}] succeeded" in p.log_path.read_text(errors="replace")
                   or f"[{task_id}] raised" in p.log_path.read_text(errors="replace")
                   for p in self.procs if "worker" in p.log_path.name)

    def stop_all(self) -> None:
        for proc in self.procs:
            kill_group(proc)
        if self._sender is not None:
            self._sender.close()


def _answers(url: str) -> bool:
    import requests

    try:
        return requests.get(f"{url}/healthz", timeout=1).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture(scope="session")
def redis_pair(tmp_path_factory) -> Iterator[tuple[RedisServer, RedisServer]]:
    tmp = tmp_path_factory.mktemp("redis")
    broker, cache = RedisServer(tmp, "broker"), RedisServer(tmp, "cache")
    broker.start()
    cache.start()
    yield broker, cache
    broker.stop()
    cache.stop()


@pytest.fixture
def stack(transactional_db, redis_pair, tmp_path) -> Iterator[Stack]:
    """Depends on transactional_db so its processes die before the tables are flushed."""
    broker, cache = redis_pair
    for server in (broker, cache):
        if server.proc is None:
            server.start()
        server.client().flushall()
    s = Stack(tmp_path, broker, cache)
    yield s
    s.stop_all()


def envelope(field: str, value: dict) -> bytes:
    """A WhatsApp webhook envelope with one change, as Meta serializes it."""
    body = {"object": "whatsapp_business_account",
            "entry": [{"id": "102000000000101", "time": int(time.time()),
                       "changes": [{"field": field, "value": value}]}]}
    return json.dumps(body, separators=(",", ":")).encode()


def post(url: str, body: bytes, *, signed: bool = True, timeout: float = 10):
    import requests

    headers = {"Content-Type": "application/json"}
    if signed:
        headers["X-Hub-Signature-256"] = sign(body, settings.META_APP_SECRET)
    return requests.post(f"{url}/api/v1/whatsapp/webhook", data=body, headers=headers,
                         timeout=timeout)
