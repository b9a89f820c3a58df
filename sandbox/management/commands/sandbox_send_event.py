"""Fires one kind of Meta webhook at a URL, signed like Meta signs it (seed 004 §10.C)."""

import ipaddress
import json
import time
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sandbox.delivery import signature
from sandbox.payloads import KINDS, Target, build, envelope, wire

EPILOG = "Kinds: " + ", ".join(KINDS)


def is_loopback(url: str) -> bool:
    """Only literal loopback addresses or `localhost`: no DNS, so no name can sneak out."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Command(BaseCommand):
    help = (
        "Sends a signed WhatsApp webhook of the given KIND to --url, exactly as Meta would "
        "(compact JSON, escaped unicode, X-Hub-Signature-256 with META_APP_SECRET), and prints "
        "what it sent and the HTTP status. Only loopback URLs unless --allow-remote; never with "
        "production settings."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.epilog = EPILOG
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", metavar="KIND", help="event kind (listed below)")
        parser.add_argument("--url", required=True, help="the product's webhook URL")
        parser.add_argument("--waba", default="102000000000101", help="WABA id")
        parser.add_argument("--owner-business", default="203000000000101",
                            help="customer business portfolio id (waba_info.owner_business_id)")
        parser.add_argument("--phone", default="304000000000101", help="phone number id")
        parser.add_argument("--display-phone", default="5511940001234",
                            help="display phone number, digits only")
        parser.add_argument("--tracking-code", default="",
                            help="echo this as sessionInfo.trackingCode (PARTNER_ADDED only)")
        parser.add_argument("--count", type=int, default=1, help="how many deliveries (1-1000)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--allow-remote", action="store_true",
                            help="allow a URL that is not on this machine")

    def handle(self, *args, **options) -> None:
        self._refuse_unsafe(options)
        target = Target(
            partner_business_id=settings.SANDBOX_PARTNER_BUSINESS_ID,
            partner_app_id=settings.META_APP_ID or "920000000000001",
            waba_id=options["waba"], owner_business_id=options["owner_business"],
            phone_number_id=options["phone"], display_phone_number=options["display_phone"],
            tracking_code=options["tracking_code"],
        )
        results = [self._send(options["url"], wire(envelope([build(options["kind"], target)])))
                   for _ in range(options["count"])]
        if options["json"]:
            self.stdout.write(json.dumps({"kind": options["kind"], "url": options["url"],
                                          "deliveries": results}))
        else:
            for result in results:
                self.stdout.write(f"{result['status']} {options['kind']} → {options['url']}"
                                  f" ({result['latency_ms']} ms)\n{result['body']}")
        if any(r["status"] != 200 for r in results):
            raise CommandError("The receiver did not answer 200 to every delivery.")

    def _refuse_unsafe(self, options: dict) -> None:
        if "production" in (getattr(settings, "SETTINGS_MODULE", "") or ""):
            raise CommandError("Refusing to run with production settings: it impersonates Meta.")
        if options["kind"] not in KINDS:
            raise CommandError(f"Unknown KIND {options['kind']!r}. Valid kinds: {', '.join(KINDS)}")
        if not settings.META_APP_SECRET:
            raise CommandError("META_APP_SECRET is empty: there is nothing to sign with.")
        if urlsplit(options["url"]).scheme not in ("http", "https"):
            raise CommandError("--url must be an http(s) URL.")
        if not is_loopback(options["url"]) and not options["allow_remote"]:
            raise CommandError(f"Refusing to send to {options['url']}: not a loopback address. "
                               "Pass --allow-remote if you really mean it.")
        if not 1 <= options["count"] <= 1000:
            raise CommandError("--count must be between 1 and 1000.")

    def _send(self, url: str, body: bytes) -> dict:
        started = time.monotonic()
        try:
            response = requests.post(url, data=body, timeout=(3.05, 15), headers={
                "Content-Type": "application/json", "X-Hub-Signature-256": signature(body),
                "User-Agent": "facebookexternalua"})
        except requests.RequestException as exc:
            raise CommandError(f"Could not reach {url}: {type(exc).__name__}") from exc
        return {"status": response.status_code,
                "latency_ms": int((time.monotonic() - started) * 1000),
                "body": body.decode(), "response": response.text[:500]}
