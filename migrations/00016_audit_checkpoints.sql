-- +goose Up
-- Signed checkpoints of the event log (docs/audit.md). A checkpoint commits
-- to every event at or below a position in commit order, (transaction_id,
-- global_position), behind the xid horizon: the RFC 6962 Merkle root over
-- the events' leaves (global position and chain hash), signed with Ed25519.
-- Each names the digest of its predecessor's signed text and carries the
-- RFC 6962 consistency proof from the predecessor's tree to its own, so the
-- checkpoints form a chain that a rewritten log cannot follow.
--
-- All three tables are append-only, like events: a row, once written, is a
-- fact about the log at that moment. Checkpoints are also written, one file
-- each, to a directory outside the database (DASHTAM_AUDIT_CHECKPOINT_DIR),
-- which is what catches a superuser who rewrites or empties this table too.
CREATE TABLE audit_checkpoints (
    seq                 bigint      PRIMARY KEY CHECK (seq > 0),
    tree_size           bigint      NOT NULL UNIQUE CHECK (tree_size > 0),
    root                bytea       NOT NULL CHECK (length(root) = 32),
    last_transaction_id xid8        NOT NULL,
    last_position       bigint      NOT NULL,
    created_at          timestamptz NOT NULL,
    -- SHA-256 of the predecessor's signed text; 32 zero bytes for seq 1.
    prev_digest         bytea       NOT NULL CHECK (length(prev_digest) = 32),
    -- RFC 6962 consistency proof from the predecessor's tree (concatenated hashes).
    consistency_proof   bytea       NOT NULL CHECK (length(consistency_proof) % 32 = 0),
    key_id              text        NOT NULL CHECK (length(key_id) BETWEEN 1 AND 64),
    public_key          bytea       NOT NULL CHECK (length(public_key) = 32),
    signature           bytea       NOT NULL CHECK (length(signature) = 64),
    -- The tree's right edge (complete subtree roots, largest first), so the
    -- next checkpoint hashes only the events appended since. Not signed: it
    -- must fold to root, which the next checkpoint checks before using it.
    frontier            bytea       NOT NULL CHECK (length(frontier) % 32 = 0),
    UNIQUE (last_transaction_id, last_position)
);

-- The tree's stored levels, so that an inclusion or consistency proof in a
-- log of millions of events reads a few rows instead of rehashing the log,
-- and verify can name the first event that differs from a checkpoint.
-- audit_tree_leaves holds every leaf once, in segments: each checkpoint
-- writes the leaves it adds (8-byte global position and 32-byte chain hash
-- each, in commit order), cut at every multiple of 256 leaves, with the
-- commit positions of a segment's first and last event, which is how an
-- event finds its leaf index. audit_tree_nodes holds every complete subtree
-- of 256 leaves or more. Both are written with the checkpoint that first
-- covers them, in its transaction, and never change.
CREATE TABLE audit_tree_leaves (
    start_index          bigint PRIMARY KEY CHECK (start_index >= 0),
    first_transaction_id xid8   NOT NULL,
    first_position       bigint NOT NULL,
    last_transaction_id  xid8   NOT NULL,
    last_position        bigint NOT NULL,
    leaves               bytea  NOT NULL CHECK (length(leaves) BETWEEN 40 AND 256 * 40 AND length(leaves) % 40 = 0)
);
CREATE UNIQUE INDEX audit_tree_leaves_first ON audit_tree_leaves (first_transaction_id, first_position);

CREATE TABLE audit_tree_nodes (
    level smallint NOT NULL CHECK (level BETWEEN 8 AND 63),
    idx   bigint   NOT NULL CHECK (idx >= 0),
    hash  bytea    NOT NULL CHECK (length(hash) = 32),
    PRIMARY KEY (level, idx)
);

-- +goose StatementBegin
CREATE FUNCTION audit_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
-- +goose StatementEnd

CREATE TRIGGER audit_checkpoints_no_update_delete BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_checkpoints_no_truncate BEFORE TRUNCATE ON audit_checkpoints
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_tree_leaves_no_update_delete BEFORE UPDATE OR DELETE ON audit_tree_leaves
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_tree_leaves_no_truncate BEFORE TRUNCATE ON audit_tree_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_tree_nodes_no_update_delete BEFORE UPDATE OR DELETE ON audit_tree_nodes
    FOR EACH ROW EXECUTE FUNCTION audit_reject_change();
CREATE TRIGGER audit_tree_nodes_no_truncate BEFORE TRUNCATE ON audit_tree_nodes
    FOR EACH STATEMENT EXECUTE FUNCTION audit_reject_change();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_checkpoints, audit_tree_leaves, audit_tree_nodes FROM PUBLIC;

-- The audit API filters by actor ("who did what"); without an index that
-- filter scans the log.
CREATE INDEX events_actor ON events ((metadata ->> 'actor'), global_position);

-- +goose Down
DROP INDEX events_actor;
DROP TABLE audit_tree_nodes;
DROP TABLE audit_tree_leaves;
DROP TABLE audit_checkpoints;
DROP FUNCTION audit_reject_change();
