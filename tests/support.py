"""Helpers shared by the suites that run real processes: polling with a deadline, and Debian's
chromium driven by Playwright."""

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


def wait_for(probe: Callable[[], Any], *, timeout: float = 20, interval: float = 0.05,
             message: str = "condition") -> Any:
    """Polls `probe` until it returns something truthy; fails with `message` at the deadline
    (no sleep-and-hope)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"Timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


@contextmanager
def chromium() -> Iterator:
    """Debian's chromium through Playwright (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the ORM calls the tests make
    # between browser steps are still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def staff_client(*perms: str, group: str = "", superuser: bool = False, staff: bool = True):
    """An APIClient logged in as a (staff) user holding `perms` ("app.codename") and `group`."""
    from django.contrib.auth.models import Group, Permission
    from rest_framework.test import APIClient

    from tests.factories import UserFactory

    user = UserFactory(is_staff=staff, is_superuser=superuser)
    if group:
        user.groups.add(Group.objects.get(name=group))
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename))
    client = APIClient()
    client.force_login(user)
    return client


@contextmanager
def solo_worker(env: dict, log: Path, cwd: Path) -> Iterator:
    """A real `celery -A config worker -P solo` with `env`, ready when this yields; stopped
    (TERM, then KILL after 15 s) on exit. Its output goes to `log`."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo",
         "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
        cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: "ready." in log.read_text() or proc.poll() is not None, timeout=60,
                 message="the Celery worker to start")
        assert proc.poll() is None, log.read_text()[-3000:]
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def times_from_processes(target: Callable, args: tuple, *, processes: int = 4) -> list[float]:
    """Runs `target(*args, queue)` in `processes` forked OS processes at once; each puts one
    list of instants on the queue. Returns every instant, sorted."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    workers = [ctx.Process(target=target, args=(*args, out)) for _ in range(processes)]
    for p in workers:
        p.start()
    times = sorted(t for _ in workers for t in out.get(timeout=30))
    for p in workers:
        p.join(timeout=10)
    return times


def busiest_second(times: list[float]) -> int:
    """The most instants in any one-second window starting at one of them."""
    return max((sum(1 for t in times if start <= t < start + 1) for start in times), default=0)


def other_session(*, autocommit: bool = False):
    """A second PostgreSQL session on the test database, as another process (or the DBA) holds
    one: to keep a lock, or to end a session. psycopg's connection: close it (`with`)."""
    import psycopg
    from django.db import connection

    db = connection.settings_dict
    return psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432,
                           user=db["USER"], dbname=db["NAME"], password=db["PASSWORD"] or None,
                           autocommit=autocommit)
