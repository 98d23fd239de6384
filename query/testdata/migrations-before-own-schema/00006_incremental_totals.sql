-- The figures of orders_total and credit_overview, maintained so that recomputing them after a
-- write reads a few hundred rows whatever the number of orders:
--
--   warmcache_customer_totals  what is booked for each customer: its card, income, orders and
--                              spending as the figures below count them
--   warmcache_credit_totals    by card type and card expiry: customers, incomes, orders, spending
--   warmcache_orders_total     the orders of customers (booked), and those of no customer
--
-- Writers pay nothing for them beyond the outbox row their invalidation needs. The warmer brings
-- them up to date before it recomputes the totals (warmcache_reconcile_totals): for each customer
-- a batch of changes names, it replaces what was booked by the customer's current figures (one
-- index lookup) and adds the difference to the groups. Booking is by state, not by delta, so it
-- does not matter in which order, or how many times, changes are reconciled. The scheduled full
-- computation checks the figures and reconciles any customer that drifted.

-- +goose Up
CREATE TABLE IF NOT EXISTS warmcache_customer_totals (
    customerid integer PRIMARY KEY,
    cardtype   integer NOT NULL,
    expiration text    NOT NULL,
    income     integer,
    orders     bigint  NOT NULL,
    spent      numeric NOT NULL
);

CREATE TABLE IF NOT EXISTS warmcache_credit_totals (
    cardtype   integer NOT NULL,
    expiration text    NOT NULL,
    customers  bigint  NOT NULL,
    incomes    bigint  NOT NULL, -- customers with an income
    income     numeric NOT NULL, -- the sum of their incomes
    orders     bigint  NOT NULL,
    spent      numeric NOT NULL,
    PRIMARY KEY (cardtype, expiration)
);

CREATE TABLE IF NOT EXISTS warmcache_orders_total (
    part    text    PRIMARY KEY, -- 'customers' (booked) or 'none' (orders without a customer)
    orders  bigint  NOT NULL,
    revenue numeric NOT NULL
);

-- warmcache_current_totals returns the current figures of customers (nothing for those that do
-- not exist): what warmcache_customer_totals should book for them.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION warmcache_current_totals(ids integer[])
RETURNS TABLE (customerid integer, cardtype integer, expiration text, income integer, orders bigint, spent numeric)
LANGUAGE sql STABLE AS $$
    SELECT c.customerid, c.creditcardtype, c.creditcardexpiration, c.income, o.orders, o.spent
    FROM customers c
    CROSS JOIN LATERAL (SELECT count(*) AS orders, COALESCE(sum(totalamount), 0) AS spent
                        FROM orders WHERE orders.customerid = c.customerid) o
    WHERE c.customerid = ANY(ids)
$$;
-- +goose StatementEnd

-- warmcache_reconcile_totals books the current figures of customers, and with nulls set recounts
-- the orders without a customer. Reconciliations run one at a time.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION warmcache_reconcile_totals(ids integer[], nulls boolean) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('warmcache_reconcile_totals'));
    -- Every part of the statement sees the table as it was before it: old is what was booked.
    WITH old AS (
        SELECT * FROM warmcache_customer_totals WHERE customerid = ANY(ids)
    ), new AS MATERIALIZED (
        SELECT * FROM warmcache_current_totals(ids)
    ), booked AS (
        INSERT INTO warmcache_customer_totals AS t SELECT * FROM new
        ON CONFLICT (customerid) DO UPDATE
            SET cardtype = excluded.cardtype, expiration = excluded.expiration, income = excluded.income,
                orders = excluded.orders, spent = excluded.spent
    ), gone AS (
        DELETE FROM warmcache_customer_totals
        WHERE customerid = ANY(ids) AND customerid NOT IN (SELECT customerid FROM new)
    ), d AS (
        SELECT cardtype, expiration, 1 AS customers, (income IS NOT NULL)::int AS incomes,
               COALESCE(income, 0) AS income, orders, spent FROM new
        UNION ALL
        SELECT cardtype, expiration, -1, -(income IS NOT NULL)::int, -COALESCE(income, 0), -orders, -spent FROM old
    ), groups AS (
        INSERT INTO warmcache_credit_totals AS t (cardtype, expiration, customers, incomes, income, orders, spent)
        SELECT cardtype, expiration, sum(customers), sum(incomes), sum(income), sum(orders), sum(spent)
        FROM d GROUP BY cardtype, expiration
        HAVING sum(customers) <> 0 OR sum(incomes) <> 0 OR sum(income) <> 0 OR sum(orders) <> 0 OR sum(spent) <> 0
        ON CONFLICT (cardtype, expiration) DO UPDATE
            SET customers = t.customers + excluded.customers, incomes = t.incomes + excluded.incomes,
                income = t.income + excluded.income, orders = t.orders + excluded.orders, spent = t.spent + excluded.spent
    )
    UPDATE warmcache_orders_total
    SET orders = orders + (SELECT COALESCE(sum(orders), 0) FROM d),
        revenue = revenue + (SELECT COALESCE(sum(spent), 0) FROM d)
    WHERE part = 'customers';
    IF nulls THEN
        UPDATE warmcache_orders_total SET (orders, revenue) =
            (SELECT count(*), COALESCE(sum(totalamount), 0) FROM orders WHERE customerid IS NULL)
        WHERE part = 'none';
    END IF;
END
$$;
-- +goose StatementEnd

-- warmcache_drifted_totals returns the customers whose booked figures differ from their current
-- ones, among ids, or among all customers when ids is NULL (a full comparison); 0 stands for
-- the orders without a customer.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION warmcache_drifted_totals(ids integer[]) RETURNS SETOF integer
LANGUAGE sql STABLE AS $$
    WITH current AS (
        SELECT * FROM warmcache_current_totals(ids) WHERE ids IS NOT NULL
        UNION ALL
        SELECT c.customerid, c.creditcardtype, c.creditcardexpiration, c.income,
               COALESCE(o.orders, 0), COALESCE(o.spent, 0)
        FROM customers c
        LEFT JOIN (SELECT customerid, count(*) AS orders, sum(totalamount) AS spent FROM orders GROUP BY customerid) o
               ON o.customerid = c.customerid
        WHERE ids IS NULL
    ), booked AS (
        SELECT * FROM warmcache_customer_totals WHERE ids IS NULL OR customerid = ANY(ids)
    )
    SELECT customerid FROM (SELECT * FROM current EXCEPT SELECT * FROM booked) x
    UNION
    SELECT customerid FROM (SELECT * FROM booked EXCEPT SELECT * FROM current) y
    UNION
    SELECT 0 WHERE (ids IS NULL OR 0 = ANY(ids))
        AND (SELECT (orders, revenue) FROM warmcache_orders_total WHERE part = 'none')
            IS DISTINCT FROM (SELECT (count(*)::bigint, COALESCE(sum(totalamount), 0)) FROM orders WHERE customerid IS NULL)
$$;
-- +goose StatementEnd

-- warmcache_reseed_totals books every customer afresh.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION warmcache_reseed_totals() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('warmcache_reconcile_totals'));
    TRUNCATE warmcache_customer_totals, warmcache_credit_totals, warmcache_orders_total;
    INSERT INTO warmcache_customer_totals
    SELECT c.customerid, c.creditcardtype, c.creditcardexpiration, c.income,
           COALESCE(o.orders, 0), COALESCE(o.spent, 0)
    FROM customers c
    LEFT JOIN (SELECT customerid, count(*) AS orders, sum(totalamount) AS spent FROM orders GROUP BY customerid) o
           ON o.customerid = c.customerid;
    INSERT INTO warmcache_credit_totals
    SELECT cardtype, expiration, count(*), count(income), COALESCE(sum(income), 0), sum(orders), sum(spent)
    FROM warmcache_customer_totals GROUP BY cardtype, expiration;
    INSERT INTO warmcache_orders_total
    SELECT 'customers', COALESCE(sum(orders), 0), COALESCE(sum(spent), 0) FROM warmcache_customer_totals;
    INSERT INTO warmcache_orders_total
    SELECT 'none', count(*), COALESCE(sum(totalamount), 0) FROM orders WHERE customerid IS NULL;
END
$$;
-- +goose StatementEnd

SELECT warmcache_reseed_totals();

-- +goose Down
DROP FUNCTION IF EXISTS warmcache_reseed_totals();
DROP FUNCTION IF EXISTS warmcache_drifted_totals(integer[]);
DROP FUNCTION IF EXISTS warmcache_reconcile_totals(integer[], boolean);
DROP FUNCTION IF EXISTS warmcache_current_totals(integer[]);
DROP TABLE IF EXISTS warmcache_orders_total;
DROP TABLE IF EXISTS warmcache_credit_totals;
DROP TABLE IF EXISTS warmcache_customer_totals;
