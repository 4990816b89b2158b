package schwab_test

import (
	"testing"

	"github.com/dashtam/dashtam/adapters/providers/providertest"
	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
)

// TestContract runs the provider contract against the fake, once with the
// refresh token kept and once rotated on refresh.
func TestContract(t *testing.T) {
	for _, rotate := range []bool{false, true} {
		name := "refresh token kept"
		if rotate {
			name = "refresh token rotated"
		}
		t.Run(name, func(t *testing.T) {
			providertest.Run(t, func(t *testing.T) providertest.Case {
				f := schwabtest.New(t, schwabtest.Options{RotateRefresh: rotate})
				return providertest.Case{Provider: mustNew(t, f, nil), Fake: f}
			})
		})
	}
}
