-- grant-smartpayd.sql: the least-privilege database role that smartpayd runs as.
--
-- Not a migration. Run it with psql as the owner of schema smartpay (the role that runs
-- `smartpayctl migrate`; it needs CREATEROLE to create the role), after the first
-- `smartpayctl migrate` and again after every upgrade that adds migrations:
--
--     psql -d shop -f /usr/share/smartpayd/sql/grant-smartpayd.sql
--     psql -d shop -v role=smartpayd -v orders_relation=shop.orders_view -f ...
--
-- psql variables, both optional:
--   role             the daemon's role (default smartpayd, the systemd unit's User=, so
--                    peer authentication over the unix socket needs no password)
--   orders_relation  the shop's orders table or view (default: the one `smartpayctl
--                    migrate` recorded in smartpay.settings, else public.orders)
--
-- The role is created with LOGIN and nothing else, or an existing role is stripped of
-- SUPERUSER, CREATEDB, CREATEROLE, REPLICATION and BYPASSRLS. Its privileges on schema
-- smartpay and on the orders relation are revoked and granted afresh, exactly:
--   CONNECT on the database, USAGE on schema smartpay and on the orders relation's schema,
--   SELECT on smartpay.schema_migrations (the daemon checks the schema version),
--   SELECT, INSERT, UPDATE on smartpay.modifications and smartpay.alerts,
--   SELECT, UPDATE on smartpay.requests (the daemon links each request to its modification),
--   SELECT, INSERT, UPDATE on smartpay.reconciliations (when each transaction was last
--   compared with the gateway),
--   SELECT on smartpay.adoption and smartpay.history (the baseline),
--   SELECT on smartpay.alert_counts (open alerts by kind, for the gauges),
--   SELECT, INSERT, DELETE on smartpay.order_changes and SELECT, UPDATE, DELETE on
--   smartpay.order_change_chunks (the queue the daemon consumes),
--   USAGE on the sequences of the tables it inserts into,
--   SELECT on the orders relation.
-- No other DELETE, no TRUNCATE, no DDL, no access to anything else of the shop. The role has
-- no password: use peer authentication, or set one with \password.

\set ON_ERROR_STOP on
\if :{?role}
\else
\set role smartpayd
\endif
\if :{?orders_relation}
\else
\set orders_relation ''
\endif

BEGIN;
SET LOCAL smartpayd.grant_role = :'role';
SET LOCAL smartpayd.grant_orders = :'orders_relation';

DO $grant$
DECLARE
    v_role    text := current_setting('smartpayd.grant_role');
    v_orders  text := nullif(current_setting('smartpayd.grant_orders'), '');
    v_rel     regclass;
    v_nsp     text;
    v_attrs   record;
    v_table   record;
    v_seq     regclass;
    v_owned   text;
    v_member  text;
BEGIN
    IF v_role IS NULL OR v_role = '' THEN
        RAISE EXCEPTION 'the role name is empty';
    END IF;
    IF v_role = current_user THEN
        RAISE EXCEPTION 'refusing to restrict % (the role running this script)', v_role
            USING HINT = 'Run it as the owner of schema smartpay, naming the daemon''s role.';
    END IF;
    IF to_regnamespace('smartpay') IS NULL THEN
        RAISE EXCEPTION 'schema smartpay does not exist'
            USING HINT = 'Run smartpayctl migrate first.';
    END IF;

    -- An owner keeps every privilege whatever is granted: the daemon must own nothing.
    SELECT string_agg(c.oid::regclass::text, ', ') INTO v_owned
    FROM pg_class c
    WHERE c.relnamespace = 'smartpay'::regnamespace AND pg_get_userbyid(c.relowner) = v_role;
    IF v_owned IS NOT NULL
       OR (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'smartpay') = v_role THEN
        RAISE EXCEPTION 'role % owns schema smartpay or its tables (%)', v_role,
            coalesce(v_owned, 'the schema')
            USING HINT = 'Run smartpayctl migrate as another role (the owner), and the daemon as this one.';
    END IF;

    SELECT * INTO v_attrs FROM pg_roles WHERE rolname = v_role;
    IF NOT FOUND THEN
        EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                       'NOREPLICATION NOBYPASSRLS', v_role);
        RAISE NOTICE 'created role %', v_role;
    ELSIF v_attrs.rolsuper OR v_attrs.rolcreatedb OR v_attrs.rolcreaterole
          OR v_attrs.rolreplication OR v_attrs.rolbypassrls OR NOT v_attrs.rolcanlogin THEN
        EXECUTE format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                       'NOREPLICATION NOBYPASSRLS', v_role);
        RAISE NOTICE 'role % stripped of SUPERUSER, CREATEDB, CREATEROLE, REPLICATION, BYPASSRLS',
            v_role;
    END IF;
    SELECT string_agg(g.rolname, ', ') INTO v_member
    FROM pg_auth_members m
    JOIN pg_roles g ON g.oid = m.roleid
    JOIN pg_roles r ON r.oid = m.member
    WHERE r.rolname = v_role;
    IF v_member IS NOT NULL THEN
        RAISE WARNING 'role % is a member of % and may use their privileges too', v_role, v_member;
    END IF;

    -- schema smartpay: start from nothing
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA smartpay FROM %I', v_role);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA smartpay FROM %I', v_role);
    -- the shop's request functions (SECURITY DEFINER, not granted to PUBLIC) stay out of
    -- reach: the daemon never asks for money to move on its own
    EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA smartpay FROM %I', v_role);
    EXECUTE format('REVOKE ALL ON SCHEMA smartpay FROM %I', v_role);
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), v_role);
    EXECUTE format('GRANT USAGE ON SCHEMA smartpay TO %I', v_role);

    FOR v_table IN
        SELECT * FROM (VALUES
            ('schema_migrations', 'SELECT', false),
            ('modifications', 'SELECT, INSERT, UPDATE', true),
            ('alerts', 'SELECT, INSERT, UPDATE', true),
            ('requests', 'SELECT, UPDATE', false),
            ('reconciliations', 'SELECT, INSERT, UPDATE', false),
            ('adoption', 'SELECT', false),
            ('history', 'SELECT', false),
            -- open alerts by kind, kept by triggers on smartpay.alerts (the gauges)
            ('alert_counts', 'SELECT', false),
            -- the queue of changed orders: the daemon deletes what it has looked at and
            -- queues an order again when a capture's outcome may call for a cancel
            ('order_changes', 'SELECT, INSERT, DELETE', true),
            -- the statement trigger's chunks of it: a chunk is rewritten without the
            -- orders looked at, or deleted when all are
            ('order_change_chunks', 'SELECT, UPDATE, DELETE', false)) AS t(name, privileges, inserts)
    LOOP
        IF to_regclass(format('smartpay.%I', v_table.name)) IS NULL THEN
            RAISE NOTICE 'smartpay.% does not exist at this schema version: skipped', v_table.name;
            CONTINUE;
        END IF;
        EXECUTE format('GRANT %s ON smartpay.%I TO %I', v_table.privileges, v_table.name, v_role);
        IF v_table.inserts THEN
            -- the sequences behind serial and identity columns: nextval() on INSERT
            FOR v_seq IN
                SELECT d.objid::regclass
                FROM pg_depend d
                JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
                WHERE d.classid = 'pg_class'::regclass
                  AND d.refobjid = to_regclass(format('smartpay.%I', v_table.name))
                  AND d.deptype IN ('a', 'i')
            LOOP
                EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %I', v_seq, v_role);
            END LOOP;
        END IF;
    END LOOP;

    -- the shop's orders relation: read only
    IF v_orders IS NULL AND to_regclass('smartpay.settings') IS NOT NULL THEN
        EXECUTE 'SELECT orders_relation FROM smartpay.settings LIMIT 1' INTO v_orders;
    END IF;
    v_orders := coalesce(v_orders, 'public.orders');
    v_rel := to_regclass(v_orders);
    IF v_rel IS NULL THEN
        RAISE EXCEPTION 'orders relation % does not exist', v_orders
            USING HINT = 'Pass -v orders_relation=SCHEMA.NAME.';
    END IF;
    SELECT n.nspname INTO v_nsp
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.oid = v_rel;
    EXECUTE format('REVOKE ALL ON %s FROM %I', v_rel, v_role);
    EXECUTE format('GRANT SELECT ON %s TO %I', v_rel, v_role);
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO %I', v_nsp, v_role);

    IF has_schema_privilege(v_role, 'public', 'CREATE') THEN
        RAISE WARNING 'role % can create objects in schema public (PUBLIC has CREATE there)', v_role
            USING HINT = 'REVOKE CREATE ON SCHEMA public FROM PUBLIC (the default since PostgreSQL 15).';
    END IF;
    RAISE NOTICE 'role % may now run smartpayd on database % (orders relation %)',
        v_role, current_database(), v_rel;
END
$grant$;

COMMIT;
