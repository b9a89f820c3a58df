"""Set-based message inserts: one insert-or-ignore for a whole batch of rows.

Rows are plain dicts of Message column values (`messages.message_row`), never model instances:
building 13,000 Message objects cost more than the INSERT itself. On PostgreSQL the rows go
through COPY into a session-local temporary table and one `INSERT … SELECT … ON CONFLICT
(wamid) DO NOTHING RETURNING wamid` (COPY is formatted in C by psycopg; Django's UNNEST insert
escapes every text value with a Python regex). Elsewhere (SQLite, the embedded default) it is
`bulk_create(ignore_conflicts=True)` after a lookup of the wamids already stored.
"""

import gc
import json
from contextlib import contextmanager
from operator import itemgetter

import orjson
from django.db import connection

from whatsapp.models import Message

COLUMNS = ("organization_id", "config_id", "wamid", "direction", "source", "type", "timestamp",
           "status", "raw", "created_at", "contact_id", "body", "media_id", "reply_to_wamid",
           "target_wamid", "referral", "errors")
JSON_COLUMNS = ("raw", "referral", "errors")
STAGE = "whatsapp_messages_stage"
TABLE = Message._meta.db_table
BATCH = 1000


def _json(value):
    if value is None:
        return None
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    try:
        # ~10x json.dumps (a 3 MB chunk's 13,000 raw items: 0.15 s of CPU with json.dumps).
        return orjson.dumps(value).decode()
    except (TypeError, orjson.JSONEncodeError):
        # What orjson refuses (an integer beyond 64 bits, a non-str key): the stdlib's text.
        return json.dumps(value, ensure_ascii=False)


@contextmanager
def collector_paused():
    """The cyclic garbage collector off while a bulk import runs.

    A 3 MB history chunk allocates about a million objects (its parsed items, their typed
    values, the rows): each 700 allocations start a collection, and the older generations'
    collections walk every one still alive (`bench/history.py`: ~150 collections, 0.15 s of
    CPU per chunk). They are acyclic and freed by reference counting when the import ends;
    the collector resumes then. Left as it was when it was already off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def messages_insert_new(rows: list[dict]) -> set[str]:
    """Inserts the rows whose wamid is not stored yet; returns the wamids it inserted.

    `rows` must have unique wamids. Safe against a concurrent writer of the same wamid (the
    unique constraint decides, the loser's row is ignored).
    """
    if not rows:
        return set()
    if connection.vendor == "postgresql":
        return _insert_postgresql(rows)
    return _insert_portable(rows)


def _insert_postgresql(rows: list[dict]) -> set[str]:
    columns = ", ".join(COLUMNS)
    with connection.cursor() as cursor:
        # Once per database session; ON COMMIT DELETE ROWS empties it at every commit, the
        # DELETE below when one transaction stores several batches.
        cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {STAGE} ON COMMIT DELETE ROWS AS "
                       f"SELECT {columns} FROM {TABLE} WITH NO DATA")
        cursor.execute(f"DELETE FROM {STAGE}")
        _copy_rows(cursor, rows)
        cursor.execute(f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM {STAGE} "
                       "ON CONFLICT (wamid) DO NOTHING RETURNING wamid")
        return {wamid for (wamid,) in cursor.fetchall()}


def _copy_rows(cursor, rows: list[dict]) -> None:
    json_at = [COLUMNS.index(c) for c in JSON_COLUMNS]
    org_at = COLUMNS.index("organization_id")
    values_of = itemgetter(*COLUMNS)
    organizations: dict = {}  # the UUID's text once per tenant, not psycopg's Python dumper per row
    with cursor.cursor.copy(f"COPY {STAGE} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
        for row in rows:
            values = list(values_of(row))
            for i in json_at:
                values[i] = _json(values[i])
            org = values[org_at]
            if org is not None:
                if org not in organizations:
                    organizations[org] = str(org)
                values[org_at] = organizations[org]
            copy.write_row(values)


def _insert_portable(rows: list[dict]) -> set[str]:
    wamids = [row["wamid"] for row in rows]
    existing: set[str] = set()
    for i in range(0, len(wamids), BATCH):
        existing.update(Message.objects.filter(wamid__in=wamids[i:i + BATCH])
                        .values_list("wamid", flat=True))
    new = [row for row in rows if row["wamid"] not in existing]
    Message.objects.bulk_create([Message(**row) for row in new], batch_size=BATCH,
                                ignore_conflicts=True)
    return {row["wamid"] for row in new}
