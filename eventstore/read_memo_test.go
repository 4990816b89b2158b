package eventstore_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
)

// TestReadAllDecodesEachRecordsOwnMetadata: a read decodes the metadata
// shared by the events of one append once, and still gives every record
// its own: the metadata of each append, and each stream's owner.
func TestReadAllDecodesEachRecordsOwnMetadata(t *testing.T) {
	s := mustStore(t)
	type batch struct {
		md      eventstore.Metadata
		streams []eventstore.StreamEvent
	}
	var batches []batch
	shared := eventstore.Metadata{Actor: "sync", CorrelationID: uuid.NewString(), Command: "sync"}
	other := eventstore.Metadata{Actor: "user:1", CorrelationID: uuid.NewString(), Command: "rename"}
	// The first two appends' documents are the same bytes (the owner has
	// its own column); the third's differ.
	for _, md := range []eventstore.Metadata{shared, shared, other} {
		md.OwnerID = uuid.New()
		actor := md.Actor
		b := batch{md: md}
		for range 3 {
			b.streams = append(b.streams, eventstore.StreamEvent{Stream: newStream(eventstore.StreamTransaction), Event: counterOpened{Name: actor}})
		}
		ctx := eventstore.WithMetadata(context.Background(), b.md)
		require.NoError(t, s.Transact(ctx, func(ctx context.Context, tx *eventstore.Tx) error {
			_, err := tx.AppendMany(ctx, b.streams)
			return err
		}))
		batches = append(batches, b)
	}
	recs := readAllInOrder(t, s, 9)
	for i, r := range recs {
		want := batches[i/3].md
		require.Equal(t, want, r.Metadata, "record %d", i)
		require.Equal(t, want.OwnerID, r.OwnerID)
		require.NoError(t, r.MetadataErr)
	}
}
