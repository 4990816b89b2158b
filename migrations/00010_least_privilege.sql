-- +goose Up
-- Least privilege (docs/event-store.md, "Immutability and privileges"): the
-- role that runs migrations owns every table; the application connects as
-- another role that owns nothing. What that role may do is granted by name
-- after every migration run (migrations.GrantApp), because a migration file
-- cannot know the role's name. This file holds what is true whatever it is.

-- Before PostgreSQL 15 every role could create tables in the public schema,
-- and would then own them: an application role could make itself tables the
-- owner's rules do not cover. PostgreSQL 15 no longer grants it; for older
-- servers this takes it back. Only the schema's owner can (on a managed
-- server often the administrator, not the migrating role): anyone else gets a
-- warning and nothing changes, and the README's production set-up says to run
-- it by hand there.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- Nobody but the roles GrantApp names gets anything on the log, even if an
-- operator's ALTER DEFAULT PRIVILEGES granted PUBLIC more before this ran.
REVOKE ALL ON TABLE events FROM PUBLIC;
REVOKE ALL ON SEQUENCE events_global_position_seq FROM PUBLIC;

-- +goose Down
-- Nothing to give back: PUBLIC held none of this by default.
SELECT 1;
