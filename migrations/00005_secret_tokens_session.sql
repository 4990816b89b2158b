-- +goose Up
-- The identity sweep and every session delete (the foreign key's check) look
-- tokens up by session; without this index both scan secret_tokens.
CREATE INDEX secret_tokens_session ON secret_tokens (session_id) WHERE session_id IS NOT NULL;

-- +goose Down
DROP INDEX secret_tokens_session;
