"""Request ids (`X-Request-ID`, echoed), the client address behind trusted proxies, and the
short way through for endpoints only machines call (Meta's webhook)."""

import ipaddress
import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.urls import resolve, reverse

from .logging import org_id_var, request_id_var

# A proxy's id is trusted only if it looks like an id: it ends up in every log line.
_SANE_ID = re.compile(r"^[A-Za-z0-9._\-]{8,128}$")


class RequestIdMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _SANE_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        id_token = request_id_var.set(request_id)
        org_token = org_id_var.set("")
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(id_token)
            org_id_var.reset(org_token)
        response["X-Request-ID"] = request_id
        return response


class TrustedProxyMiddleware:
    """The client's address behind our own reverse proxies (`TRUSTED_PROXIES`, CIDRs).

    Only when `REMOTE_ADDR` is a trusted proxy, `X-Forwarded-For` is read from the right (each
    proxy appends the address it received the request from) and the first address that is not
    a trusted proxy becomes `REMOTE_ADDR`; what a client wrote further left is never used.
    From anyone else the header is ignored, so a client cannot choose its own address. Every
    reader (audit log, per-IP limits) keeps reading `REMOTE_ADDR`.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.trusted = parse_networks(settings.TRUSTED_PROXIES)

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.trusted:
            client = client_address(request.META.get("REMOTE_ADDR", ""),
                                    request.META.get("HTTP_X_FORWARDED_FOR", ""), self.trusted)
            if client:
                request.META["REMOTE_ADDR"] = client
        return self.get_response(request)


class MachineEndpointMiddleware:
    """Endpoints only machines call (`MACHINE_ENDPOINTS`, URL names: Meta's webhook) skip
    the middlewares below this one, which serve people with browsers: sessions, language,
    CSRF (the webhook is exempt anyway), the logged-in user, flash messages, frame options.

    The webhook is most of the traffic and Meta waits on it (bench/webcpu.py: those seven cost
    it about as much CPU as storing the delivery). Everything above this one still runs for
    it: the request id, the client address behind trusted proxies (the invalid-signature limit
    is per address), SecurityMiddleware (HTTPS redirect, HSTS) and, in production, WhiteNoise.
    An exception in the view is still turned into a 500 (and reported) by Django's handler.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.views: dict[str, Callable] | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if self.views is None:  # the URLconf is read at the first request, not at start-up
            self.views = machine_views(settings.MACHINE_ENDPOINTS)
        view = self.views.get(request.path_info)
        if view is None:
            return self.get_response(request)
        response = view(request)
        if not response.streaming and not response.has_header("Content-Length"):
            response.headers["Content-Length"] = str(len(response.content))  # as CommonMiddleware
        return response


def machine_views(names) -> dict[str, Callable]:
    """path → view of each named URL (URLs without arguments only)."""
    views = {}
    for name in names:
        path = reverse(name)
        views[path] = resolve(path).func
    return views


def parse_networks(values: list[str]) -> tuple:
    networks = []
    for value in values:
        value = value.strip()
        if not value:
            continue
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            raise ImproperlyConfigured(
                f"TRUSTED_PROXIES: {value!r} is not an IP address or CIDR") from exc
    return tuple(networks)


def _ip(value: str):
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _trusted(address, networks: tuple) -> bool:
    return any(address.version == net.version and address in net for net in networks)


def client_address(remote_addr: str, forwarded_for: str, networks: tuple) -> str | None:
    """The address to use instead of `remote_addr`, or None to keep it."""
    remote = _ip(remote_addr)
    if remote is None or not _trusted(remote, networks) or not forwarded_for.strip():
        return None
    hops = [hop.strip() for hop in forwarded_for.split(",")]
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:
            # Garbage where a trusted proxy should have written an address: stop trusting the
            # header; the last trusted hop (the proxy) stays the address.
            return None
        if not _trusted(address, networks):
            return str(address)
    return None  # every hop is one of our proxies: keep REMOTE_ADDR
