-- Until 0.2, this migration created an index on dellstore2's orders for the built-in jobs. warmcache
-- creates nothing on users' tables any more: the demo's setup (seed) creates that index, and
-- warmer check advises the indexes a job needs. An installation that applied it keeps its index.

-- +goose Up
SELECT 1;

-- +goose Down
SELECT 1;
