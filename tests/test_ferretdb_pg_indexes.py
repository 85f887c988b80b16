"""scripts/ferretdb_pg_indexes.sql: the companion GIN indexes that let FerretDB 1.24's
pushed-down filters (`_jsonb->$1 @> $2`) use an index on its PostgreSQL backend.

Runs against a scratch database of the test PostgreSQL cluster laid out as FerretDB lays out
its own (a schema per MongoDB database, `_ferretdb_database_metadata`, one table with one
`_jsonb` column per collection, btree expression indexes named as FerretDB names them), so it
proves the SQL without touching the `ferretdb` database the running FerretDB uses.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL, _with_database

SQL = (Path(__file__).resolve().parents[1] / "scripts" / "ferretdb_pg_indexes.sql").read_text()
# FerretDB's own statement for `find({_id: x})`, `replace_one({_id: x, ...})`, `count`...
PUSHDOWN = "SELECT _jsonb FROM {table} WHERE _jsonb->$1 @> $2"


@pytest.fixture
def conn() -> Iterator[psycopg.Connection[Any]]:
    name = f"lf_ferretpg_{os.getpid()}"
    admin = _with_database(PG_ADMIN_URL, "postgres")
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(_with_database(PG_ADMIN_URL, name), autocommit=True) as c:
            yield c
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ferretdb_database(conn: psycopg.Connection[Any], schema: str) -> None:
    conn.execute(f"CREATE SCHEMA {schema}")
    conn.execute(f"CREATE TABLE {schema}._ferretdb_database_metadata (_jsonb jsonb)")
    conn.execute(
        f"CREATE UNIQUE INDEX _ferretdb_database_metadata_id_idx"
        f" ON {schema}._ferretdb_database_metadata (((_jsonb->'_id')))"
    )


def install(conn: psycopg.Connection[Any]) -> int:
    """Runs the script (as psql would); returns how many companions its backfill created."""
    cur = conn.execute(SQL)
    while cur.nextset():  # the backfill's SELECT is the last statement
        pass
    row = cur.fetchone()
    assert row is not None
    return int(row[0])


def gin_fields(conn: psycopg.Connection[Any], schema: str, table: str) -> set[str]:
    """The fields of the GIN indexes on `schema.table` (from their definitions)."""
    rows = conn.execute(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s"
        " AND indexdef LIKE '%%USING gin%%'",
        (schema, table),
    ).fetchall()
    fields = set()
    for (definition,) in rows:
        assert "jsonb_path_ops" in definition and "_lfgin" in definition, definition
        fields.add(definition.split("-> '", 1)[1].split("'::text", 1)[0].replace("''", "'"))
    return fields


def plan(conn: psycopg.Connection[Any], statement: str, *args: str) -> str:
    literals = ", ".join("'" + a.replace("'", "''") + "'" for a in args)
    rows = conn.execute(f"EXPLAIN (FORMAT JSON) EXECUTE {statement}({literals})").fetchall()
    return json.dumps(rows[0][0])


def test_companions_are_created_for_existing_and_new_indexes_and_serve_the_pushdown(
    conn: psycopg.Connection[Any],
) -> None:
    ferretdb_database(conn, "lf")
    conn.execute("CREATE TABLE lf.courses_0a1b2c3d (_jsonb jsonb)")
    conn.execute(
        "CREATE UNIQUE INDEX courses_0a1b2c3d__id__67399184_idx"
        " ON lf.courses_0a1b2c3d (((_jsonb->'_id')))"
    )
    assert install(conn) == 1  # backfill: the `_id` index existed before
    assert gin_fields(conn, "lf", "courses_0a1b2c3d") == {"_id"}
    assert gin_fields(conn, "lf", "_ferretdb_database_metadata") == set()

    # Created after the install: the event trigger adds one per key, once per field.
    conn.execute(
        "CREATE INDEX courses_0a1b2c3d_state___sort_key___7ad0a3e6_idx"
        " ON lf.courses_0a1b2c3d (((_jsonb->'state')), ((_jsonb->'sort_key')) DESC)"
    )
    conn.execute(
        "CREATE INDEX courses_0a1b2c3d_state___8d1f00aa_idx ON lf.courses_0a1b2c3d"
        " (((_jsonb->'state')), ((_jsonb->'it''s')))"
    )
    assert gin_fields(conn, "lf", "courses_0a1b2c3d") == {"_id", "state", "sort_key", "it's"}

    # A collection FerretDB creates later (a test database, a rebuild's new generation).
    ferretdb_database(conn, "lf_g2")
    conn.execute("CREATE TABLE lf_g2.lessons_11223344 (_jsonb jsonb)")
    conn.execute(
        "CREATE UNIQUE INDEX lessons_11223344__id__67399184_idx"
        " ON lf_g2.lessons_11223344 (((_jsonb->'_id')))"
    )
    assert gin_fields(conn, "lf_g2", "lessons_11223344") == {"_id"}

    # Running it again changes nothing.
    assert install(conn) == 0

    conn.execute(
        "INSERT INTO lf.courses_0a1b2c3d"
        " SELECT jsonb_build_object('_id', md5(g::text), 'state', 'archived',"
        " 'sort_key', lpad(g::text, 12, '0'), 'body', repeat('x', 600))"
        " FROM generate_series(1, 5000) g"
    )
    conn.execute("ANALYZE lf.courses_0a1b2c3d")
    conn.execute(f"PREPARE q(text, jsonb) AS {PUSHDOWN.format(table='lf.courses_0a1b2c3d')}")
    target = json.dumps(conn.execute("SELECT md5('2500')").fetchone()[0])  # type: ignore[index]
    # Past the plan cache's five custom plans too: PostgreSQL must keep planning with the
    # values (a generic `_jsonb->$1` plan cannot use an expression index).
    for _ in range(8):
        row = conn.execute(f"EXECUTE q('_id', '{target}')").fetchone()  # md5: no quotes
        assert row is not None and row[0]["sort_key"] == "000000002500"
    chosen = plan(conn, "q", "_id", target)
    assert "Bitmap Index Scan" in chosen and "_lfgin" in chosen, chosen
    assert "Seq Scan" not in chosen, chosen


def test_tables_that_are_not_ferretdb_collections_are_left_alone(
    conn: psycopg.Connection[Any],
) -> None:
    install(conn)
    conn.execute("CREATE SCHEMA app")  # no FerretDB metadata table in it
    conn.execute("CREATE TABLE app.docs (_jsonb jsonb, body jsonb)")
    conn.execute("CREATE INDEX docs_id_idx ON app.docs (((_jsonb->'_id')))")
    assert gin_fields(conn, "app", "docs") == set()
    ferretdb_database(conn, "lf")
    conn.execute("CREATE TABLE lf.plain (body jsonb)")  # not FerretDB's column
    conn.execute("CREATE INDEX plain_id_idx ON lf.plain (((body->'_id')))")
    conn.execute("CREATE TABLE lf.nested_0a1b2c3d (_jsonb jsonb)")
    conn.execute(
        "CREATE INDEX nested_0a1b2c3d_a_b_idx ON lf.nested_0a1b2c3d (((_jsonb->'a')->'b'))"
    )
    assert gin_fields(conn, "lf", "plain") == set()
    assert gin_fields(conn, "lf", "nested_0a1b2c3d") == set()  # dotted paths: not pushed down


def test_a_companion_that_cannot_be_made_never_fails_ferretdbs_own_statement(
    conn: psycopg.Connection[Any],
) -> None:
    install(conn)
    # Whatever goes wrong in the companion function (here: it always raises), FerretDB's
    # collection or index creation must still succeed, only without a companion.
    conn.execute(
        "CREATE OR REPLACE FUNCTION public.learnflow_ferretdb_companions(idx oid)"
        " RETURNS integer LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'broken'; END $$"
    )
    ferretdb_database(conn, "lf")
    conn.execute("CREATE TABLE lf.courses_0a1b2c3d (_jsonb jsonb)")
    conn.execute(
        "CREATE UNIQUE INDEX courses_0a1b2c3d__id__67399184_idx"
        " ON lf.courses_0a1b2c3d (((_jsonb->'_id')))"
    )
    created = "SELECT to_regclass('lf.courses_0a1b2c3d__id__67399184_idx') IS NOT NULL"
    assert conn.execute(created).fetchone() == (True,)
    assert gin_fields(conn, "lf", "courses_0a1b2c3d") == set()
