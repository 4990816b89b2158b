-- +goose NO TRANSACTION
-- +goose Up
-- One user's events in commit order: the transactions change feed reads
-- the caller's transaction events after a (transaction_id, global_position)
-- cursor behind the xid horizon, and the live event stream resumes a
-- Last-Event-ID the same way. events_owner (owner_id, global_position)
-- cannot bound that read, because commit order and position order differ
-- across transactions, so without this index every page would read and
-- sort all of a user's events. Built CONCURRENTLY: the log is the busiest
-- table and must keep taking appends while a deployment migrates.
CREATE INDEX CONCURRENTLY IF NOT EXISTS events_owner_commit_order
    ON events (owner_id, transaction_id, global_position) WHERE owner_id IS NOT NULL;

-- +goose Down
DROP INDEX CONCURRENTLY IF EXISTS events_owner_commit_order;
