-- +goose Up
-- Servers keep the outcome of recent session checks in memory (see
-- commands/identity's session cache), so every change that could turn an
-- accepted access token into a refused one must tell every server. A
-- trigger, not the handlers, sends it: no write path, present or future,
-- the command line included, can forget. NOTIFY is transactional, so the
-- message leaves exactly when the change commits and never for a rollback.
-- The payload is the user id, or '*' for the deployment-wide token policy.

-- +goose StatementBegin
CREATE FUNCTION identity_notify_user() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dashtam_identity', OLD.user_id::text);
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION identity_notify_all() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dashtam_identity', '*');
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- A session that ends, moves to another user (never done, but cheap to
-- cover), expires sooner or disappears. A refresh only extends expires_at
-- and bumps counters the check does not read, so it sends nothing: a
-- cached expiry that is too early only costs a database read.
CREATE TRIGGER auth_sessions_notify
    AFTER UPDATE ON auth_sessions FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status
          OR OLD.user_id IS DISTINCT FROM NEW.user_id
          OR NEW.expires_at < OLD.expires_at)
    EXECUTE FUNCTION identity_notify_user();
CREATE TRIGGER auth_sessions_notify_delete
    AFTER DELETE ON auth_sessions FOR EACH ROW
    EXECUTE FUNCTION identity_notify_user();

-- Roles and the per-user token version are read by every check; a new
-- password hash is not (a reset revokes the sessions, which notifies).
CREATE TRIGGER user_credentials_notify
    AFTER UPDATE ON user_credentials FOR EACH ROW
    WHEN (OLD.roles IS DISTINCT FROM NEW.roles
          OR OLD.token_version IS DISTINCT FROM NEW.token_version
          OR OLD.tokens_rotated_at IS DISTINCT FROM NEW.tokens_rotated_at)
    EXECUTE FUNCTION identity_notify_user();
CREATE TRIGGER user_credentials_notify_delete
    AFTER DELETE ON user_credentials FOR EACH ROW
    EXECUTE FUNCTION identity_notify_user();

-- A global rotation changes every user's minimum token version.
CREATE TRIGGER security_settings_notify
    AFTER UPDATE OR DELETE ON security_settings FOR EACH ROW
    EXECUTE FUNCTION identity_notify_all();

-- TRUNCATE fires no row triggers; it empties a table, so every server forgets everything.
CREATE TRIGGER auth_sessions_notify_truncate
    AFTER TRUNCATE ON auth_sessions FOR EACH STATEMENT
    EXECUTE FUNCTION identity_notify_all();
CREATE TRIGGER user_credentials_notify_truncate
    AFTER TRUNCATE ON user_credentials FOR EACH STATEMENT
    EXECUTE FUNCTION identity_notify_all();
CREATE TRIGGER security_settings_notify_truncate
    AFTER TRUNCATE ON security_settings FOR EACH STATEMENT
    EXECUTE FUNCTION identity_notify_all();

-- +goose Down
DROP TRIGGER security_settings_notify_truncate ON security_settings;
DROP TRIGGER user_credentials_notify_truncate ON user_credentials;
DROP TRIGGER auth_sessions_notify_truncate ON auth_sessions;
DROP TRIGGER security_settings_notify ON security_settings;
DROP TRIGGER user_credentials_notify_delete ON user_credentials;
DROP TRIGGER user_credentials_notify ON user_credentials;
DROP TRIGGER auth_sessions_notify_delete ON auth_sessions;
DROP TRIGGER auth_sessions_notify ON auth_sessions;
DROP FUNCTION identity_notify_all();
DROP FUNCTION identity_notify_user();
