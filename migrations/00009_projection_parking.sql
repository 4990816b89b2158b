-- +goose Up
-- Events a projector could not decode, upcast or apply, parked so that the
-- projector moves past them instead of stalling (projections/park.go). One
-- row per (projection, event); a rebuild parks under NAME__rebuild and its
-- swap makes those rows the live projection's. A row stays until
-- `dashtam projections retry NAME` applies the event or a rebuild replaces
-- it. No foreign key to events: the log is immutable, so a position always
-- names the same event, and a key check would row-lock log rows.
CREATE TABLE projection_parked_events (
    projection      text        NOT NULL CHECK (projection ~ '^[a-z][a-z0-9_]*$'),
    global_position bigint      NOT NULL,
    -- Commit order, in which the runner met the event and retry applies it.
    transaction_id  xid8        NOT NULL,
    event_id        uuid        NOT NULL,
    stream_type     text        NOT NULL,
    stream_id       uuid        NOT NULL,
    version         bigint      NOT NULL,
    event_type      text        NOT NULL,
    error           text        NOT NULL,
    attempts        integer     NOT NULL CHECK (attempts > 0),
    parked_at       timestamptz NOT NULL DEFAULT now(),
    last_attempt_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, global_position)
);
CREATE INDEX projection_parked_events_order ON projection_parked_events (projection, transaction_id, global_position);

-- Metadata is decoded by every reader of the log into string fields; a row
-- whose known keys hold another JSON type (`{"actor": 5}`) cannot be decoded.
-- The store writes only strings (eventstore.Metadata is all strings, checked
-- for length before each append); this holds every other writer to the same
-- shape. NOT VALID: the rows already stored are not checked. Validating would
-- scan the whole log under a lock that blocks appends, and a violating row
-- could never be fixed - the log is immutable - so the migration would fail
-- forever. Readers tolerate such rows instead (eventstore.Record.MetadataErr)
-- and `dashtam audit verify` names them; once verify reports none, an
-- operator may run `ALTER TABLE events VALIDATE CONSTRAINT events_metadata_shape`.
ALTER TABLE events ADD CONSTRAINT events_metadata_shape CHECK (
    jsonb_typeof(metadata) = 'object'
    AND coalesce(jsonb_typeof(metadata -> 'actor'), 'string') = 'string'
    AND coalesce(jsonb_typeof(metadata -> 'correlation_id'), 'string') = 'string'
    AND coalesce(jsonb_typeof(metadata -> 'causation_id'), 'string') = 'string'
    AND coalesce(jsonb_typeof(metadata -> 'request_id'), 'string') = 'string'
    AND coalesce(jsonb_typeof(metadata -> 'trace_id'), 'string') = 'string'
    AND coalesce(jsonb_typeof(metadata -> 'ip'), 'string') = 'string'
    AND coalesce(jsonb_typeof(metadata -> 'user_agent'), 'string') = 'string'
    AND coalesce(jsonb_typeof(metadata -> 'command'), 'string') = 'string'
) NOT VALID;

-- +goose Down
ALTER TABLE events DROP CONSTRAINT events_metadata_shape;
DROP TABLE projection_parked_events;
