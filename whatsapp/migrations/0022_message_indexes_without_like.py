"""`whatsapp_messages` keeps one index per wamid column instead of two.

On PostgreSQL Django gives a `unique=True` or `db_index=True` CharField a second index with
`varchar_pattern_ops` (for LIKE 'x%'); no query of the product filters wamids with LIKE (the
admin's search is `icontains`, which no btree serves), and every message insert — 13,000 per
history chunk — maintained both. The model now declares the unique constraint and the index in
Meta; the database keeps the existing ones (renamed to the names the state knows) and only the
two LIKE indexes are dropped: no index is rebuilt on a large table.
"""

from django.db import migrations, models

TABLE = "whatsapp_messages"


def like_indexes_dropped(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = %s AND indexdef LIKE %s", [TABLE, "%varchar_pattern_ops%"])
            for (name,) in cursor.fetchall():
                cursor.execute(f"DROP INDEX IF EXISTS {connection.ops.quote_name(name)}")
        old = _plain_index_on(connection, cursor, "target_wamid")
        if old and old != "msg_target_wamid_idx":
            if connection.vendor == "postgresql":
                cursor.execute(f"ALTER INDEX {connection.ops.quote_name(old)} "
                               "RENAME TO msg_target_wamid_idx")
            else:  # SQLite cannot rename an index: a first-run database, rebuilt at once
                cursor.execute(f"DROP INDEX {connection.ops.quote_name(old)}")
                cursor.execute(f"CREATE INDEX msg_target_wamid_idx ON {TABLE} (target_wamid)")
        unique = _unique_on(connection, cursor, "wamid")
        if (connection.vendor == "postgresql" and unique
                and unique != "whatsapp_messages_wamid_key"):
            cursor.execute(f"ALTER TABLE {TABLE} RENAME CONSTRAINT "
                           f"{connection.ops.quote_name(unique)} TO whatsapp_messages_wamid_key")


def _plain_index_on(connection, cursor, column: str) -> str | None:
    for name, info in connection.introspection.get_constraints(cursor, TABLE).items():
        if (info["index"] and not info["unique"] and info["columns"] == [column]
                and not name.endswith("_like")):
            return name
    return None


def _unique_on(connection, cursor, column: str) -> str | None:
    for name, info in connection.introspection.get_constraints(cursor, TABLE).items():
        if info["unique"] and not info["primary_key"] and info["columns"] == [column]:
            return name
    return None


class Migration(migrations.Migration):

    dependencies = [
        ("whatsapp", "0021_outbound_drain_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="message", name="wamid",
                    field=models.CharField(max_length=255, verbose_name="WhatsApp message id"),
                ),
                migrations.AlterField(
                    model_name="message", name="target_wamid",
                    field=models.CharField(blank=True, max_length=255,
                                           verbose_name="target message"),
                ),
                migrations.AddConstraint(
                    model_name="message",
                    constraint=models.UniqueConstraint(fields=["wamid"],
                                                       name="whatsapp_messages_wamid_key"),
                ),
                migrations.AddIndex(
                    model_name="message",
                    index=models.Index(fields=["target_wamid"], name="msg_target_wamid_idx"),
                ),
            ],
            database_operations=[
                migrations.RunPython(like_indexes_dropped, migrations.RunPython.noop),
            ],
        ),
    ]
