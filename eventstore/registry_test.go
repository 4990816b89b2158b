package eventstore_test

import (
	"encoding/json"
	"testing"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
