"""`python -m config.probe [URL]`: exits 0 when the web process answers `URL` (default
`http://127.0.0.1:8000/healthz`) with 200, 1 otherwise. The health check of the `web`
container in docker-compose.yml; standard library only, so a probe costs no Django start-up.

It sends what the proxy in front of gunicorn sends: the first `DJANGO_ALLOWED_HOSTS` entry as
Host (Django refuses any other host) and `X-Forwarded-Proto: https` (so an HTTPS redirect
never answers for the app).
"""

import os
import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8000/healthz"


def probe_host() -> str:
    hosts = [h.strip() for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "").split(",")]
    host = next((h for h in hosts if h and h != "*"), "localhost")
    return host.lstrip(".")  # ".example.com" allows example.com and its subdomains


def main(argv: list[str]) -> int:
    url = argv[0] if argv else DEFAULT_URL
    request = urllib.request.Request(
        url, headers={"Host": probe_host(), "X-Forwarded-Proto": "https"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            ok = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return 1
    if not ok:
        print(f"{url}: HTTP {response.status}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
