-- +goose Up
-- One data key per person, outside the event log (docs/audit.md): the
-- personal fields of their events (email, IP addresses, user agents, names
-- they typed) are sealed with it (AES-256-GCM), and the key itself is kept
-- wrapped by the master keyring (DASHTAM_ENCRYPTION_KEY). Erasing a person
-- destroys their key: wrapped becomes NULL and erased_at is set, in the
-- transaction that records the erasure, and every chain still verifies
-- because the chains hash the ciphertext.
--
-- Not append-only: erasure updates the row. The old row version stays on
-- disk (and in WAL and backups) until vacuum reclaims it; it is wrapped by
-- the master key, so shredding is complete once that key rotates out of
-- every copy (see docs/audit.md).
CREATE TABLE personal_data_keys (
    user_id    uuid        PRIMARY KEY,
    -- The master key that wrapped it, for rotation.
    key_id     text,
    wrapped    bytea,
    created_at timestamptz NOT NULL,
    erased_at  timestamptz,
    CHECK ((wrapped IS NULL) = (erased_at IS NOT NULL)),
    CHECK ((wrapped IS NULL) = (key_id IS NULL))
);

-- +goose Down
DROP TABLE personal_data_keys;
