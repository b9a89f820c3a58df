"""The health checks of docker-compose.yml, run as compose runs them, against real processes:
healthy while the process works, unhealthy once it is gone (issue 15, item 2)."""

import os
import signal
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.deploy.test_compose import healthcheck_test
from tests.reliability.conftest import ROOT, VENV_BIN, free_port, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def run_healthcheck(stack, service: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs the service's `healthcheck.test` the way Docker does (CMD: argv; CMD-SHELL: sh -c,
    after compose turned `$$` into `$`), with the image's PATH."""
    kind, *command = healthcheck_test(service)
    if kind == "CMD-SHELL":
        command = ["sh", "-c", command[0].replace("$$", "$")]
    full_env = {**stack.env, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", **(env or {})}
    return subprocess.run(command, cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=60)


def test_worker_healthcheck_pings_its_own_worker(stack):
    worker = stack._spawn(
        [str(VENV_BIN / "celery"), "-A", "tests.reliability.celery_app", "worker", "-P",
         "prefork", "-c", "1", "-n", "celery@probe-host", "-l", "INFO"], "worker")
    wait_until(lambda: "ready." in worker.log_path.read_text(errors="replace"), timeout=30,
               message="worker ready")
    alive = run_healthcheck(stack, "worker", {"HOSTNAME": "probe-host"})
    assert alive.returncode == 0, alive.stdout + alive.stderr
    # Another replica's name does not answer for this container.
    other = run_healthcheck(stack, "worker", {"HOSTNAME": "another-host"})
    assert other.returncode != 0

    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=10)
    dead = run_healthcheck(stack, "worker", {"HOSTNAME": "probe-host"})
    assert dead.returncode != 0, dead.stdout


def test_beat_healthcheck_follows_its_heartbeat(stack):
    from ops.models import Heartbeat

    never = run_healthcheck(stack, "beat")
    assert never.returncode == 1 and "beat: error: no heartbeat yet" in never.stdout

    Heartbeat.beat("beat")
    fresh = run_healthcheck(stack, "beat")
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr

    Heartbeat.objects.filter(name="beat").update(at=timezone.now() - timedelta(minutes=10))
    stale = run_healthcheck(stack, "beat")
    assert stale.returncode == 1 and "beat: error: last heartbeat 6" in stale.stdout


def test_web_healthcheck_answers_for_a_live_server_only(stack):
    url = stack.start_web()
    kind, *command = healthcheck_test("web")
    probe = [*command[:-1], f"{url}/healthz"]  # the container's port is 8000; ours is free
    env = {**stack.env, "PATH": f"{VENV_BIN}:{os.environ['PATH']}"}
    assert subprocess.run(probe, cwd=ROOT, env=env, timeout=30).returncode == 0
    closed = [*command[:-1], f"http://127.0.0.1:{free_port()}/healthz"]
    assert subprocess.run(closed, cwd=ROOT, env=env, capture_output=True,
                          timeout=30).returncode == 1
