"""Smoke test of bench/ (issue 8) pure helpers; the bench itself never runs in CI."""

import math

from bench import loadgen
from tests.meta import PAYLOADS_DIR
from whatsapp.webhooks.signatures import sign


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert loadgen.percentile(values, 50) == 50
    assert loadgen.percentile(values, 99) == 99
    assert loadgen.percentile(values, 99.9) == 100
    assert loadgen.percentile(values, 100) == 100
    assert loadgen.percentile(values, 0) == 1
    assert loadgen.percentile([7.0], 99.9) == 7.0
    assert math.isnan(loadgen.percentile([], 50))


def test_summarize_reports_the_tail():
    summary = loadgen.summarize([1.0] * 998 + [40.0, 300.0])
    assert summary["count"] == 1000
    assert summary["p50_ms"] == 1.0
    assert summary["p99_ms"] == 1.0
    assert summary["p99_9_ms"] == 40.0
    assert summary["max_ms"] == 300.0


def test_signature_matches_metas_test_vector_and_the_product():
    body = (PAYLOADS_DIR / "signature_vector_body.raw").read_bytes()
    expected = "sha256=5ce47c1a51cf963805705bcd9d3afe9fe7bec11f54eb35c44df778e9e4f93424"
    assert loadgen.sign(body, "test_app_secret_not_real") == expected
    assert loadgen.sign(body, "s3cret") == sign(body, "s3cret")


def test_wire_is_compact_and_escaped():
    assert loadgen.wire({"a": "á", "b": [1, 2]}) == b'{"a":"\\u00e1","b":[1,2]}'


def test_signed_post_is_a_complete_http_request():
    body = b'{"object":"whatsapp_business_account","entry":[]}'
    raw = loadgen.signed_post("/api/v1/whatsapp/webhook", 8000, body, "s3cret")
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /api/v1/whatsapp/webhook HTTP/1.1\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert f"X-Hub-Signature-256: {loadgen.sign(body, 's3cret')}".encode() in head
    assert rest == body
    assert loadgen.status_of(b"HTTP/1.1 200 OK\r\nServer: x") == 200
    assert loadgen.status_of(b"garbage") == 0


def test_gc_pauses_are_summed_per_process_apart_for_its_start_up(tmp_path):
    from bench import gcpauses

    # generation, pause (ms), seconds since the process started
    (tmp_path / "gc.web.101").write_text("0 0.3 6.0\n2 80.0 1.2\n2 3.5 20.0\n2 7.0 40.0\n")
    (tmp_path / "gc.celery.202").write_text("1 2.0 9.0\n")

    summary = gcpauses.summary(str(tmp_path))

    assert summary["web.101"] == {
        "start-up": {"count": 1, "max_ms": 80.0, "total_ms": 80.0},
        "serving": {"count": 2, "max_ms": 7.0, "total_ms": 10.5}}
    assert summary["celery.202"]["serving"]["count"] == 0  # young collections are not counted
    assert "web.101: 2 full collections while serving, longest 7.0 ms" in \
        gcpauses.report(str(tmp_path))
