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
--
-- The functions that read orders and customers are the built-in jobs' own: warmer migrate and the
-- warmer install them where the built-ins are on (query/builtins.sql), since 0.2; this migration
-- creates the tables alone, which work on any database.

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

-- +goose Down
DROP TABLE IF EXISTS warmcache_orders_total;
DROP TABLE IF EXISTS warmcache_credit_totals;
DROP TABLE IF EXISTS warmcache_customer_totals;
