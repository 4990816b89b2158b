-- +goose Up
-- The sync's command-side index (commands/syncs, docs/sync.md): which
-- accounts a connection has and which transactions an account has, so that
-- a sync finds what is new, what changed and what disappeared without
-- folding every stream. Both tables are derived from the log: every row is
-- written in the unit of work that appends the events it reflects, and
-- `dashtam syncs reindex` rebuilds them from the log.

-- One row per account stream: its connection, its id at the provider, and
-- whether it is open (AccountOpened/Updated) or closed (AccountClosed).
CREATE TABLE sync_accounts (
    account_id          uuid    PRIMARY KEY,
    connection_id       uuid    NOT NULL,
    provider_account_id text    NOT NULL,
    active              boolean NOT NULL
);
CREATE INDEX sync_accounts_connection ON sync_accounts (connection_id);

-- One row per transaction stream: its account and connection, its id at
-- the provider, its status and date as the latest event states them, and
-- the fingerprint of its data (aggregates/transaction Data.Fingerprint):
-- a transaction the provider reports with the same fingerprint is
-- unchanged and is not loaded.
CREATE TABLE sync_transactions (
    transaction_id          uuid  PRIMARY KEY,
    account_id              uuid  NOT NULL,
    connection_id           uuid  NOT NULL,
    provider_transaction_id text  NOT NULL,
    status                  text  NOT NULL CHECK (status IN ('pending', 'posted', 'removed')),
    date                    date  NOT NULL,
    fingerprint             bytea NOT NULL
);
-- Pending ones are few: the removal check of an account, and the oldest
-- pending date of a connection that widens the next sync's window.
CREATE INDEX sync_transactions_pending ON sync_transactions (connection_id, account_id, date) WHERE status = 'pending';

-- +goose Down
DROP TABLE sync_transactions;
DROP TABLE sync_accounts;
