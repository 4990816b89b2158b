-- +goose Up
-- One row per projection (and per rebuild in progress, named NAME__rebuild):
-- where in the log its read model is, written in the same transaction as the
-- read-model rows so the two can never disagree. The read-model tables
-- themselves are created by their projector (projections.Projector.Schema):
-- one DDL source serves both the live tables and the shadow tables a rebuild
-- fills.
CREATE TABLE projection_checkpoints (
    name            text        PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]*$'),
    -- Commit-order position: the subscription predicate compares
    -- (transaction_id, global_position) pairs.
    transaction_id  xid8        NOT NULL DEFAULT '0',
    global_position bigint      NOT NULL DEFAULT 0,
    events_applied  bigint      NOT NULL DEFAULT 0,
    -- Hash of the DDL the live tables were created with: a projector whose
    -- Schema changed reports itself stale until it is rebuilt.
    schema_hash     text        NOT NULL DEFAULT '',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    rebuilt_at      timestamptz
);

-- Shadow tables of a rebuild live here under their live names, so that their
-- indexes, constraints and identity sequences keep the names they will have
-- once ALTER TABLE … SET SCHEMA moves them into place.
CREATE SCHEMA projections_rebuild;

-- +goose Down
DROP SCHEMA projections_rebuild CASCADE;
DROP TABLE projection_checkpoints;
