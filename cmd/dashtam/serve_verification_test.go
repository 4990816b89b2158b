package main

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/mail/mailtest"
	"github.com/dashtam/dashtam/commands/identity"
)

// mailsTo returns the messages to addr in the file:// outbox dir, oldest first.
func mailsTo(tb testing.TB, dir, addr string) []mailtest.Parsed {
	tb.Helper()
	var out []mailtest.Parsed
	for _, m := range mailtest.ReadOutbox(tb, dir) {
		if strings.Contains(m.To, addr) {
			out = append(out, m)
		}
	}
	return out
}

// TestResendVerificationEndToEnd: against the real server, database and
// file outbox, a user whose verification link expired asks for a new one,
// reads it from the outbox, verifies and logs in; requests for an unknown
// and for a verified email get the same answer and no mail. It has a
// server of its own because the journey test spends the per-IP
// registration allowance.
func TestResendVerificationEndToEnd(t *testing.T) {
	srv := startIdentityServer(t)
	c, mailDir := srv.client, srv.mailDir
	ctx := context.Background()
	const password = "a long and unusual passphrase"

	dave := "dave@example.com"
	c.Do("POST", "/api/v1/users", map[string]string{"email": dave, "password": password}, "").Want(t, 201, "register dave")
	daveLink := mustMailToken(t, mailDir, dave, identity.VerifyEmailPath)
	c.Do("POST", "/api/v1/email-verifications", map[string]string{"token": daveLink}, "").Want(t, 204, "dave verifies")

	carol := "carol@example.com"
	carolID := c.Do("POST", "/api/v1/users", map[string]string{"email": carol, "password": password}, "").Want(t, 201, "register carol").Str("id")
	expired := mustMailToken(t, mailDir, carol, identity.VerifyEmailPath)
	// The server's clock is the wall clock, so the link's stored expiry is
	// moved back instead; a token row past its expiry is refused before
	// anything else is looked at, exactly as 24 hours later.
	_, err := srv.pool.Exec(ctx, `UPDATE secret_tokens SET expires_at = now() - interval '1 second'
		WHERE kind = 'verify' AND user_id = $1`, carolID)
	require.NoError(t, err)
	c.Do("POST", "/api/v1/email-verifications", map[string]string{"token": expired}, "").Want(t, 400, "carol's expired link")
	p := c.Do("POST", "/api/v1/sessions", map[string]string{"email": carol, "password": password}, "").Want(t, 403, "carol before verifying")
	assert.Equal(t, "email_not_verified", p.Str("code"))

	// Carol, an unknown email and the verified dave are answered alike.
	var answers []reply
	for _, email := range []string{carol, "nobody@example.com", dave} {
		r := c.Do("POST", "/api/v1/email-verification-tokens", map[string]string{"email": email}, "").Want(t, 202, "resend to "+email)
		assert.Empty(t, r.Raw, "resend to %s", email)
		assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))
		assert.NotEmpty(t, r.Header.Get("RateLimit-Limit"), "the route is rate-limited")
		answers = append(answers, r)
	}
	for _, r := range answers[1:] {
		assert.Equal(t, answers[0].Header.Get("Content-Length"), r.Header.Get("Content-Length"))
		assert.Equal(t, answers[0].Header.Get("Content-Type"), r.Header.Get("Content-Type"))
	}
	p = c.Do("POST", "/api/v1/email-verification-tokens", map[string]string{"email": carol}, "").Want(t, 429, "a fourth request from one IP within the minute")
	assert.Equal(t, "rate_limited", p.Str("code"))

	srv.drainJobs(t) // the mail is sent by a job after the answer
	resent := mustMailToken(t, mailDir, carol, identity.VerifyEmailPath)
	require.NotEqual(t, expired, resent, "a new link")
	assert.Len(t, mailsTo(t, mailDir, carol), 2, "registration's mail and one resend")
	assert.Len(t, mailsTo(t, mailDir, dave), 1, "a verified user is mailed nothing")
	assert.Empty(t, mailsTo(t, mailDir, "nobody@example.com"), "an unknown email is mailed nothing")

	c.Do("POST", "/api/v1/email-verifications", map[string]string{"token": resent}, "").Want(t, 204, "carol verifies with the new link")
	login := c.Do("POST", "/api/v1/sessions", map[string]string{"email": carol, "password": password}, "").Want(t, 201, "carol logs in")
	me := c.Do("GET", "/api/v1/users/me", nil, login.Str("access_token")).Want(t, 200, "carol's profile")
	assert.Equal(t, true, me.Body["email_verified"])

	require.NoError(t, srv.stop())
	for _, secret := range []string{password, daveLink, expired, resent, login.Str("access_token"), login.Str("refresh_token")} {
		assert.NotContains(t, srv.logs.String(), secret, "no secret in the logs")
	}
	assert.NotContains(t, srv.logs.String(), "token=", "no link in the logs")
}
