"""Static files in production (issue 15, item 1): the Dockerfile's `collectstatic`, then gunicorn
with `config.settings.production` and the documented production environment (throwaway
secrets), serving the settings page's script and unfold's admin CSS under hashed, far-future
cacheable URLs.
"""

import os
import re
import secrets
import subprocess
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.db import connection

from tests.support import wait_for

pytestmark = [pytest.mark.production, pytest.mark.django_db(transaction=True)]

ROOT = Path(settings.BASE_DIR)
VENV_BIN = ROOT / ".venv" / "bin"
ONE_YEAR = 365 * 24 * 3600
# HTTPS as the proxy in front of gunicorn reports it (SECURE_PROXY_SSL_HEADER).
HEADERS = {"X-Forwarded-Proto": "https"}


def documented_production_env(static_root: Path) -> dict[str, str]:
    """The variables `.env.example` lists as required in production, with throwaway values,
    pointed at the test PostgreSQL and Redis. Nothing else leaks in from the test process."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# Required in production"))
    required = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        if not line.startswith("#"):
            required.append(line.split("=", 1)[0])
    db = connection.settings_dict
    known = {
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": (f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                         f"{db['PORT'] or 5432}/{db['NAME']}"),
        "REDIS_URL": os.environ["REDIS_URL"],
        "TOKEN_ENCRYPTION_KEY": secrets.token_hex(32),
    }
    env = {name: known.get(name, secrets.token_urlsafe(24)) for name in required}
    return {"PATH": f"{VENV_BIN}:{os.environ['PATH']}", "HOME": os.environ.get("HOME", "/root"),
            "PYTHONUNBUFFERED": "1", "STATIC_ROOT": str(static_root), **env,
            "DJANGO_SETTINGS_MODULE": "config.settings.production"}


def dockerfile_collectstatic() -> str:
    """The Dockerfile's collectstatic step, as the image build runs it."""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("RUN ") and "collectstatic" in line:
            return line[len("RUN "):]
    raise AssertionError("the Dockerfile has no collectstatic step")


@pytest.fixture
def production_web(tmp_path):
    static_root = tmp_path / "static"
    env = documented_production_env(static_root)
    build_env = {k: v for k, v in env.items() if k != "DJANGO_SETTINGS_MODULE"}
    build = subprocess.run(["bash", "-c", dockerfile_collectstatic()], cwd=ROOT, env=build_env,
                           capture_output=True, text=True, timeout=180)
    assert build.returncode == 0, build.stderr[-3000:]
    assert (static_root / "staticfiles.json").exists(), "no manifest: not the production storage"

    from tests.reliability.conftest import free_port, kill_group

    port = free_port()
    log = tmp_path / "gunicorn.log"
    proc = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "config.wsgi:application", "-b", f"127.0.0.1:{port}",
         "-w", "1", "--timeout", "30"],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return requests.get(f"{url}/healthz", headers=HEADERS, timeout=1).ok
        except requests.RequestException:
            return False

    try:
        wait_for(up, timeout=30, interval=0.2, message="gunicorn with production settings")
        yield url, env
    finally:
        kill_group(proc)


def assert_cacheable_static(response: requests.Response) -> None:
    assert response.status_code == 200, response.status_code
    cache_control = response.headers.get("Cache-Control", "")
    max_age = re.search(r"max-age=(\d+)", cache_control)
    assert max_age and int(max_age.group(1)) >= ONE_YEAR, cache_control
    assert "public" in cache_control, cache_control


def session_cookie(env: dict[str, str], user_id: int) -> str:
    """A logged-in session for `user_id`, made by the production settings themselves (the
    session is signed with the throwaway secret key, so the test process cannot make it)."""
    code = ("import django; django.setup()\n"
            "from django.contrib.auth import get_user_model, login\n"
            "from django.contrib.sessions.backends.db import SessionStore\n"
            "from django.test import RequestFactory\n"
            "request = RequestFactory().get('/')\n"
            "request.session = SessionStore()\n"
            f"user = get_user_model().objects.get(pk={user_id})\n"
            "login(request, user, backend='django.contrib.auth.backends.ModelBackend')\n"
            "request.session.save()\n"
            "print(request.session.session_key)\n")
    out = subprocess.run([str(VENV_BIN / "python"), "-c", code], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_production_serves_hashed_static_files_with_far_future_cache_headers(production_web):
    from tests.factories import MembershipFactory

    url, env = production_web
    admin = MembershipFactory().user

    # The settings page (logged in as the imobiliária's admin) loads its script, the
    # "Conectar WhatsApp" button, by a hashed URL.
    cookie = f"sessionid={session_cookie(env, admin.pk)}"
    page = requests.get(f"{url}/dashboard/settings/whatsapp", timeout=10,
                        headers={**HEADERS, "Cookie": cookie}, allow_redirects=False)
    assert page.status_code == 200, (page.status_code, page.headers.get("Location"))
    scripts = re.findall(r'src="(/static/js/whatsapp_settings\.[0-9a-f]{12}\.js)"', page.text)
    assert scripts, "the settings page does not load its hashed script"
    script = requests.get(f"{url}{scripts[0]}", timeout=10,
                          headers={**HEADERS, "Accept-Encoding": "gzip"})
    assert_cacheable_static(script)
    assert "javascript" in script.headers["Content-Type"], script.headers["Content-Type"]
    assert script.headers.get("Content-Encoding") == "gzip"  # compressed at build time
    assert script.text == (ROOT / "static" / "js" / "whatsapp_settings.js").read_text()

    # The admin's login page links unfold's CSS by its hashed URL, and that URL is served.
    login = requests.get(f"{url}/admin/login/", headers=HEADERS, timeout=10)
    assert login.status_code == 200, login.status_code
    css_urls = re.findall(r'href="(/static/unfold/css/styles\.[0-9a-f]{12}\.css)"', login.text)
    assert css_urls, "the admin page does not link unfold's hashed stylesheet"
    css = requests.get(f"{url}{css_urls[0]}", headers=HEADERS, timeout=10)
    assert_cacheable_static(css)
    assert css.headers["Content-Type"].startswith("text/css")
    assert len(css.content) > 10_000  # the real stylesheet, not an error page

    # The web container's health check (docker-compose.yml) passes against production settings.
    probe = subprocess.run([str(VENV_BIN / "python"), "-m", "config.probe", f"{url}/healthz"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert probe.returncode == 0, probe.stderr

    # A static file that does not exist is a 404.
    assert requests.get(f"{url}/static/js/nope.js", headers=HEADERS, timeout=10).status_code \
        == 404
