package eventstore

import (
	"testing"

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
