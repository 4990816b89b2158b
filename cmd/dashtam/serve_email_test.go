package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestLookAlikeEmailsAreOneAccountEndToEnd: through the real server and
// database, a fullwidth spelling of a registered address is the same
// mailbox (409, not a second account), and an address at an IP literal is
// refused as unprocessable with a field error on email.
func TestLookAlikeEmailsAreOneAccountEndToEnd(t *testing.T) {
	c := startIdentityServer(t).client
	const password = "a long and unusual passphrase"
	u := c.Do("POST", "/api/v1/users", map[string]string{"email": "you@example.com", "password": password}, "").Want(t, 201, "register")
	assert.Equal(t, "you@example.com", u.Str("email"))

	p := c.Do("POST", "/api/v1/users", map[string]string{"email": "ＹＯＵ@example.com", "password": password}, "").Want(t, 409, "fullwidth spelling of a taken address")
	assert.Equal(t, "conflict", p.Str("code"))

	p = c.Do("POST", "/api/v1/users", map[string]string{"email": "a@[127.0.0.1]", "password": password}, "").Want(t, 422, "IP-literal domain")
	assert.Equal(t, "unprocessable", p.Str("code"))
	assert.Equal(t, []any{map[string]any{"field": "email", "message": "must be a single valid email address"}}, p.Body["errors"])
}
