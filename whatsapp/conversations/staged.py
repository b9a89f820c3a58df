"""`messages_store` for a whole history chunk, with its lookups done against the staged rows.

`bulk.messages_insert_new` leaves the chunk's rows in its session temp table (the stage)
until the transaction commits or the next batch is staged. What `messages.messages_store`
asks of PostgreSQL with 1,000-wamid `IN` lists (14 statements for a 13,000-message chunk, each
compiled by the ORM and then split by psycopg: ~0.5 s of CPU and database time) is asked here
once each, joined with the stage: which messages got here before their stored statuses, which
have a stored edit or revoke, and which stored copies this redelivery improves. Only those few
then go through messages.py's own steps, so the results are the same by construction.
"""

from django.db import connection

from whatsapp.models import Message, MessageStatus

from .bulk import STAGE, TABLE, messages_insert_new
from .media import media_track
from .messages import (
    STATUS_RANK,
    _apply_edits_and_revokes,
    _count,
    apply_stored_statuses,
    messages_store,
)
from .routing import Route

CHANGES = ("edit", "revoke")
STATUSES_TABLE = MessageStatus._meta.db_table
# A stored copy is improved by a higher-ranked status or by the media id it lacked (history's
# media_placeholder meets its follow-up): messages._message_merge, as one UPDATE … FROM stage.
_RANK = "CASE {} " + " ".join(f"WHEN '{s}' THEN {r}" for s, r in STATUS_RANK.items() if s) + \
    " ELSE 0 END"
MERGE = f"""
UPDATE {TABLE} AS m SET
  status = CASE WHEN x.up THEN x.status ELSE m.status END,
  type = CASE WHEN x.fills THEN x.type ELSE m.type END,
  raw = CASE WHEN x.fills THEN x.raw ELSE m.raw END,
  body = CASE WHEN x.fills AND COALESCE(m.body, '') = '' THEN x.body ELSE m.body END,
  media_id = CASE WHEN x.fills THEN x.media_id ELSE m.media_id END
FROM (SELECT s.wamid, s.status, s.type, s.raw, s.body, s.media_id,
             {_RANK.format('s.status')} > {_RANK.format('o.status')} AS up,
             s.media_id <> '' AND o.media_id = '' AS fills
      FROM {STAGE} AS s JOIN {TABLE} AS o ON o.wamid = s.wamid
      WHERE o.wamid = ANY(ARRAY(SELECT wamid FROM {STAGE}))) AS x
WHERE m.wamid = x.wamid AND m.wamid = ANY(ARRAY(SELECT wamid FROM {STAGE})) AND (x.up OR x.fills)
RETURNING m.wamid, x.fills
"""
# `= ANY(ARRAY(subquery))`: an index scan per staged wamid whatever the planner guesses of an
# unanalyzed temp table (never a scan of every message or status).
WITH_STATUSES = (f"SELECT DISTINCT wamid FROM {STATUSES_TABLE} WHERE wamid = ANY(ARRAY("
                 f"SELECT wamid FROM {STAGE} WHERE direction = %s))")
WITH_CHANGES = (f"SELECT DISTINCT target_wamid FROM {TABLE} WHERE type = ANY(%s) AND "
                f"target_wamid = ANY(ARRAY(SELECT wamid FROM {STAGE} "
                f"WHERE wamid <> '' AND type <> ALL(%s)))")


def staged_messages_store(route_: Route, rows: list[dict]) -> list[dict]:
    """`messages.messages_store` for many rows; returns the inserted rows. Elsewhere than on
    PostgreSQL (no stage), `messages_store` itself."""
    if connection.vendor != "postgresql":
        return messages_store(route_, rows)
    unique: dict[str, dict] = {}
    for row in rows:
        unique.setdefault(row["wamid"], row)
    if not unique:
        return []
    inserted = messages_insert_new(list(unique.values()))
    new = [row for wamid, row in unique.items() if wamid in inserted]
    got_media = [r["wamid"] for r in new if r["media_id"]]
    seen = [wamid for wamid in unique if wamid not in inserted]
    with connection.cursor() as cursor:
        if seen:
            cursor.execute(MERGE)
            got_media += [wamid for wamid, media in cursor.fetchall() if media]
        cursor.execute(WITH_STATUSES, [Message.Direction.OUTBOUND])
        with_statuses = {wamid for (wamid,) in cursor.fetchall()}
        cursor.execute(WITH_CHANGES, [list(CHANGES), [*CHANGES, "reaction"]])
        changed = {wamid for (wamid,) in cursor.fetchall()}
    media_track(got_media)
    apply_stored_statuses([r["wamid"] for r in new if r["wamid"] in with_statuses
                           and r["direction"] == Message.Direction.OUTBOUND])
    # The new edits and revokes, and the new originals that one stored earlier changes.
    _apply_edits_and_revokes([r for r in new if (r["type"] in CHANGES and r["target_wamid"])
                              or r["wamid"] in changed])
    _count(route_, new)
    return new
