package ratelimit

import "time"

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
	TokenRefreshIP, TokenRefresh, ProviderConnect, Sync, Reads, Writes, PublicReads,
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
