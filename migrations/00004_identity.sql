-- +goose Up
-- The security state that must answer at once, on every request, without
-- replaying a user's stream. The identity handlers write these rows in the
-- same transaction as the user's events, so a revoked session or a rotated
-- token version is refused the moment its event commits, and a refused
-- write (a taken email) leaves no event behind. The event log stays the
-- audit trail; these tables are derived from it plus the secrets the log
-- must never hold (password hashes, token digests).

-- Email uniqueness: the primary key is what makes a concurrent duplicate
-- registration fail inside its transaction (23505), before anything is appended.
CREATE TABLE user_emails (
    email   text PRIMARY KEY CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    user_id uuid NOT NULL UNIQUE
);

-- What authenticating a user needs: the password hash and, beside it so one
-- row answers, the roles and the per-user minimum token version.
CREATE TABLE user_credentials (
    user_id           uuid        PRIMARY KEY REFERENCES user_emails (user_id),
    password_hash     text        NOT NULL,
    roles             text[]      NOT NULL CHECK (cardinality(roles) > 0),
    token_version     bigint      NOT NULL CHECK (token_version > 0),
    tokens_rotated_at timestamptz,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL
);

-- One row per login. token_version and global_version are the versions the
-- session's current tokens were issued at; expires_at is the refresh
-- lifetime. The per-request check reads one row by primary key.
CREATE TABLE auth_sessions (
    id                 uuid        PRIMARY KEY,
    user_id            uuid        NOT NULL REFERENCES user_credentials (user_id),
    status             text        NOT NULL CHECK (status IN ('active', 'logged_out', 'revoked', 'evicted')),
    token_version      bigint      NOT NULL,
    global_version     bigint      NOT NULL,
    refresh_generation bigint      NOT NULL CHECK (refresh_generation > 0),
    created_at         timestamptz NOT NULL,
    last_active_at     timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    ended_at           timestamptz,
    ip                 text        NOT NULL,
    last_ip            text        NOT NULL,
    user_agent         text        NOT NULL,
    device             text        NOT NULL
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id, created_at DESC);

-- Opaque tokens handed to clients, stored only as their SHA-256 digest so a
-- copy of the database yields no usable token, and found by that digest.
-- Spent rows are kept (used_at set) until they expire: a spent refresh
-- token presented again must still lead to its session, which is how reuse
-- is detected.
CREATE TABLE secret_tokens (
    digest     bytea       PRIMARY KEY CHECK (length(digest) = 32),
    kind       text        NOT NULL CHECK (kind IN ('verify', 'reset', 'refresh')),
    user_id    uuid        NOT NULL REFERENCES user_credentials (user_id),
    -- verify and reset: the aggregate's request id the token completes
    request_id uuid,
    -- refresh: the session and the refresh generation the token was issued as
    session_id uuid REFERENCES auth_sessions (id),
    generation bigint,
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    CHECK ((kind = 'refresh') = (session_id IS NOT NULL AND generation IS NOT NULL)),
    CHECK ((kind = 'refresh') = (request_id IS NULL))
);
CREATE INDEX secret_tokens_user ON secret_tokens (user_id, kind) WHERE used_at IS NULL;
-- For a sweeper that deletes tokens past their lifetime.
CREATE INDEX secret_tokens_expires ON secret_tokens (expires_at);

-- The deployment-wide token policy: one row. An access token's "ver" is the
-- user's token version plus global_token_version, so raising either refuses
-- every token issued before (after the grace period).
CREATE TABLE security_settings (
    id                   integer PRIMARY KEY CHECK (id = 1),
    global_token_version bigint  NOT NULL DEFAULT 0 CHECK (global_token_version >= 0),
    rotated_at           timestamptz,
    rotated_by           uuid
);
INSERT INTO security_settings (id) VALUES (1);

-- +goose Down
DROP TABLE security_settings;
DROP TABLE secret_tokens;
DROP TABLE auth_sessions;
DROP TABLE user_credentials;
DROP TABLE user_emails;
