package eventstore

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCanonicalJSON(t *testing.T) {
	for in, want := range map[string]string{
		`{"b": 1, "a": [1.50, 1e2, -0, "x<&>"]}`: `{"a":[1.5,100,0,"x<&>"],"b":1}`,
		` "é\u00e9" `:                            `"éé"`,
		`{"z":{"y":null,"x":true}}`:              `{"z":{"x":true,"y":null}}`,
	} {
		got, err := canonicalJSON([]byte(in))
		require.NoError(t, err, in)
		assert.Equal(t, want, string(got), in)
	}
	for _, bad := range []string{``, `{`, `{} {}`, `[1,]`} {
		_, err := canonicalJSON([]byte(bad))
		assert.Error(t, err, bad)
	}
}

// FuzzCanonicalJSON checks that canonicalisation never panics and is a fixed
// point: the canonical form of a canonical document is itself.
func FuzzCanonicalJSON(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `[1.0,2e3,"\u2028"]`, `"x"`, `{"a":{"b":[]}}`, `1e999999999`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		c, err := canonicalJSON(doc)
		if err != nil {
			return
		}
		c2, err := canonicalJSON(c)
		if err != nil {
			t.Fatalf("canonical form %q does not parse: %v", c, err)
		}
		if string(c) != string(c2) {
			t.Fatalf("not a fixed point: %q -> %q", c, c2)
		}
	})
}

// TestDigestVersions pins the version 1 layout (rows written before migration
// 00008 must verify forever) and checks that version 2 tells apart what
// version 1 could not.
func TestDigestVersions(t *testing.T) {
	base := digestInput{
		digestVersion: digestV1, streamType: "account", streamID: uuid.MustParse("0190f3a4-0000-7000-8000-000000000001"),
		version: 7, eventID: uuid.MustParse("0190f3a4-0000-7000-8000-000000000002"), eventType: "CounterIncremented",
		schemaVersion: 1, recordedAt: time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC),
		payload: []byte(`{"command_id":"c1","amount":"1.50"}`), metadata: []byte(`{"actor":"system"}`),
	}
	// Computed by the store as it was before digest version 2.
	assert.Equal(t, "6d10dcdc33e17c95aff7d7bdb2cae1a7e700ed0eb18a8bd129b88b4ef2ead19b", hex.EncodeToString(base.digest()))
	zeroOwner := base
	zeroOwner.ownerSet = true
	assert.Equal(t, base.digest(), zeroOwner.digest(), "version 1: NULL and the zero UUID hash alike")

	v2 := base
	v2.digestVersion = digestV2
	v2zero := v2
	v2zero.ownerSet = true
	v3 := v2
	v3.digestVersion = 3
	digests := [][]byte{base.digest(), v2.digest(), v2zero.digest(), v3.digest()}
	for i := range digests {
		for j := range i {
			assert.False(t, bytes.Equal(digests[i], digests[j]), "digests %d and %d collide", i, j)
		}
	}
}
