-- +goose Up
-- Snapshots of any aggregate (eventstore.Snapshots), keyed by stream, so
-- that a load folds only the events after the newest snapshot instead of
-- the whole stream. A derived cache, not part of the audit log: any row, or
-- all of them, may be deleted at any time; the next load replays the stream
-- and a later decision takes a new snapshot. Never write a row by hand: a
-- snapshot is taken in the transaction that appends its version, which is
-- what makes it true.
--
-- version:  the stream version of the last event folded into state.
-- schema:   the aggregate's snapshot schema; rows of another are ignored.
-- taken_at: by the store's clock, for operators.
CREATE TABLE snapshots (
    stream_type text   NOT NULL,
    stream_id   uuid   NOT NULL,
    version     bigint NOT NULL CHECK (version > 0),
    schema      int    NOT NULL,
    state       jsonb  NOT NULL,
    taken_at    timestamptz NOT NULL,
    PRIMARY KEY (stream_type, stream_id)
);

-- The user-only table it replaces held nothing the log does not: dropping
-- it costs each user one full replay at their next decision.
DROP TABLE user_snapshots;

-- +goose Down
CREATE TABLE user_snapshots (
    user_id  uuid PRIMARY KEY,
    version  bigint NOT NULL CHECK (version > 0),
    schema   int NOT NULL,
    state    jsonb NOT NULL,
    taken_at timestamptz NOT NULL
);
DROP TABLE snapshots;
