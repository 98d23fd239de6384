-- Change capture for any table of any schema, from warmcache's own schema (0.2). Migration 5's
-- functions wrote trigger functions named by the bare table name, in the user's schema, and
-- recorded the bare name: two tables of one name in two schemas collided. Now:
--
-- - the trigger functions live in warmcache's schema, named by the table's schema and name, and
--   write to warmcache's outbox by its qualified name, whatever the writer's search path;
-- - the outbox records tables by qualified name (schema.table), the old rows included;
-- - TRUNCATE is recorded too: a row with truncated set, which touches every key of the jobs that
--   read the table;
-- - tables installed by migration 5's functions are installed again, in this transaction, so that
--   no write goes unrecorded.
--
-- The functions run with the search path they were created with (SET search_path FROM CURRENT):
-- warmcache's schema first, whoever calls them.

-- +goose Up
ALTER TABLE warmcache_outbox ADD COLUMN IF NOT EXISTS truncated boolean NOT NULL DEFAULT false;

-- warmcache_table_name returns a table's qualified name as the outbox records it: schema.table,
-- unquoted.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION warmcache_table_name(tbl regclass) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = tbl
$$;
-- +goose StatementEnd

-- warmcache_changes_function names the trigger function of a table: changes_<schema.table>, cut
-- to fit PostgreSQL's 63 bytes and told apart by a hash of the whole name.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION warmcache_changes_function(tbl regclass) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT 'changes_' || left(warmcache_table_name(tbl), 44) || '_' || left(md5(warmcache_table_name(tbl)), 8)
$$;
-- +goose StatementEnd

-- warmcache_install_changes makes the table's changes recorded in the outbox: each statement
-- adds one row per distinct combination of the columns' values among the rows it inserted,
-- updated (old and new values) or deleted, or a single row without values when cols is empty; a
-- TRUNCATE adds one row marked truncated. The function it writes is static SQL, planned once per
-- session. It tells the warmers with pg_notify, unless the session says it tells them itself
-- (warmcache.notify = off: the api, which wakes them through Redis).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION warmcache_install_changes(tbl regclass, cols text[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $install$
DECLARE
    here   text := current_schema();
    fn     text := warmcache_changes_function(tbl);
    tname  text := warmcache_table_name(tbl);
    record text := '''{}''::jsonb';
    old    oid;
BEGIN
    IF cardinality(cols) > 0 THEN
        record := 'jsonb_build_object(' ||
            (SELECT string_agg(format('%L, %I::text', c, c), ', ' ORDER BY c) FROM unnest(cols) c) || ')';
    END IF;
    SELECT tgfoid INTO old FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'warmcache_changes_insert';
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION %1$I.%2$I() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO %1$I.warmcache_outbox (tablename, columns) SELECT DISTINCT %3$L, %4$s FROM new_rows;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO %1$I.warmcache_outbox (tablename, columns) SELECT DISTINCT %3$L, %4$s FROM old_rows;
            ELSIF TG_OP = 'UPDATE' THEN
                INSERT INTO %1$I.warmcache_outbox (tablename, columns)
                SELECT DISTINCT %3$L, c FROM (SELECT %4$s AS c FROM new_rows
                                              UNION ALL SELECT %4$s FROM old_rows) changed;
            ELSE
                INSERT INTO %1$I.warmcache_outbox (tablename, truncated) VALUES (%3$L, true);
            END IF;
            IF FOUND AND current_setting('warmcache.notify', true) IS DISTINCT FROM 'off' THEN
                PERFORM pg_notify('warmcache_outbox', '');
            END IF;
            RETURN NULL;
        END
        $body$ $f$, here, fn, tname, record);
    EXECUTE format('COMMENT ON FUNCTION %I.%I() IS %L', here, fn,
        'v2:' || array_to_string(ARRAY(SELECT unnest(cols) ORDER BY 1), ','));
    EXECUTE format('CREATE OR REPLACE TRIGGER warmcache_changes_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()', tbl, here, fn);
    EXECUTE format('CREATE OR REPLACE TRIGGER warmcache_changes_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()', tbl, here, fn);
    EXECUTE format('CREATE OR REPLACE TRIGGER warmcache_changes_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()', tbl, here, fn);
    EXECUTE format('CREATE OR REPLACE TRIGGER warmcache_changes_truncate AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %I.%I()', tbl, here, fn);
    -- The function an older version installed, now used by no trigger.
    IF old IS NOT NULL AND NOT EXISTS (SELECT FROM pg_trigger WHERE tgfoid = old) THEN
        EXECUTE format('DROP FUNCTION IF EXISTS %s()', old::regproc);
    END IF;
END
$install$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION warmcache_uninstall_changes(tbl regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $uninstall$
DECLARE
    fn oid := (SELECT tgfoid FROM pg_trigger WHERE tgrelid = tbl AND tgname = 'warmcache_changes_insert');
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS warmcache_changes_insert ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS warmcache_changes_update ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS warmcache_changes_delete ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS warmcache_changes_truncate ON %s', tbl);
    IF fn IS NOT NULL AND NOT EXISTS (SELECT FROM pg_trigger WHERE tgfoid = fn) THEN
        EXECUTE format('DROP FUNCTION IF EXISTS %s()', fn::regproc);
    END IF;
END
$uninstall$;
-- +goose StatementEnd

-- Migration 5's installations, again with this version's functions.
SELECT warmcache_install_changes(t.tgrelid::regclass,
           string_to_array(NULLIF(substr(obj_description(t.tgfoid, 'pg_proc'), 4), ''), ','))
FROM pg_trigger t
WHERE t.tgname = 'warmcache_changes_insert' AND obj_description(t.tgfoid, 'pg_proc') LIKE 'v1:%';

UPDATE warmcache_outbox SET tablename = warmcache_table_name(to_regclass(tablename))
WHERE position('.' in tablename) = 0 AND to_regclass(tablename) IS NOT NULL;

-- +goose Down
SELECT 1;
