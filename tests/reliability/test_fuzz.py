"""1,000 fuzzed webhook requests: never a 500, nothing stored without a valid signature."""

import json
import random

import pytest
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from tests.meta import PAYLOADS_DIR, WEBHOOK_URL
from whatsapp.models import WebhookLog
from whatsapp.webhooks.process import webhook_process
from whatsapp.webhooks.signatures import sign

pytestmark = pytest.mark.django_db

SAMPLES = [p.read_bytes() for p in sorted(PAYLOADS_DIR.glob("*.json"))]


def fuzz_body(rng: random.Random) -> bytes:
    kind = rng.randrange(8)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 4000))
    if kind == 1:  # a real payload, mutated
        body = bytearray(rng.choice(SAMPLES))
        for _ in range(rng.randrange(1, 20)):
            body[rng.randrange(len(body))] = rng.randrange(256)
        return bytes(body)
    if kind == 2:  # a real payload, truncated
        body = rng.choice(SAMPLES)
        return body[: rng.randrange(len(body))]
    if kind == 3:  # deeply nested JSON
        depth = rng.randrange(10, 50000)
        return b"[" * depth + b"]" * rng.choice([0, depth])
    if kind == 4:  # valid JSON of the wrong shape
        return json.dumps(rng.choice([None, 1, "x", [], {}, {"entry": "x"}, {"entry": [1]},
                                      {"entry": [{"changes": [{"value": 5}]}]},
                                      {"entry": [{"changes": [{"field": None, "value": {}}]}]},
                                      {"object": "page", "entry": [{"changes": "no"}]}])).encode()
    if kind == 5:  # unicode and escapes
        return json.dumps({"entry": [{"id": "\u0000\ud83d\ude00ção", "changes": []}]},
                          ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    if kind == 6:
        return b""
    return rng.choice(SAMPLES)


def fuzz_headers(rng: random.Random, body: bytes) -> tuple[dict, bool]:
    valid_signature = sign(body, settings.META_APP_SECRET)
    choice = rng.randrange(9)
    signature = {
        0: valid_signature,
        1: valid_signature.upper(),
        2: None,
        3: "",
        4: "sha1=" + valid_signature[7:],
        5: "sha256=" + "".join(rng.choice("0123456789abcdefxyz") for _ in range(64)),
        6: "sha256=" + "é" * rng.randrange(1, 300),
        7: valid_signature + " ",
        8: sign(body + b"x", settings.META_APP_SECRET),
    }[choice]
    headers = {
        "content_type": rng.choice([
            "application/json", "text/plain", "", "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x", "application/json; charset=latin-1"]),
        "REMOTE_ADDR": rng.choice(["127.0.0.1", "10.0.0.1", "::1", "203.0.113.9"]),
        "HTTP_X_REQUEST_ID": rng.choice(["", "abc", "x" * 500, "ok-request-id-1234", "\x00\n"]),
        "HTTP_X_FORWARDED_FOR": rng.choice(["", "1.2.3.4, 5.6.7.8", "not an ip"]),
        "HTTP_USER_AGENT": rng.choice(["facebookexternalua", "", "💥" * 10]),
    }
    if signature is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature
    # Valid: Meta's exact value, surrounding whitespace aside (HTTP strips it anyway).
    return headers, signature is not None and signature.strip() == valid_signature


def test_thousand_fuzzed_requests_never_500_and_store_only_valid_signatures(client):
    rng = random.Random(20261125)
    expected_valid, invalid = 0, 0
    statuses: dict[int, int] = {}
    for _ in range(1000):
        body = fuzz_body(rng)
        headers, valid = fuzz_headers(rng, body)
        content_type = headers.pop("content_type")
        # generic(): the raw bytes exactly, whatever the content type claims.
        response = client.generic("POST", WEBHOOK_URL, data=body, content_type=content_type,
                                  **headers)
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (response.status_code, body[:200], headers)
        if response.status_code == 200:
            expected_valid += 1
            assert valid, headers.get("HTTP_X_HUB_SIGNATURE_256")
        else:
            assert not valid and response.status_code in (403, 429), response.status_code
            invalid += 1
    assert WebhookLog.objects.count() == expected_valid
    assert statuses.get(403, 0) + statuses.get(429, 0) == invalid
    assert expected_valid > 50 and invalid > 500, statuses
    # Forged traffic leaves only counters behind.
    counter = cache.get(f"whatsapp:webhook:invalid_signature:{timezone.now():%Y%m%d}")
    assert counter == invalid

    # Every stored delivery, however odd, ends in a visible state; none crashes a worker.
    # (`parked`: messages for a number not configured yet, released when it is.)
    for log_id in WebhookLog.objects.values_list("pk", flat=True):
        assert webhook_process(log_id) in ("processed", "dead", "failed", "parked")
    assert not WebhookLog.objects.filter(status__in=["received", "processing", "failed"]).exists()
    errors = sorted({e.split(":")[0] for e in WebhookLog.objects.filter(status="failed")
                     .values_list("last_error", flat=True)})
    print(f"fuzz: {statuses} stored={expected_valid} failed-with={errors}")
