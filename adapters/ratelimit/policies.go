package ratelimit

import "time"

// The policies of issue 3. A rate of N per minute with burst N refills one
// token every minute/N, so a client that spent its burst regains the full
// allowance within a minute. Which key each is charged under (client IP,
// verified user, user and connection) is the web layer's choice.
var (
	// Login allows 5 login attempts per minute per client IP.
	Login = Policy{Name: "login", Burst: 5, Per: time.Minute / 5}
	// Register allows 3 registrations per minute per client IP.
	Register = Policy{Name: "register", Burst: 3, Per: time.Minute / 3}
	// PasswordReset allows 3 password-reset requests per minute per client IP.
	PasswordReset = Policy{Name: "password_reset", Burst: 3, Per: time.Minute / 3}
	// VerificationResend allows 3 requests for a new verification mail per minute per client IP.
	VerificationResend = Policy{Name: "verification_resend", Burst: 3, Per: time.Minute / 3}
	// TokenRefresh allows 10 refresh-token exchanges per minute per user.
	TokenRefresh = Policy{Name: "token_refresh", Burst: 10, Per: time.Minute / 10}
	// ProviderConnect allows 5 new provider connections per minute per user.
	ProviderConnect = Policy{Name: "provider_connect", Burst: 5, Per: time.Minute / 5}
	// Sync allows a burst of 10 syncs, then 5 per minute, per user and connection.
	Sync = Policy{Name: "sync", Burst: 10, Per: time.Minute / 5}
	// Reads allows 100 reads (GET, HEAD) per minute per user.
	Reads = Policy{Name: "reads", Burst: 100, Per: time.Minute / 100}
	// Writes allows 50 writes (any other method) per minute per user.
	Writes = Policy{Name: "writes", Burst: 50, Per: time.Minute / 50}
)

// All lists every named policy, for sweeping (the longest FullAfter bounds
// how old a bucket may get) and for validating the set at start-up.
var All = []Policy{Login, Register, PasswordReset, VerificationResend, TokenRefresh, ProviderConnect, Sync, Reads, Writes}
