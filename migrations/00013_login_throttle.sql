-- +goose Up
-- The lockout state of login names that belong to no user, so that a
-- login to an unknown address is refused exactly as one to a registered
-- address (five failures, then 403 account_locked for fifteen minutes):
-- the answers cannot tell which addresses are registered. Registered
-- users keep the same state in their event stream; this table is only
-- for the rest. The key is a keyed digest (HMAC-SHA-256) of the
-- normalised address, never the address: a copy of the table does not
-- list what was typed into the login form, which may be a password typed
-- into the wrong field. Rows whose lockout is over and whose last failure
-- is older than user.FailureWindow no longer change any answer and are
-- swept (commands/identity's Sweep).
CREATE TABLE login_throttle (
    name_digest     bytea       PRIMARY KEY CHECK (length(name_digest) = 32),
    failed_attempts int         NOT NULL CHECK (failed_attempts >= 0),
    locked_until    timestamptz,
    last_failure_at timestamptz
);

-- +goose Down
DROP TABLE login_throttle;
