-- +goose Up
-- Token buckets of the HTTP rate limiter, shared by every server instance.
--
-- UNLOGGED: every rate-limited request writes a row, and skipping the WAL
-- spares each check its commit flush (pgbench, 8 clients, fsync on: ~20k
-- checks/s unlogged against ~7.5k logged). The price is that a crash empties
-- the table and standbys never see it, so after a crash or a failover every
-- bucket starts full. That is the same direction the limiter already fails in
-- (open), and buckets refill within minutes anyway; none of this is audit data.
--
-- No index on updated_at: each check rewrites updated_at, and an index on it
-- would rule out HOT updates and churn on every request. Sweep scans instead;
-- run regularly, it keeps the table to the keys seen within the longest
-- refill period.
CREATE UNLOGGED TABLE rate_limit_buckets (
    -- policy name, ':', then the caller's key (an IP or a user id)
    key        text             PRIMARY KEY,
    -- tokens left after the latest check; fractional because refill is
    -- continuous. Not money, so floating point is fine; the limiter allows
    -- a billionth of a token of rounding slack.
    tokens     double precision NOT NULL CHECK (tokens >= 0),
    updated_at timestamptz      NOT NULL,
    -- Outcome of the latest check. Before PostgreSQL 18, RETURNING sees only
    -- the new row, and tokens alone cannot tell "took the last token" from
    -- "had less than one": this column carries the answer out of the upsert.
    allowed    boolean          NOT NULL
) WITH (fillfactor = 80); -- room on each page for HOT updates of hot keys

-- +goose Down
DROP TABLE rate_limit_buckets;
