// Package eventsink publishes integration events through watermill
// (commands/fanout's TxSink and Broker): into a watermill-sql topic table
// in Dashtam's own database, in the relay's transaction, or to NATS
// JetStream with each event's id as the message id.
package eventsink

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	wsql "github.com/ThreeDotsLabs/watermill-sql/v3/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/commands/fanout"
)

// Topic is the watermill topic integration events are published to; with
// the postgres sink its table is watermill_integration_events and its
// consumer groups' offsets watermill_offsets_integration_events, both
// created by migration 00029.
const Topic = "integration_events"

// Metadata keys every message carries, so consumers route without
// decoding the payload.
const (
	MetadataType   = "type"
	MetadataUserID = "user_id"
)

// Postgres publishes into the watermill-sql topic table with watermill-sql
// v3's PostgreSQL schema, inside the relay's transaction: the rows commit
// with the relay's checkpoint or not at all, so each integration event is
// in the topic exactly once, and any watermill application reads the topic
// with a consumer group of its own (behind the xid horizon, as watermill's
// subscriber does).
//
// watermill-sql v3 speaks database/sql; the relay's transaction is a pgx
// one. The publisher is therefore given a *sql.DB whose one connection is
// that transaction (txConnector below): what watermill executes runs in
// the relay's transaction, on its connection, and a *sql.DB from
// stdlib.OpenDBFromPool would instead have run it in a transaction of its
// own on another connection, committed apart from the checkpoint.
type Postgres struct {
	schema wsql.SchemaAdapter
	logger watermill.LoggerAdapter
}

var _ fanout.TxSink = (*Postgres)(nil)

// NewPostgres returns the postgres sink.
func NewPostgres(logger watermill.LoggerAdapter) *Postgres {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return &Postgres{schema: arraySchema{}, logger: logger}
}

// PublishTx publishes msgs in tx; see fanout.TxSink.
func (p *Postgres) PublishTx(ctx context.Context, tx pgx.Tx, msgs []fanout.Message) error {
	if len(msgs) == 0 {
		return nil // watermill would send an INSERT without rows, a syntax error
	}
	db := sql.OpenDB(txConnector{ctx: ctx, tx: tx})
	defer db.Close()
	pub, err := wsql.NewPublisher(db, wsql.PublisherConfig{SchemaAdapter: p.schema}, p.logger)
	if err != nil {
		return fmt.Errorf("postgres sink: %w", err)
	}
	defer pub.Close()
	if err := pub.Publish(Topic, Messages(msgs)...); err != nil {
		return fmt.Errorf("postgres sink: publish %d messages: %w", len(msgs), err)
	}
	return nil
}

// arraySchema is watermill-sql's PostgreSQL schema (same table, same
// subscriber query, same rows) inserting a batch as one statement with
// three array parameters, unnested in the batch's order, instead of
// DefaultPostgreSQLSchema's VALUES list of three parameters per message:
// PostgreSQL then binds and plans three values rather than 3,000 for a
// relay batch of 1,000, the statement text is the same for every batch
// size (one prepared statement), and no batch comes near the protocol's
// 65,535-parameter limit. The offsets follow the batch's order (BIGSERIAL
// is drawn row by row as the ordered rows are inserted), so consumers read
// the messages in the order they were published.
type arraySchema struct{ wsql.DefaultPostgreSQLSchema }

// InsertQuery returns the statement inserting msgs; see arraySchema.
func (s arraySchema) InsertQuery(topic string, msgs message.Messages) (wsql.Query, error) {
	// Strings, not [][]byte: pgx encodes a []string array without
	// reflection, which made a fifth of the relay's own CPU time.
	ids := make([]string, len(msgs))
	payloads := make([]string, len(msgs))
	metadata := make([]string, len(msgs))
	for i, m := range msgs {
		md, err := json.Marshal(m.Metadata)
		if err != nil {
			return wsql.Query{}, fmt.Errorf("marshal metadata of message %s: %w", m.UUID, err)
		}
		ids[i], payloads[i], metadata[i] = m.UUID, string(m.Payload), string(md)
	}
	q := `INSERT INTO ` + s.MessagesTable(topic) + ` (uuid, payload, metadata, transaction_id)
		SELECT id, payload, metadata, pg_current_xact_id()
		FROM unnest($1::text[], $2::json[], $3::json[]) WITH ORDINALITY AS m(id, payload, metadata, n)
		ORDER BY n`
	return wsql.Query{Query: q, Args: []any{ids, payloads, metadata}}, nil
}

// Messages converts integration events to watermill messages: the event id
// as the message UUID, type and user in the metadata.
func Messages(msgs []fanout.Message) []*message.Message {
	out := make([]*message.Message, len(msgs))
	for i, m := range msgs {
		wm := message.NewMessage(m.ID.String(), m.Payload)
		wm.Metadata.Set(MetadataType, m.Type)
		wm.Metadata.Set(MetadataUserID, m.UserID.String())
		out[i] = wm
	}
	return out
}

// txConnector hands database/sql exactly one connection: the caller's pgx
// transaction. Statements run in it, with the caller's context (watermill's
// publisher passes context.Background()).
type txConnector struct {
	ctx context.Context
	tx  pgx.Tx
}

func (c txConnector) Connect(context.Context) (driver.Conn, error) {
	return &txConn{ctx: c.ctx, tx: c.tx}, nil
}
func (c txConnector) Driver() driver.Driver { return txDriver{} }

// txDriver exists because driver.Connector must name one.
type txDriver struct{}

func (txDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("eventsink: a transaction connection opens only through its connector")
}

// errNotInTx refuses what would leave or nest the caller's transaction.
var errNotInTx = errors.New("eventsink: this connection is the relay's transaction; it can neither prepare nor begin")

// txConn is a driver.Conn executing in a pgx transaction.
type txConn struct {
	ctx context.Context
	tx  pgx.Tx
}

func (c *txConn) Prepare(string) (driver.Stmt, error) { return nil, errNotInTx }

// CheckNamedValue passes every argument to pgx as it is: pgx encodes
// slices (arraySchema's arrays), which database/sql's default conversion
// would refuse.
func (c *txConn) CheckNamedValue(*driver.NamedValue) error { return nil }
func (c *txConn) Begin() (driver.Tx, error)                { return nil, errNotInTx }

// Close leaves the transaction alone: it belongs to the caller.
func (c *txConn) Close() error { return nil }

// ExecContext runs query in the transaction.
func (c *txConn) ExecContext(_ context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a.Value
	}
	tag, err := c.tx.Exec(c.ctx, query, vals...)
	if err != nil {
		return nil, err
	}
	return driver.RowsAffected(tag.RowsAffected()), nil
}
