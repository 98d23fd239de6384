-- A second schema for the tests, unlike dellstore2: a metering service's, in a schema of its own
-- (not public) with mixed-case quoted names. Plans have accounts, accounts have usage events;
-- the jobs over it join them, group by columns of several tables, and key by two columns.
CREATE SCHEMA metering;

CREATE TABLE metering."Plans" (
    plan_id integer PRIMARY KEY,
    "Name"  text    NOT NULL
);

CREATE TABLE metering."Accounts" (
    account_id integer PRIMARY KEY,
    plan_id    integer NOT NULL REFERENCES metering."Plans",
    "Region"   text    NOT NULL
);
CREATE INDEX ON metering."Accounts" (plan_id);

CREATE TABLE metering."UsageEvents" (
    event_id   bigserial PRIMARY KEY,
    account_id integer   NOT NULL REFERENCES metering."Accounts",
    "Day"      date      NOT NULL,
    units      integer   NOT NULL
);
CREATE INDEX ON metering."UsageEvents" (account_id);

-- The accounts as their owners see them: a view, which jobs read like a table.
CREATE VIEW metering."AccountPlans" AS
    SELECT a.account_id, a."Region", p.plan_id, p."Name" AS plan_name
    FROM metering."Accounts" a JOIN metering."Plans" p ON p.plan_id = a.plan_id;

SELECT setseed(0.42);
INSERT INTO metering."Plans" SELECT i, 'plan ' || i FROM generate_series(1, 5) i;
INSERT INTO metering."Accounts"
    SELECT i, 1 + (i % 5), (ARRAY['eu', 'us', 'ap'])[1 + i % 3] FROM generate_series(1, :accounts) i;
INSERT INTO metering."UsageEvents" (account_id, "Day", units)
    SELECT 1 + floor(random() * :accounts)::int, date '2026-11-01' + floor(random() * 28)::int, 1 + floor(random() * 100)::int
    FROM generate_series(1, :events);
ANALYZE metering."Plans", metering."Accounts", metering."UsageEvents";
