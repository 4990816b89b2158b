package eventstore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
)

// Event is a domain event: a value the registry knows by a stable name.
// Aggregate packages declare their events without importing this package;
// any type with this method set qualifies.
type Event interface {
	// EventType returns the stable, registered name (past tense, e.g. "AccountOpened").
	EventType() string
}

// Upcaster rewrites a stored payload of one schema version into the next one.
type Upcaster func(payload json.RawMessage) (json.RawMessage, error)

type registration struct {
	name      string
	version   int
	goType    reflect.Type
	upcasters map[int]Upcaster // from version -> to version+1
	personal  []personalField  // fields tagged personal:"true" (personal.go)
}

// Registry maps stable event names to Go types and holds the upcasters for
// older schema versions. Decoding goes only through it, never through Go type
// names, so renaming a Go type cannot break stored history.
type Registry struct {
	byName map[string]*registration
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{byName: map[string]*registration{}}
}

// Register adds event type E at the given current schema version. It panics on
// a duplicate name or a name that disagrees with E's EventType, because both
// are programming errors found at start-up.
func Register[E Event](r *Registry, version int) {
	var zero E
	t := reflect.TypeOf(zero)
	if t == nil {
		panic("eventstore: Register needs a concrete event type")
	}
	name := zero.EventType()
	if _, dup := r.byName[name]; dup {
		panic(fmt.Sprintf("eventstore: event type %q registered twice", name))
	}
	if version < 1 {
		panic(fmt.Sprintf("eventstore: event type %q: schema version must be >= 1", name))
	}
	r.byName[name] = &registration{name: name, version: version, goType: t, upcasters: map[int]Upcaster{}, personal: scanPersonal(t)}
}

// AddUpcaster registers up to turn payloads of schema version from of the named
// event into version from+1. It panics if the event is unknown or from is not
// below the current version.
func (r *Registry) AddUpcaster(name string, from int, up Upcaster) {
	reg, ok := r.byName[name]
	if !ok {
		panic(fmt.Sprintf("eventstore: upcaster for unknown event type %q", name))
	}
	if from < 1 || from >= reg.version {
		panic(fmt.Sprintf("eventstore: upcaster for %q from version %d: current version is %d", name, from, reg.version))
	}
	reg.upcasters[from] = up
}

// Names lists the registered event names in order.
func (r *Registry) Names() []string {
	out := make([]string, 0, len(r.byName))
	for n := range r.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Known reports whether name is registered.
func (r *Registry) Known(name string) bool {
	_, ok := r.byName[name]
	return ok
}

// encode returns the stored form of e: its name, current schema version and JSON payload.
func (r *Registry) encode(e Event) (name string, version int, payload []byte, err error) {
	name = e.EventType()
	reg, ok := r.byName[name]
	if !ok {
		return "", 0, nil, fmt.Errorf("encode %q: %w", name, ErrUnknownEventType)
	}
	if reflect.TypeOf(e) != reg.goType {
		return "", 0, nil, fmt.Errorf("encode %q: Go type %T is not the registered %s", name, e, reg.goType)
	}
	// Stored as written (json, not jsonb) and read by people replaying the
	// audit trail: no HTML escaping of <, > and &.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(e); err != nil {
		return "", 0, nil, fmt.Errorf("encode %q: %w", name, err)
	}
	payload = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	// json accepts \u0000 but jsonb does not: one such payload would break
	// every query that reads payloads as jsonb (the audit trail's
	// --connection filter). Refuse it at the door.
	if hasNULEscape(payload) {
		return "", 0, nil, fmt.Errorf("encode %q: payload contains a NUL character", name)
	}
	return name, reg.version, payload, nil
}

// Upcast brings a stored payload of the named event from schemaVersion up to the
// current version, returning the payload unchanged when it is already current.
func (r *Registry) Upcast(name string, schemaVersion int, payload json.RawMessage) (json.RawMessage, error) {
	reg, ok := r.byName[name]
	if !ok {
		return nil, fmt.Errorf("upcast %q: %w", name, ErrUnknownEventType)
	}
	if schemaVersion > reg.version {
		return nil, fmt.Errorf("upcast %q: stored schema version %d is newer than this binary's %d", name, schemaVersion, reg.version)
	}
	for v := schemaVersion; v < reg.version; v++ {
		up, ok := reg.upcasters[v]
		if !ok {
			return nil, fmt.Errorf("upcast %q: no upcaster from schema version %d", name, v)
		}
		var err error
		if payload, err = up(payload); err != nil {
			return nil, fmt.Errorf("upcast %q from version %d: %w", name, v, err)
		}
	}
	return payload, nil
}

// Decode turns a stored event back into its registered Go type, upcasting old
// schema versions first. It never panics on malformed input.
func (r *Registry) Decode(name string, schemaVersion int, payload []byte) (Event, error) {
	p, err := r.Upcast(name, schemaVersion, payload)
	if err != nil {
		return nil, err
	}
	reg := r.byName[name]
	ptr := reflect.New(reg.goType)
	if err := json.Unmarshal(p, ptr.Interface()); err != nil {
		return nil, fmt.Errorf("decode %q: %w", name, err)
	}
	e, ok := ptr.Elem().Interface().(Event)
	if !ok {
		return nil, fmt.Errorf("decode %q: %s is not an Event", name, reg.goType)
	}
	return e, nil
}

// hasNULEscape reports whether JSON text contains the escape \u0000, telling
// it apart from an escaped backslash followed by "u0000" (\\u0000).
func hasNULEscape(doc []byte) bool {
	for i := 0; ; {
		j := bytes.Index(doc[i:], []byte(`\u0000`))
		if j < 0 {
			return false
		}
		at := i + j
		slashes := 0
		for k := at - 1; k >= 0 && doc[k] == '\\'; k-- {
			slashes++
		}
		if slashes%2 == 0 {
			return true
		}
		i = at + 1
	}
}
