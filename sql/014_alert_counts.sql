-- What the daemon's background gauges read, kept small: open (unacknowledged) alerts
-- counted by kind, kept up to date by triggers on smartpay.alerts in the writer's own
-- statement (the gauges read these few rows instead of counting every open alert, tens
-- of thousands after a first sweep over a large shop), and a safe cast of order ids.
CREATE TABLE smartpay.alert_counts (
    kind text PRIMARY KEY,
    open bigint NOT NULL DEFAULT 0
);
INSERT INTO smartpay.alert_counts (kind, open)
SELECT kind, count(*) FROM smartpay.alerts WHERE acknowledged_at IS NULL GROUP BY kind;

-- Applies one statement's change to the counts: +1 per row that is open after it, -1
-- per row that was open before it, summed by kind. Statement-level with transition
-- tables, so that a sweep inserting 50,000 alerts updates each kind's row once; kinds
-- in a fixed order, so that two writers never deadlock on them. Runs with its owner's
-- rights: the roles that write alerts need no privilege on the counts.
CREATE FUNCTION smartpay.alert_counts_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, smartpay, pg_temp AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO smartpay.alert_counts AS c (kind, open)
        SELECT n.kind, count(*) FROM new_rows n WHERE n.acknowledged_at IS NULL
        GROUP BY n.kind ORDER BY n.kind
        ON CONFLICT (kind) DO UPDATE SET open = c.open + EXCLUDED.open;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO smartpay.alert_counts AS c (kind, open)
        SELECT d.kind, sum(d.n) FROM (
            SELECT n.kind, 1 AS n FROM new_rows n WHERE n.acknowledged_at IS NULL
            UNION ALL
            SELECT o.kind, -1 FROM old_rows o WHERE o.acknowledged_at IS NULL) d
        GROUP BY d.kind HAVING sum(d.n) <> 0 ORDER BY d.kind
        ON CONFLICT (kind) DO UPDATE SET open = c.open + EXCLUDED.open;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE smartpay.alert_counts c SET open = c.open - d.n
        FROM (SELECT o.kind, count(*) AS n FROM old_rows o WHERE o.acknowledged_at IS NULL
              GROUP BY o.kind) d
        WHERE c.kind = d.kind;
    ELSE
        -- TRUNCATE
        DELETE FROM smartpay.alert_counts;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER alert_counts_insert AFTER INSERT ON smartpay.alerts
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.alert_counts_apply();
CREATE TRIGGER alert_counts_update AFTER UPDATE ON smartpay.alerts
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.alert_counts_apply();
CREATE TRIGGER alert_counts_delete AFTER DELETE ON smartpay.alerts
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.alert_counts_apply();
CREATE TRIGGER alert_counts_truncate AFTER TRUNCATE ON smartpay.alerts
    FOR EACH STATEMENT EXECUTE FUNCTION smartpay.alert_counts_apply();

-- The ids of p_ids that are values of p_type (the type of the orders' id column), in
-- their order: the gauges read orders again by id through the relation's own index,
-- and one id that does not cast (a notification payload anyone could send) must not
-- fail the statement.
CREATE FUNCTION smartpay.castable_ids(p_ids text[], p_type regtype) RETURNS text[]
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_id  text;
    v_out text[] := '{}';
BEGIN
    FOREACH v_id IN ARRAY coalesce(p_ids, '{}') LOOP
        BEGIN
            EXECUTE format('SELECT $1::%s', p_type) USING v_id;
            v_out := v_out || v_id;
        EXCEPTION WHEN data_exception THEN
            NULL;
        END;
    END LOOP;
    RETURN v_out;
END
$$;
