"""The live path's set-based statements on PostgreSQL (a drainer's batch, `messages.py`).

Each is one statement for all of a batch's rows of a number, its columns sent as arrays
(`core.sqlbatch`): the statuses' insert-or-ignore, the messages moved up to their best status,
the new messages' insert returning their ids. `messages.py` keeps the portable ORM versions
(SQLite, the embedded default) and decides what to write; the results are the same.
"""

from datetime import datetime

from whatsapp.core import sqlbatch
from whatsapp.models import Contact, ContactIdentity, Message, MessageStatus

from .bulk import COLUMNS, JSON_COLUMNS

# A message's status never regresses, in this order (messages.STATUS_RANK).
STATUS_ORDER = ("", "pending", "sent", "delivered", "read", "played", "failed")

# Up to this many rows (a live batch) go in one INSERT … SELECT FROM unnest that returns their
# ids; more (a history chunk) through bulk.messages_insert_new's COPY.
LIVE_ROWS = 2000

MESSAGES = Message._meta.db_table
STATUSES = MessageStatus._meta.db_table
_RANKS = "ARRAY[" + ", ".join(f"'{s}'" for s in STATUS_ORDER) + "]"

# Each message moves up to the best of the statuses given: the highest rank per wamid (the
# first given among equals); only rows still below it move (`messages._apply_best_statuses`).
_MOVE_UP = f"""
UPDATE {MESSAGES} AS m SET status = b.status, status_at = b.ts,
  errors = CASE WHEN b.status = 'failed' THEN b.errors ELSE m.errors END
FROM (SELECT DISTINCT ON (u.wamid) u.wamid, u.status, u.ts, u.errors,
             array_position({_RANKS}, u.status) AS rank
      FROM {{source}}
      WHERE array_position({_RANKS}, u.status) IS NOT NULL
      ORDER BY u.wamid, rank DESC, u.n) AS b
WHERE m.wamid = b.wamid AND array_position({_RANKS}, m.status) < b.rank
"""
APPLY_GIVEN = _MOVE_UP.format(source=sqlbatch.unnest("text", "text", "timestamptz", "jsonb")
                              + " WITH ORDINALITY AS u(wamid, status, ts, errors, n)")
APPLY_STORED = _MOVE_UP.format(
    source=f"(SELECT wamid, status, timestamp AS ts, errors, 0 AS n FROM {STATUSES} "
           "WHERE wamid = ANY(%b::text[])) AS u")

STATUS_COLUMNS = ("wamid", "status", "timestamp", "recipient_id", "recipient_user_id", "errors",
                  "pricing", "conversation", "biz_opaque_callback_data", "raw")
_STATUS_JSON = (5, 6, 7, 9)
# Every status of the batch in one insert-or-ignore (unique per (wamid, status)).
INSERT_STATUSES = (
    f"INSERT INTO {STATUSES} (organization_id, config_id, created_at, "
    f"{', '.join(STATUS_COLUMNS)}) SELECT %b::uuid, %b::bigint, %b::timestamptz, u.* FROM "
    + sqlbatch.unnest("text", "text", "timestamptz", "text", "text", "jsonb", "jsonb", "jsonb",
                      "text", "jsonb")
    + " AS u ON CONFLICT DO NOTHING")

_MESSAGE_TYPES = {"organization_id": "uuid", "config_id": "bigint", "timestamp": "timestamptz",
                  "created_at": "timestamptz", "contact_id": "bigint", "raw": "jsonb",
                  "referral": "jsonb", "errors": "jsonb"}
INSERT_MESSAGES = (
    f"INSERT INTO {MESSAGES} ({', '.join(COLUMNS)}) SELECT * FROM "
    + sqlbatch.unnest(*(_MESSAGE_TYPES.get(c, "text") for c in COLUMNS))
    + " ON CONFLICT (wamid) DO NOTHING RETURNING wamid, id")


def statuses_insert_apply(organization_id, config_id: int, rows: list[tuple],
                          now: datetime) -> None:
    """Stores `rows` (STATUS_COLUMNS' values) once per (wamid, status) and moves each message
    up to the best of them."""
    if not rows:
        return
    rows = [tuple(sqlbatch.jsonb(v) if i in _STATUS_JSON else v for i, v in enumerate(row))
            for row in rows]
    cols = sqlbatch.columns(rows, len(STATUS_COLUMNS))
    with sqlbatch.bound_cursor() as cursor:
        cursor.execute(INSERT_STATUSES, [organization_id, config_id, now, *cols])
        cursor.execute(APPLY_GIVEN, [cols[0], cols[1], cols[2], cols[5]])


def statuses_apply_stored(wamids: list[str]) -> None:
    """Moves each message up to the best status stored for it."""
    with sqlbatch.bound_cursor() as cursor:
        cursor.execute(APPLY_STORED, [list(wamids)])


def messages_insert(rows: list[dict]) -> dict[str, int]:
    """{wamid: id} of the rows (Message column values, unique wamids) whose wamid was not
    stored yet, inserted in one statement."""
    if not rows:
        return {}
    columns = [[sqlbatch.jsonb(row[c]) for row in rows] if c in JSON_COLUMNS
               else [row[c] for row in rows] for c in COLUMNS]
    with sqlbatch.bound_cursor() as cursor:
        cursor.execute(INSERT_MESSAGES, columns)
        return dict(cursor.fetchall())


_CHANGES_OF = (f"SELECT wamid, type, target_wamid, timestamp, body FROM {MESSAGES} "
               "WHERE target_wamid = ANY(%b::text[]) AND type IN ('edit', 'revoke')")


def changes_of(targets: list[str]) -> list[Message]:
    """The stored edits and revokes of these messages (wamid, type, target, time, body)."""
    with sqlbatch.bound_cursor() as cursor:
        cursor.execute(_CHANGES_OF, [targets])
        return [Message(wamid=w, type=t, target_wamid=tw, timestamp=ts, body=b)
                for w, t, tw, ts, b in cursor.fetchall()]


# The stored identities among `keys`, with the profile of their lead (read, not locked).
_IDENTITIES_OF = (
    f"SELECT i.id, i.kind, i.value, i.contact_id, i.first_seen_at, c.profile_name_at, "
    f"c.profile_name, c.username FROM {ContactIdentity._meta.db_table} AS i "
    f"JOIN {sqlbatch.unnest('text', 'text')} AS k(kind, value) "
    "ON i.kind = k.kind AND i.value = k.value "
    f"JOIN {Contact._meta.db_table} AS c ON c.id = i.contact_id WHERE i.organization_id = %b")


def identities_of(organization_id, keys: list[tuple[str, str]]) -> list[tuple]:
    """(id, kind, value, contact_id, first_seen_at, profile_name_at, profile_name, username)
    of the organization's identities among `keys` ((kind, value) pairs)."""
    if not keys:
        return []
    kinds, values = sqlbatch.columns(keys, 2)
    with sqlbatch.bound_cursor() as cursor:
        cursor.execute(_IDENTITIES_OF, [kinds, values, organization_id])
        return cursor.fetchall()


_CONTACTS_LOCKED = (f"SELECT * FROM {Contact._meta.db_table} WHERE id = ANY(%s) "
                    "ORDER BY id FOR UPDATE")


def contacts_locked(ids: list[int]) -> list[Contact]:
    """The leads `ids`, locked in pk order (a raw query: no ORM compiling; the fields'
    converters still apply, e.g. the referral's JSON)."""
    return list(Contact.objects.raw(_CONTACTS_LOCKED, [ids]))
