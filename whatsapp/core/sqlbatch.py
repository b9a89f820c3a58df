"""Set-based statements over many rows, for the live hot path on PostgreSQL.

A live drainer writes a batch's rows (statuses, messages, events, contacts) with one statement
each: `INSERT … SELECT … FROM unnest(%b::type[], …)`, `UPDATE … FROM unnest(…)`. Through
Django's ordinary cursor every value is quoted into the SQL text on the client (psycopg's
client-side binding, a few microseconds per value, and the ORM adds its model instances and
query compiling on top: 60–300 µs per status row in `bench.process`). `bound_cursor` is a
Django cursor (query logging, execute wrappers and error wrapping as usual) whose parameters
travel apart from the SQL, in binary for `%b`: a whole column of a batch is one array.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection


@contextmanager
def bound_cursor() -> Iterator:
    """A cursor with server-side parameter binding on the default connection (same session,
    same transaction as the ORM's), opened as Django opens its own (health check first)."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors:
        cursor = connection._prepare_cursor(psycopg.Cursor(connection.connection))
    with cursor:
        yield cursor


def unnest(*types: str) -> str:
    """`unnest(%b::t1[], %b::t2[], …)`: one array parameter per column."""
    return "unnest(" + ", ".join(f"%b::{t}[]" for t in types) + ")"


def columns(rows: list[tuple], width: int) -> list[list]:
    """Rows of `width` values, as `width` column lists (the parameters of `unnest`)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def jsonb(value) -> str | None:
    """A JSON column's value as text (None stays SQL NULL, as the ORM stores it)."""
    return None if value is None else json.dumps(value, ensure_ascii=False)


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"
