-- +goose Up
-- Which digest each event's hash was computed with (eventstore's digest in
-- canonical.go; docs/event-store.md, "The digest"). Version 1 could not tell
-- a NULL owner_id from the all-zero UUID; version 2 covers every stored
-- column that carries meaning, NULL-ness included, and this column itself.
--
-- Rows written before this migration are version 1 (the constant default
-- fills them without rewriting the table). The store writes 2 explicitly;
-- the default stays 1 because a writer that does not name the column is one
-- that computed the old digest. `dashtam audit verify` refuses a version 1
-- row that follows a version 2 row in the same stream, so a stream cannot be
-- moved back to the weaker digest.
ALTER TABLE events
    ADD COLUMN digest_version smallint NOT NULL DEFAULT 1
        CONSTRAINT events_digest_version_known CHECK (digest_version IN (1, 2));

-- +goose Down
ALTER TABLE events DROP COLUMN digest_version;
