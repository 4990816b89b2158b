package eventstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"github.com/google/uuid"
)

// PersonalData seals and opens the personal data events carry (an email,
// an IP address, a user agent, a name a user typed), each under a data key
// of the person it belongs to, kept outside the log. Destroying that key
// erases the data from the log without changing a byte of it: the chain
// hashes the ciphertext, so every chain and checkpoint still verifies
// (crypto-shredding; see docs/audit.md).
type PersonalData interface {
	// Seal encrypts value for owner, bound to where it is stored (an event
	// type and field); ErrErased when owner was erased.
	Seal(ctx context.Context, owner uuid.UUID, where, value string) (string, error)
	// Open decrypts a value Seal returned; ErrErased when owner's key was destroyed.
	Open(ctx context.Context, owner uuid.UUID, where, sealed string) (string, error)
	// Erased reports whether owner was erased, so that personal data stored
	// in plaintext before sealing existed is hidden too.
	Erased(ctx context.Context, owner uuid.UUID) (bool, error)
}

// ErrErased means the person the data belongs to was erased: their key is gone.
var ErrErased = errors.New("personal data erased")

// ErasedValue stands in, wherever events are shown or folded, for personal
// data whose owner was erased.
const ErasedValue = "[erased]"

// SealedPrefix starts every sealed value in the stored JSON.
const SealedPrefix = "pd1:"

// personalTag marks a string field of an event as personal data:
// `personal:"true"`. Registration records the tagged fields.
const personalTag = "personal"

// WithPersonalData makes the store seal the personal fields of events and
// the IP address and user agent of their metadata under the stream owner's
// key when appending, and open them when decoding and revealing.
func WithPersonalData(pd PersonalData) Option { return func(s *Store) { s.personal = pd } }

// personalMetadata are the metadata fields that are personal data.
var personalMetadata = []string{"ip", "user_agent"}

// personalFields lists the personal string fields of an event type, by
// index in the struct and JSON name.
type personalField struct {
	index int
	json  string
}

// scanPersonal finds the fields of t tagged personal; a tag on anything
// but a top-level string field is a programming error.
func scanPersonal(t reflect.Type) []personalField {
	if t.Kind() != reflect.Struct {
		return nil
	}
	var out []personalField
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Tag.Get(personalTag) != "true" {
			continue
		}
		if f.Type.Kind() != reflect.String {
			panic(fmt.Sprintf("eventstore: %s.%s: only string fields can be personal", t.Name(), f.Name))
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		out = append(out, personalField{index: i, json: name})
	}
	return out
}

// PersonalFields lists the JSON names of the personal fields of the named
// event type, for tests and docs.
func (r *Registry) PersonalFields(name string) []string {
	reg, ok := r.byName[name]
	if !ok {
		return nil
	}
	out := make([]string, len(reg.personal))
	for i, f := range reg.personal {
		out[i] = f.json
	}
	return out
}

// encodeEvent is the registry's encode with the personal fields of e sealed
// for owner first. Without a PersonalData or an owner, nothing is sealed.
func (s *Store) encodeEvent(ctx context.Context, e Event, owner uuid.UUID) (string, int, []byte, error) {
	reg, ok := s.registry.byName[e.EventType()]
	if s.personal == nil || owner == uuid.Nil || !ok || len(reg.personal) == 0 || reflect.TypeOf(e) != reg.goType {
		return s.registry.encode(e)
	}
	v := reflect.New(reg.goType).Elem()
	v.Set(reflect.ValueOf(e))
	for _, f := range reg.personal {
		fv := v.Field(f.index)
		if fv.String() == "" {
			continue // nothing to hide; keeps absent values absent
		}
		sealed, err := s.personal.Seal(ctx, owner, reg.name+"."+f.json, fv.String())
		if errors.Is(err, ErrErased) {
			sealed = ErasedValue // written after the erasure: never stored
		} else if err != nil {
			return "", 0, nil, fmt.Errorf("seal %s.%s: %w", reg.name, f.json, err)
		}
		fv.SetString(sealed)
	}
	return s.registry.encode(v.Interface().(Event))
}

// sealMetadata seals md's personal fields for its owner.
func (s *Store) sealMetadata(ctx context.Context, md Metadata) (Metadata, error) {
	if s.personal == nil || md.OwnerID == uuid.Nil {
		return md, nil
	}
	for _, f := range []struct {
		name string
		v    *string
	}{{"ip", &md.IP}, {"user_agent", &md.UserAgent}} {
		if *f.v == "" {
			continue
		}
		sealed, err := s.personal.Seal(ctx, md.OwnerID, "metadata."+f.name, *f.v)
		if errors.Is(err, ErrErased) {
			sealed = ErasedValue
		} else if err != nil {
			return md, fmt.Errorf("seal metadata %s: %w", f.name, err)
		}
		*f.v = sealed
	}
	return md, nil
}

// openEvent replaces the sealed personal fields of a decoded event with
// their plaintext, or with ErasedValue once the owner was erased; plaintext
// stored before sealing existed is replaced too when the owner was erased.
func (s *Store) openEvent(ctx context.Context, e Event, owner uuid.UUID) (Event, error) {
	reg, ok := s.registry.byName[e.EventType()]
	if !ok || len(reg.personal) == 0 {
		return e, nil
	}
	v := reflect.New(reg.goType).Elem()
	v.Set(reflect.ValueOf(e))
	changed := false
	for _, f := range reg.personal {
		fv := v.Field(f.index)
		plain, err := s.openValue(ctx, owner, reg.name+"."+f.json, fv.String())
		if err != nil {
			return nil, err
		}
		if plain != fv.String() {
			fv.SetString(plain)
			changed = true
		}
	}
	if !changed {
		return e, nil
	}
	return v.Interface().(Event), nil
}

// openValue opens one stored value.
func (s *Store) openValue(ctx context.Context, owner uuid.UUID, where, stored string) (string, error) {
	if stored == "" || stored == ErasedValue {
		return stored, nil
	}
	if !strings.HasPrefix(stored, SealedPrefix) {
		// Written in plaintext before sealing existed (or without an owner).
		if s.personal == nil || owner == uuid.Nil {
			return stored, nil
		}
		erased, err := s.personal.Erased(ctx, owner)
		if err != nil {
			return "", err
		}
		if erased {
			return ErasedValue, nil
		}
		return stored, nil
	}
	if s.personal == nil {
		return stored, nil // no keys here: shown sealed, as stored
	}
	plain, err := s.personal.Open(ctx, owner, where, stored)
	if errors.Is(err, ErrErased) {
		return ErasedValue, nil
	}
	if err != nil {
		return "", fmt.Errorf("open %s: %w", where, err)
	}
	return plain, nil
}

// Reveal returns the record's payload and metadata as auditors see them:
// the personal fields opened, or ErasedValue once their owner was erased.
// The stored bytes (what the chain hashes) are in r.Payload and
// r.RawMetadata.
func (s *Store) Reveal(ctx context.Context, r Record) (payload, metadata json.RawMessage, err error) {
	personal := map[string]bool{}
	if reg, ok := s.registry.byName[r.EventType]; ok {
		for _, f := range reg.personal {
			personal[f.json] = true
		}
	}
	if payload, err = s.revealObject(ctx, r.OwnerID, r.EventType, r.Payload, personal); err != nil {
		return nil, nil, err
	}
	meta := map[string]bool{}
	for _, k := range personalMetadata {
		meta[k] = true
	}
	if metadata, err = s.revealObject(ctx, r.OwnerID, "metadata", r.RawMetadata, meta); err != nil {
		return nil, nil, err
	}
	return payload, metadata, nil
}

// revealObject opens the top-level string members of a stored JSON object
// that are sealed, or personal by their type's registration.
func (s *Store) revealObject(ctx context.Context, owner uuid.UUID, prefix string, doc json.RawMessage, personal map[string]bool) (json.RawMessage, error) {
	if !bytes.Contains(doc, []byte(SealedPrefix)) && len(personal) == 0 {
		return doc, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		return doc, nil // not an object: shown as stored
	}
	changed := false
	for k, raw := range m {
		var str string
		if json.Unmarshal(raw, &str) != nil {
			continue
		}
		if !personal[k] && !strings.HasPrefix(str, SealedPrefix) {
			continue
		}
		plain, err := s.openValue(ctx, owner, prefix+"."+k, str)
		if err != nil {
			return nil, err
		}
		if plain != str {
			b, _ := json.Marshal(plain) // a string always encodes
			m[k], changed = b, true
		}
	}
	if !changed {
		return doc, nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(m); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
