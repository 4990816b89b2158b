package sandbox_test

import (
	"testing"

	"github.com/dashtam/dashtam/adapters/providers/providertest"
)

// TestContract runs the suite every provider adapter passes, against the
// sandbox institution itself served over real HTTP.
func TestContract(t *testing.T) {
	providertest.Run(t, func(t *testing.T) providertest.Case {
		e := newEnv(t, envOptions{})
		return providertest.Case{Provider: e.provider, Fake: e.fake}
	})
}
