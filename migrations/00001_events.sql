-- +goose Up
-- The event log: the immutable audit trail every read model is built from.
CREATE TABLE events (
    global_position bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_type     text        NOT NULL CHECK (stream_type IN ('connection', 'account', 'transaction', 'user')),
    stream_id       uuid        NOT NULL,
    version         bigint      NOT NULL CHECK (version > 0),
    event_id        uuid        NOT NULL UNIQUE,
    event_type      text        NOT NULL CHECK (length(event_type) BETWEEN 1 AND 200),
    schema_version  integer     NOT NULL CHECK (schema_version > 0),
    owner_id        uuid,
    -- json, not jsonb: the exact bytes the writer hashed are kept, so the chain
    -- covers them without canonicalisation, and inserts skip jsonb parsing.
    payload         json        NOT NULL,
    metadata        jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL,
    prev_hash       bytea       NOT NULL CHECK (length(prev_hash) = 32),
    hash            bytea       NOT NULL CHECK (length(hash) = 32),
    UNIQUE (stream_id, version)
);

-- Subscriptions read in commit order behind the xid8 horizon.
CREATE INDEX events_transaction_order ON events (transaction_id, global_position);
-- Audit queries by owning user.
CREATE INDEX events_owner ON events (owner_id, global_position) WHERE owner_id IS NOT NULL;
-- Audit queries by time range: BRIN is nearly free to maintain on an append-only table.
CREATE INDEX events_recorded_at ON events USING brin (recorded_at);

-- The log is append-only, enforced by the database for every role that has not
-- disabled triggers (only a superuser can): no UPDATE, DELETE or TRUNCATE.
-- +goose StatementBegin
CREATE FUNCTION events_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_reject_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_reject_change();
REVOKE UPDATE, DELETE, TRUNCATE ON events FROM PUBLIC;

-- Appends are one INSERT statement built by the eventstore package: it looks
-- up the head of the stream at the expected version, links each event into the
-- stream's SHA-256 chain (hash = sha256(prev_hash || digest), the digest
-- computed by the writer over the canonical event) and inserts the batch.
-- UNIQUE (stream_id, version) turns a concurrent writer into a conflict.

-- +goose Down
DROP TABLE events;
DROP FUNCTION events_reject_change();
