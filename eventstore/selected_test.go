package eventstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
)

// TestReadSelected: a lean read returns every event's envelope without its
// payload, metadata or hashes; a filtered one only the events of its stream
// types, and the position it scanned past is the last returned after a full
// read and the newest event behind the horizon after a short one, however
// many events of other types follow the last match.
func TestReadSelected(t *testing.T) {
	s := mustStore(t)
	ctx := context.Background()
	acct, conn := newStream(eventstore.StreamAccount), newStream(eventstore.StreamConnection)
	_, err := s.Append(ctx, acct, 0, counterOpened{}, counterIncremented{}, counterIncremented{})
	require.NoError(t, err)
	_, err = s.Append(ctx, conn, 0, counterOpened{}, counterIncremented{})
	require.NoError(t, err)
	_, err = s.Append(ctx, acct, 3, counterIncremented{}, counterIncremented{})
	require.NoError(t, err)

	var all []eventstore.Record
	require.Eventually(t, func() bool { // the horizon is cluster-wide
		all, err = s.ReadAll(ctx, eventstore.Position{}, 100)
		require.NoError(t, err)
		return len(all) == 7
	}, time.Minute, 5*time.Millisecond)
	head := all[6].Position()

	lean, scanned, err := eventstore.ReadSelected(ctx, s.Pool(), eventstore.Position{}, 100, eventstore.Selection{Lean: true}, nil)
	require.NoError(t, err)
	require.Len(t, lean, 7)
	require.Equal(t, head, scanned)
	for i, r := range lean {
		full := all[i]
		require.Nil(t, r.Payload)
		require.Nil(t, r.Hash)
		require.Equal(t, full.Position(), r.Position())
		require.Equal(t, full.Stream, r.Stream)
		require.Equal(t, full.Version, r.Version)
		require.Equal(t, full.EventID, r.EventID)
		require.Equal(t, full.EventType, r.EventType)
		require.Equal(t, full.OwnerID, r.OwnerID)
		require.Equal(t, full.OwnerSet(), r.OwnerSet())
		require.True(t, full.RecordedAt.Equal(r.RecordedAt))
	}

	only := eventstore.Selection{StreamTypes: []eventstore.StreamType{eventstore.StreamConnection}}
	got, scanned, err := eventstore.ReadSelected(ctx, s.Pool(), eventstore.Position{}, 100, only, nil)
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, all[3].EventID, got[0].EventID)
	require.Equal(t, all[4].EventID, got[1].EventID)
	require.Equal(t, all[3].Payload, got[0].Payload, "a filtered read that is not lean reads the payload")
	require.Equal(t, head, scanned, "a short read scans to the newest event behind the horizon")

	got, scanned, err = eventstore.ReadSelected(ctx, s.Pool(), eventstore.Position{}, 1, only, nil)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, all[3].Position(), scanned, "a full read scans to its last event")

	got, scanned, err = eventstore.ReadSelected(ctx, s.Pool(), head, 100, only, nil)
	require.NoError(t, err)
	require.Empty(t, got)
	require.Equal(t, head, scanned, "nothing after the head: the position stays")
}
