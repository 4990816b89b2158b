// Package authtoken owns the bearer credentials Dashtam hands to clients:
// short-lived HS256 access JWTs (github.com/golang-jwt/jwt/v5) that API
// instances verify without state, and opaque random secrets (refresh,
// email-verification and password-reset tokens) that are stored only as
// SHA-256 digests and looked up by them.
package authtoken
