package eventstore_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

type renamedV3 struct {
	Alias string `json:"alias"`
	Note  string `json:"note"`
}

func (renamedV3) EventType() string { return "ThingRenamed" }

func upcastRegistry() *eventstore.Registry {
	r := eventstore.NewRegistry()
	eventstore.Register[renamedV3](r, 3)
	// v1 called the field "name"; v2 added "note".
	r.AddUpcaster("ThingRenamed", 1, func(p json.RawMessage) (json.RawMessage, error) {
		var v1 struct {
			Name string `json:"name"`
		}
		if err := json.Unmarshal(p, &v1); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]string{"alias": v1.Name})
	})
	r.AddUpcaster("ThingRenamed", 2, func(p json.RawMessage) (json.RawMessage, error) {
		var v2 map[string]any
		if err := json.Unmarshal(p, &v2); err != nil {
			return nil, err
		}
		v2["note"] = "upcast from v2"
		return json.Marshal(v2)
	})
	return r
}

func TestRegistryUpcastsOldVersions(t *testing.T) {
	r := upcastRegistry()
	e, err := r.Decode("ThingRenamed", 1, []byte(`{"name":"Brokerage"}`))
	require.NoError(t, err)
	assert.Equal(t, renamedV3{Alias: "Brokerage", Note: "upcast from v2"}, e)

	e, err = r.Decode("ThingRenamed", 3, []byte(`{"alias":"x","note":"y"}`))
	require.NoError(t, err)
	assert.Equal(t, renamedV3{Alias: "x", Note: "y"}, e)

	_, err = r.Decode("ThingRenamed", 4, []byte(`{}`))
	assert.Error(t, err, "a version newer than the binary")
	_, err = r.Decode("Nope", 1, []byte(`{}`))
	assert.ErrorIs(t, err, eventstore.ErrUnknownEventType)
	_, err = r.Decode("ThingRenamed", 3, []byte(`{"alias":`))
	assert.Error(t, err)
}

func TestRegistryRefusesProgrammingErrors(t *testing.T) {
	r := eventstore.NewRegistry()
	eventstore.Register[renamedV3](r, 1)
	assert.Panics(t, func() { eventstore.Register[renamedV3](r, 1) }, "duplicate name")
	assert.Panics(t, func() { r.AddUpcaster("ThingRenamed", 1, nil) }, "from must be below current")
	assert.Panics(t, func() { r.AddUpcaster("Unknown", 1, nil) })
	assert.Equal(t, []string{"ThingRenamed"}, r.Names())
}

// FuzzDecode feeds arbitrary stored rows to the registry: decoding may fail
// but must never panic.
func FuzzDecode(f *testing.F) {
	f.Add("ThingRenamed", 1, []byte(`{"name":"a"}`))
	f.Add("ThingRenamed", 2, []byte(`{"alias":1}`))
	f.Add("ThingRenamed", 3, []byte(`[]`))
	f.Add("CounterOpened", 1, []byte(`{"name":"\u0000"}`))
	f.Add("", 0, []byte(``))
	r := upcastRegistry()
	eventstore.Register[counterOpened](r, 1)
	f.Fuzz(func(t *testing.T, name string, version int, payload []byte) {
		_, _ = r.Decode(name, version, payload)
	})
}

type noted struct {
	Note string `json:"note"`
}

func (noted) EventType() string { return "Noted" }

func TestAppendRefusesNULButNotAnEscapedBackslash(t *testing.T) {
	r := eventstore.NewRegistry()
	eventstore.Register[noted](r, 1)
	s, err := eventstore.New(testdb.New(t), r)
	require.NoError(t, err)
	ctx := context.Background()
	_, err = s.Append(ctx, newStream(eventstore.StreamAccount), 0, noted{Note: "a\x00b"})
	assert.ErrorContains(t, err, "NUL")
	st := newStream(eventstore.StreamAccount)
	_, err = s.Append(ctx, st, 0, noted{Note: `literal \u0000 text`})
	require.NoError(t, err, "a backslash followed by u0000 is text, not NUL")
	// And the stored payload reads as jsonb, as the audit filters need.
	var note string
	require.NoError(t, s.Pool().QueryRow(ctx, `SELECT payload::jsonb->>'note' FROM events WHERE stream_id = $1`, st.ID).Scan(&note))
	assert.Equal(t, `literal \u0000 text`, note)
}
