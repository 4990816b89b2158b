-- +goose Up
-- Snapshots of the user aggregate (aggregates/user.Snapshot), so that loading
-- a user folds only the events after the newest snapshot instead of the
-- whole stream (commands/identity's load). A derived cache, not part of the
-- audit log: any row, or all of them, may be deleted at any time, and the
-- next load replays the stream and a later decision takes a new snapshot.
-- Never write a row by hand: a snapshot is taken in the transaction that
-- appends its version, which is what makes it true.
--
-- version:  the stream version of the last event folded into state.
-- schema:   user.SnapshotSchema of state; rows of another schema are ignored.
-- taken_at: by the deciding handler's clock, for operators.
CREATE TABLE user_snapshots (
    user_id  uuid PRIMARY KEY,
    version  bigint NOT NULL CHECK (version > 0),
    schema   int NOT NULL,
    state    jsonb NOT NULL,
    taken_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE user_snapshots;
