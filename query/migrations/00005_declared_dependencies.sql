-- The outbox records changes of any table some job depends on, with the values of the columns the
-- jobs declared (jobs.Dependency): a change names the keys it touches by those values. Instead of
-- migration 3's fixed triggers on orders and customers, warmcache_install_changes writes one
-- trigger function per table, recording exactly its declared columns; the warmer calls it for
-- every table of its jobs file (query.InstallDependencies), and warmcache_uninstall_changes
-- removes what warmcache installed on a table no job depends on any more. Nothing else is ever
-- dropped. (Until 0.2 it also replaced migration 3's triggers on dellstore2's orders and
-- customers; migration 9 replaces these functions.)

-- +goose Up
ALTER TABLE warmcache_outbox ADD COLUMN IF NOT EXISTS columns jsonb NOT NULL DEFAULT '{}';
-- +goose StatementBegin
DO $$
BEGIN
    IF EXISTS (SELECT FROM information_schema.columns
               WHERE table_name = 'warmcache_outbox' AND column_name = 'customerid'
                 AND table_schema = current_schema()) THEN
        UPDATE warmcache_outbox SET columns = jsonb_build_object('customerid', customerid::text)
        WHERE customerid IS NOT NULL;
        ALTER TABLE warmcache_outbox DROP COLUMN customerid;
    END IF;
END
$$;
-- +goose StatementEnd

-- warmcache_install_changes makes the table's changes recorded in the outbox: each statement
-- adds one row per distinct combination of the columns' values among the rows it inserted,
-- updated (old and new values) or deleted, or a single row without values when cols is empty.
-- The function it writes is static SQL, planned once per session. It tells the warmers with
-- pg_notify, unless the session says it tells them itself (warmcache.notify = off: the api,
-- which wakes them through Redis and spares its writes the notification's cost at commit).
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION warmcache_install_changes(tbl regclass, cols text[]) RETURNS void
LANGUAGE plpgsql AS $install$
DECLARE
    fn     text := 'warmcache_changes_' || (SELECT relname FROM pg_class WHERE oid = tbl);
    tname  text := (SELECT relname FROM pg_class WHERE oid = tbl);
    record text := '''{}''::jsonb';
    event  text;
BEGIN
    IF cardinality(cols) > 0 THEN
        record := 'jsonb_build_object(' ||
            (SELECT string_agg(format('%L, %I::text', c, c), ', ' ORDER BY c) FROM unnest(cols) c) || ')';
    END IF;
    EXECUTE format($f$
        CREATE OR REPLACE FUNCTION %1$I() RETURNS trigger LANGUAGE plpgsql AS $body$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO warmcache_outbox (tablename, columns) SELECT DISTINCT %2$L, %3$s FROM new_rows;
            ELSIF TG_OP = 'DELETE' THEN
                INSERT INTO warmcache_outbox (tablename, columns) SELECT DISTINCT %2$L, %3$s FROM old_rows;
            ELSE
                INSERT INTO warmcache_outbox (tablename, columns)
                SELECT DISTINCT %2$L, c FROM (SELECT %3$s AS c FROM new_rows
                                              UNION ALL SELECT %3$s FROM old_rows) changed;
            END IF;
            IF FOUND AND current_setting('warmcache.notify', true) IS DISTINCT FROM 'off' THEN
                PERFORM pg_notify('warmcache_outbox', '');
            END IF;
            RETURN NULL;
        END
        $body$ $f$, fn, tname, record);
    EXECUTE format('COMMENT ON FUNCTION %I() IS %L', fn, 'v1:' || array_to_string(ARRAY(SELECT unnest(cols) ORDER BY 1), ','));
    FOREACH event IN ARRAY ARRAY['insert', 'update', 'delete'] LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION %I()',
            'warmcache_changes_' || event, upper(event), tbl,
            CASE event WHEN 'insert' THEN 'NEW TABLE AS new_rows'
                       WHEN 'update' THEN 'OLD TABLE AS old_rows NEW TABLE AS new_rows'
                       ELSE 'OLD TABLE AS old_rows' END,
            fn);
    END LOOP;
END
$install$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION warmcache_uninstall_changes(tbl regclass) RETURNS void
LANGUAGE plpgsql AS $uninstall$
BEGIN
    EXECUTE format('DROP TRIGGER IF EXISTS warmcache_changes_insert ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS warmcache_changes_update ON %s', tbl);
    EXECUTE format('DROP TRIGGER IF EXISTS warmcache_changes_delete ON %s', tbl);
    EXECUTE format('DROP FUNCTION IF EXISTS %I()', 'warmcache_changes_' || (SELECT relname FROM pg_class WHERE oid = tbl));
END
$uninstall$;
-- +goose StatementEnd

-- +goose Down
SELECT warmcache_uninstall_changes(tgrelid::regclass)
FROM (SELECT DISTINCT tgrelid FROM pg_trigger WHERE tgname = 'warmcache_changes_insert') t;
DROP FUNCTION IF EXISTS warmcache_install_changes(regclass, text[]);
DROP FUNCTION IF EXISTS warmcache_uninstall_changes(regclass);
ALTER TABLE warmcache_outbox ADD COLUMN IF NOT EXISTS customerid integer;
UPDATE warmcache_outbox SET customerid = (columns->>'customerid')::integer;
ALTER TABLE warmcache_outbox DROP COLUMN IF EXISTS columns;
