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
    payload         jsonb       NOT NULL,
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

-- append_events appends a batch to one stream in one round trip: it checks the
-- expected version, links each event into the stream's SHA-256 chain
-- (hash = sha256(prev_hash || digest), digest computed by the writer over the
-- canonical event) and inserts all rows in one statement. A stream that moved
-- raises SQLSTATE DT409 (expected version missing) or a unique violation on
-- (stream_id, version) (someone else wrote the next version): either way nothing
-- of this batch is stored.
-- +goose StatementBegin
CREATE FUNCTION append_events(
    p_stream_type     text,
    p_stream_id       uuid,
    p_expected        bigint,
    p_owner_id        uuid,
    p_recorded_at     timestamptz,
    p_event_ids       uuid[],
    p_event_types     text[],
    p_schema_versions integer[],
    p_payloads        jsonb[],
    p_metadata        jsonb[],
    p_digests         bytea[]
) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_prev   bytea;
    v_type   text;
    v_prevs  bytea[] := '{}';
    v_hashes bytea[] := '{}';
    v_last   bigint;
    n        integer := coalesce(cardinality(p_event_ids), 0);
BEGIN
    IF n = 0 THEN
        RAISE EXCEPTION 'append_events: no events' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_expected = 0 THEN
        v_prev := decode(repeat('00', 32), 'hex');
    ELSE
        SELECT hash, stream_type INTO v_prev, v_type
          FROM events WHERE stream_id = p_stream_id AND version = p_expected;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'stream %:% is not at version %', p_stream_type, p_stream_id, p_expected
                USING ERRCODE = 'DT409';
        END IF;
        IF v_type <> p_stream_type THEN
            RAISE EXCEPTION 'stream % is a % stream, not %', p_stream_id, v_type, p_stream_type
                USING ERRCODE = 'DT409';
        END IF;
    END IF;
    FOR i IN 1..n LOOP
        v_prevs[i] := v_prev;
        v_prev := sha256(v_prev || p_digests[i]);
        v_hashes[i] := v_prev;
    END LOOP;
    WITH ins AS (
        INSERT INTO events (stream_type, stream_id, version, event_id, event_type, schema_version,
                            owner_id, payload, metadata, recorded_at, prev_hash, hash)
        SELECT p_stream_type, p_stream_id, p_expected + u.ord, u.event_id, u.event_type, u.schema_version,
               p_owner_id, u.payload, u.metadata, p_recorded_at, u.prev_hash, u.hash
          FROM unnest(p_event_ids, p_event_types, p_schema_versions, p_payloads, p_metadata, v_prevs, v_hashes)
               WITH ORDINALITY AS u(event_id, event_type, schema_version, payload, metadata, prev_hash, hash, ord)
         ORDER BY u.ord
        RETURNING global_position
    )
    SELECT max(global_position) INTO v_last FROM ins;
    RETURN v_last;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION append_events(text, uuid, bigint, uuid, timestamptz, uuid[], text[], integer[], jsonb[], jsonb[], bytea[]);
DROP TABLE events;
DROP FUNCTION events_reject_change();
