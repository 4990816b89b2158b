-- +goose Up
-- What connecting to a provider needs besides the event log: the OAuth
-- state of authorisations in flight, the live aliases that must stay
-- unique, and the encrypted credentials. The use cases write these rows in
-- the same transaction as the connection's events.

-- An authorisation in flight: the state handed to the provider, stored as
-- its SHA-256 digest (a copy of the table yields no usable state), single
-- use (used_at), bound to its user, connection and provider, with its
-- deadline. The PKCE verifier is sealed by the vault, bound to the
-- connection. Rows are swept a day after they expire.
CREATE TABLE oauth_states (
    state_digest   bytea       PRIMARY KEY CHECK (length(state_digest) = 32),
    connection_id  uuid        NOT NULL,
    user_id        uuid        NOT NULL,
    provider_slug  text        NOT NULL,
    verifier_blob  bytea,
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz
);
CREATE INDEX oauth_states_expires ON oauth_states (expires_at);

-- Aliases of connections, one row per connection; live rows (pending,
-- active, needs_reauth) are unique per user and provider, case-insensitively,
-- so a user may hold a "Personal" and a "Business" Schwab connection but
-- not two "Personal" ones. The unique index decides a race inside the
-- transaction that would append, so a duplicate leaves no event behind.
CREATE TABLE connection_aliases (
    connection_id uuid    PRIMARY KEY,
    user_id       uuid    NOT NULL,
    provider_slug text    NOT NULL,
    alias_key     text    NOT NULL,
    live          boolean NOT NULL
);
CREATE UNIQUE INDEX connection_aliases_live ON connection_aliases (user_id, provider_slug, alias_key) WHERE live;

-- The vault: each connection's credentials, sealed with AES-256-GCM and
-- bound to the connection (adapters/vault). Mutable and never in the log:
-- events record only that credentials were stored or refreshed, with the
-- key id, a fingerprint and the expiries. Deleting the row destroys the
-- credentials (disconnect). refreshing_until is a lease: the one refresh
-- of a connection in progress, across every instance.
CREATE TABLE provider_credentials (
    connection_id      uuid        PRIMARY KEY,
    key_id             text        NOT NULL,
    blob               bytea       NOT NULL,
    fingerprint        text        NOT NULL,
    access_expires_at  timestamptz NOT NULL,
    refresh_expires_at timestamptz,
    generation         bigint      NOT NULL DEFAULT 1,
    refreshing_until   timestamptz,
    updated_at         timestamptz NOT NULL
);
-- keys rotate finds the blobs of old keys.
CREATE INDEX provider_credentials_key ON provider_credentials (key_id);

-- +goose Down
DROP TABLE provider_credentials;
DROP TABLE connection_aliases;
DROP TABLE oauth_states;
