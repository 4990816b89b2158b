-- +goose Up
-- Webhook endpoints, their deliveries and every attempt (docs/events.md).
-- Endpoints are configuration the user owns, not history: plain rows, like
-- connection aliases. Deliveries are written by the webhook fan-out in the
-- transaction that moves its checkpoint, together with the job that sends
-- each one, so every integration event reaches each subscribed endpoint's
-- queue exactly once; the job sends outside any transaction and records
-- the attempt in a short one afterwards.

-- An endpoint: https URL, the event types it receives, its signing secret
-- sealed by the vault (bound to the endpoint id) and, during a rotation,
-- the previous secret until previous_secret_until, so both signatures are
-- sent. failing_since is the first failed attempt after the last success:
-- an endpoint failing for longer than the disable window is disabled and
-- its owner mailed.
CREATE TABLE webhook_endpoints (
    id                     uuid        PRIMARY KEY,
    user_id                uuid        NOT NULL,
    url                    text        NOT NULL CHECK (length(url) <= 2048),
    event_types            text[]      NOT NULL CHECK (cardinality(event_types) > 0),
    status                 text        NOT NULL CHECK (status IN ('enabled', 'disabled')),
    disabled_reason        text        CHECK (disabled_reason IN ('user', 'failing', 'gone')),
    disabled_at            timestamptz,
    secret_blob            bytea       NOT NULL,
    secret_key_id          text        NOT NULL,
    previous_secret_blob   bytea,
    previous_secret_key_id text,
    previous_secret_until  timestamptz,
    failing_since          timestamptz,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    CHECK ((status = 'enabled') = (disabled_reason IS NULL))
);
CREATE INDEX webhook_endpoints_user ON webhook_endpoints (user_id, created_at, id);
CREATE INDEX webhook_endpoints_enabled ON webhook_endpoints (user_id) WHERE status = 'enabled';

-- A delivery: one integration event for one endpoint. payload is the exact
-- body signed and sent on every attempt; webhook-id is event_id, the same
-- on every attempt, so receivers deduplicate on it.
CREATE TABLE webhook_deliveries (
    id               uuid        PRIMARY KEY,
    endpoint_id      uuid        NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    user_id          uuid        NOT NULL,
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    payload          bytea       NOT NULL,
    status           text        NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL,
    completed_at     timestamptz,
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_list ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);
CREATE INDEX webhook_deliveries_completed ON webhook_deliveries (completed_at) WHERE completed_at IS NOT NULL;

-- An attempt: when, what came back (status code, or the error class: a
-- timeout, a refused address, ...), and how long it took.
CREATE TABLE webhook_attempts (
    delivery_id  uuid        NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt      integer     NOT NULL,
    attempted_at timestamptz NOT NULL,
    status_code  integer,
    error        text,
    latency_ms   integer     NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- +goose Down
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
