-- +goose Up
-- The watermill-sql topic the relay publishes integration events to when
-- DASHTAM_EVENT_SINK=postgres (docs/events.md): watermill-sql v3's
-- PostgreSQL schema (DefaultPostgreSQLSchema) and its consumer-group
-- offsets (DefaultPostgreSQLOffsetsAdapter), for the topic
-- "integration_events". Created here, by the owner, because the
-- application role creates no table; the publisher and subscribers never
-- initialise schemas themselves. Readers read behind the xid horizon in
-- (transaction_id, offset) order, like the event log's subscribers; any
-- watermill application consumes the topic with a consumer group of its own.
CREATE TABLE watermill_integration_events (
    "offset"       BIGSERIAL,
    uuid           VARCHAR(36) NOT NULL,
    created_at     TIMESTAMP   NOT NULL DEFAULT CURRENT_TIMESTAMP,
    payload        JSON        DEFAULT NULL,
    metadata       JSON        DEFAULT NULL,
    transaction_id xid8        NOT NULL,
    PRIMARY KEY (transaction_id, "offset")
);

CREATE TABLE watermill_offsets_integration_events (
    consumer_group                VARCHAR(255) NOT NULL,
    offset_acked                  BIGINT,
    last_processed_transaction_id xid8         NOT NULL,
    PRIMARY KEY (consumer_group)
);

-- +goose Down
DROP TABLE watermill_offsets_integration_events;
DROP TABLE watermill_integration_events;
