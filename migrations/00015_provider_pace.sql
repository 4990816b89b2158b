-- +goose Up
-- The next free call slot of each provider, shared by every instance, so
-- that together they pace their calls under the provider's own rate limit
-- (adapters/ratelimit's Pacer: a generic cell rate algorithm, one UPDATE
-- per call). UNLOGGED like the rate-limit buckets: after a crash every
-- provider starts with a free slot, which costs at most one burst.
CREATE UNLOGGED TABLE provider_pace (
    provider text        PRIMARY KEY,
    next_at  timestamptz NOT NULL
);

-- +goose Down
DROP TABLE provider_pace;
