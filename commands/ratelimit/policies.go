// Package ratelimit declares the rate-limit vocabulary of the API: the
// token-bucket Policy, the Decision a check returns, and the named
// policies every operation of web/openapi.yaml declares
// (x-dashtam-rate-limit). The stores that keep the buckets are adapters
// (adapters/ratelimit: PostgreSQL shared across instances, and memory).
package ratelimit

import (
	"fmt"
	"strings"
	"time"
)

// Policy is one named token bucket shape: Burst tokens at most, one more
// every Per.
type Policy struct {
	// Name namespaces the policy's buckets, so one key (an IP, a user id)
	// has an independent bucket per policy; it must not change once deployed.
	Name string
	// Burst is the bucket's capacity: how many requests may arrive at once.
	Burst int
	// Per is the refill interval of one token; the sustained rate is 1/Per.
	Per time.Duration
	// Local keeps the policy's buckets in each server's memory (Memory)
	// instead of the shared database: for routes cheaper to answer than a
	// database round trip, where a shared bucket would cost more than the
	// request it guards. Each instance then grants the allowance on its own.
	Local bool
}

// Validate reports why p cannot describe a bucket, or nil.
func (p Policy) Validate() error {
	switch {
	case p.Name == "" || strings.ContainsRune(p.Name, ':'):
		return fmt.Errorf("ratelimit: policy name %q must be non-empty and free of ':'", p.Name)
	case p.Burst < 1:
		return fmt.Errorf("ratelimit: policy %s: burst %d is below 1", p.Name, p.Burst)
	case p.Per <= 0:
		return fmt.Errorf("ratelimit: policy %s: refill interval %s is not positive", p.Name, p.Per)
	}
	return nil
}

// FullAfter is how long an untouched bucket of p takes to refill from empty;
// a bucket idle that long is the same as no bucket, which is what Sweep relies on.
func (p Policy) FullAfter() time.Duration { return time.Duration(p.Burst) * p.Per }

// Decision is the outcome of one check and what to tell the client about it.
type Decision struct {
	// Allowed says whether the request may proceed; it took a token if so.
	Allowed bool
	// Limit is the policy's burst, the most requests a client may send at once.
	Limit int
	// Remaining is the whole tokens left after this check.
	Remaining int
	// Reset is the time until the bucket is full again if no request comes.
	Reset time.Duration
	// RetryAfter is, for a denied check, the time until one token is back;
	// zero when allowed.
	RetryAfter time.Duration
}

// The named policies. A rate of N per minute with burst N refills one
// token every minute/N, so a client that spent its burst regains the full
// allowance within a minute. Which key each is charged under (client IP,
// verified user, user and connection) is declared per operation in
// web/openapi.yaml (x-dashtam-rate-limit), which names these policies.
var (
	// Login allows 5 login attempts per minute per client IP.
	Login = Policy{Name: "login", Burst: 5, Per: time.Minute / 5}
	// Register allows 3 registrations per minute per client IP.
	Register = Policy{Name: "register", Burst: 3, Per: time.Minute / 3}
	// PasswordReset allows 3 password-reset requests per minute per client IP.
	PasswordReset = Policy{Name: "password_reset", Burst: 3, Per: time.Minute / 3}
	// VerificationResend allows 3 requests for a new verification mail per minute per client IP.
	VerificationResend = Policy{Name: "verification_resend", Burst: 3, Per: time.Minute / 3}
	// EmailVerification allows 10 attempts to spend a mailed verification
	// token per minute per client IP.
	EmailVerification = Policy{Name: "email_verification", Burst: 10, Per: time.Minute / 10}
	// PasswordResetCompletion allows 5 attempts to set a password with a
	// reset token per minute per client IP; each one hashes the new password.
	PasswordResetCompletion = Policy{Name: "password_reset_completion", Burst: 5, Per: time.Minute / 5}
	// TokenRefreshIP allows 30 refresh attempts per minute per client IP,
	// charged before the token is even looked up; TokenRefresh then limits
	// each user whose token it is.
	TokenRefreshIP = Policy{Name: "token_refresh_ip", Burst: 30, Per: time.Minute / 30}
	// TokenRefresh allows 10 refresh-token exchanges per minute per user.
	TokenRefresh = Policy{Name: "token_refresh", Burst: 10, Per: time.Minute / 10}
	// ProviderConnect allows 5 new provider connections per minute per user.
	ProviderConnect = Policy{Name: "provider_connect", Burst: 5, Per: time.Minute / 5}
	// OAuthCallback allows 20 provider callbacks per minute per client IP:
	// each one may exchange a code with the provider, and a person
	// connects a handful of accounts at most.
	OAuthCallback = Policy{Name: "oauth_callback", Burst: 20, Per: time.Minute / 20}
	// Sync allows a burst of 10 syncs, then 5 per minute, per user and connection.
	Sync = Policy{Name: "sync", Burst: 10, Per: time.Minute / 5}
	// Reads allows 100 reads (GET, HEAD) per minute per user.
	Reads = Policy{Name: "reads", Burst: 100, Per: time.Minute / 100}
	// Writes allows 50 writes (any other method) per minute per user.
	Writes = Policy{Name: "writes", Burst: 50, Per: time.Minute / 50}
	// PublicReads allows a burst of 120 cheap anonymous reads (probes,
	// metrics, the documentation, the provider catalog, the mail pages'
	// forms), then 2 a second, per client IP. It is Local: a database
	// round trip would cost more than the requests it guards.
	PublicReads = Policy{Name: "public_reads", Burst: 120, Per: time.Second / 2, Local: true}
)

// All lists every named policy, for sweeping (the longest FullAfter bounds
// how old a bucket may get) and for validating the set at start-up.
var All = []Policy{
	Login, Register, PasswordReset, VerificationResend, EmailVerification, PasswordResetCompletion,
	TokenRefreshIP, TokenRefresh, ProviderConnect, OAuthCallback, Sync, Reads, Writes, PublicReads,
}

// ByName finds a policy of All by its name, for the web layer's
// declarations, which name policies rather than hold them.
func ByName(name string) (Policy, bool) {
	for _, p := range All {
		if p.Name == name {
			return p, true
		}
	}
	return Policy{}, false
}
