-- Companion GIN indexes for FerretDB 1.24's PostgreSQL backend (issue 14).
--
-- FerretDB 1.24 stores a collection as a table with one jsonb column, `_jsonb`, and creates
-- each MongoDB index as a btree on expressions such as `((_jsonb -> '_id'))`. But the SQL it
-- sends for every pushed-down equality (find, find_one, update, replace, delete, count: see
-- prepareWhereClause in internal/backends/postgresql/query.go of v1.24.2) is
--     SELECT _jsonb FROM <schema>.<table> WHERE _jsonb->$1 @> $2      ($1 = '_id', $2 = '"<id>"')
-- and a btree cannot answer `@>`: every `_id` lookup, and every update (which reads the
-- document through the same query before it writes it by `_jsonb->'_id' = $2`), scans the
-- whole table. No filter shape avoids it: `$in`, `$or`, `$and` and ranges are not pushed down
-- at all (the scan then happens in FerretDB's Go code instead), and `find_one`, `limit` or a
-- projection change nothing.
--
-- A GIN index (jsonb_path_ops) on the same expression answers `@>`. PostgreSQL plans each
-- execution with the parameter values (a custom plan: the generic plan, `_jsonb->$1`, cannot
-- use an expression index and costs a full scan, so the plan cache keeps choosing custom
-- plans), in which `_jsonb->$1` is `_jsonb->'_id'` and the companion index is used.
--
-- This file installs, in FerretDB's PostgreSQL database:
-- * `learnflow_ferretdb_companions(index oid)`: for each key of a FerretDB btree index over
--   a top-level field (`_jsonb -> 'field'`), a GIN jsonb_path_ops index on that expression,
--   named `<table>_<md5(table.field)[:12]>_lfgin` (FerretDB's own names end in `_idx`, so
--   they never collide); one per (table, field) whatever the number of indexes naming it;
-- * an event trigger that calls it after every CREATE INDEX, so the collections FerretDB
--   creates later (test databases, rebuilds into a new generation) get theirs at creation;
-- * a backfill over the indexes that already exist.
-- Idempotent: run it again at will (`scripts/services up` does, for the postgresql backend):
--     psql -h 127.0.0.1 -p 55432 -U postgres -v ON_ERROR_STOP=1 -f scripts/ferretdb_pg_indexes.sql ferretdb
-- Nothing here changes what FerretDB stores or answers; dropping a collection drops its
-- table and the companions with it. Creating an event trigger needs a superuser.

CREATE OR REPLACE FUNCTION public.learnflow_ferretdb_companions(idx oid) RETURNS integer
LANGUAGE plpgsql AS $fn$
DECLARE
    made integer := 0;
    schema_name text;
    table_name text;
    access_method text;
    keys integer;
    expression text;
    field text;
    companion text;
BEGIN
    SELECT n.nspname, t.relname, a.amname, i.indnkeyatts
      INTO schema_name, table_name, access_method, keys
      FROM pg_index i
      JOIN pg_class c ON c.oid = i.indexrelid
      JOIN pg_am a ON a.oid = c.relam
      JOIN pg_class t ON t.oid = i.indrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
     WHERE i.indexrelid = idx;
    -- Only btree indexes (the companions themselves are GIN: no recursion) of FerretDB's
    -- collection tables (a `_jsonb` column in a schema that holds FerretDB's metadata table;
    -- not that metadata table itself).
    IF access_method IS DISTINCT FROM 'btree' OR table_name LIKE '\_ferretdb\_%' THEN
        RETURN 0;
    END IF;
    IF NOT EXISTS (
        SELECT 1 FROM pg_attribute
         WHERE attrelid = format('%I.%I', schema_name, table_name)::regclass
           AND attname = '_jsonb' AND NOT attisdropped
    ) OR to_regclass(format('%I.%I', schema_name, '_ferretdb_database_metadata')) IS NULL THEN
        RETURN 0;
    END IF;
    FOR k IN 1..keys LOOP
        expression := pg_get_indexdef(idx, k, false);
        -- FerretDB's form for a top-level field: (_jsonb -> 'field'::text). Dotted paths
        -- (nested fields) are not pushed down by FerretDB 1.24 by default: skipped.
        field := substring(expression FROM '^\(*_jsonb -> ''((?:[^'']|'''')*)''::text\)*$');
        CONTINUE WHEN field IS NULL;
        field := replace(field, '''''', '''');
        -- Unique per (table, field) even when two long collection names share a prefix.
        companion := left(table_name, 40) || '_' || left(md5(table_name || '.' || field), 12)
            || '_lfgin';
        IF to_regclass(format('%I.%I', schema_name, companion)) IS NULL THEN
            EXECUTE format(
                'CREATE INDEX %I ON %I.%I USING gin ((_jsonb -> %L) jsonb_path_ops)',
                companion, schema_name, table_name, field
            );
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END
$fn$;

CREATE OR REPLACE FUNCTION public.learnflow_ferretdb_companions_on_ddl() RETURNS event_trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    created record;
BEGIN
    FOR created IN
        SELECT objid FROM pg_event_trigger_ddl_commands()
         WHERE command_tag = 'CREATE INDEX' AND object_type = 'index'
    LOOP
        -- A companion that cannot be made must never fail FerretDB's own statement (creating
        -- a collection or an index): warn, and the look-ups merely stay scans.
        BEGIN
            PERFORM public.learnflow_ferretdb_companions(created.objid);
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'learnflow_ferretdb_companions: index %: %', created.objid, SQLERRM;
        END;
    END LOOP;
END
$fn$;

DROP EVENT TRIGGER IF EXISTS learnflow_ferretdb_companions;
CREATE EVENT TRIGGER learnflow_ferretdb_companions ON ddl_command_end
    WHEN TAG IN ('CREATE INDEX')
    EXECUTE FUNCTION public.learnflow_ferretdb_companions_on_ddl();

-- The indexes FerretDB created before this ran.
SELECT coalesce(sum(public.learnflow_ferretdb_companions(i.indexrelid)), 0) AS companions_created
  FROM pg_index i
  JOIN pg_class t ON t.oid = i.indrelid
  JOIN pg_namespace n ON n.oid = t.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast');
