// Package sandbox is Dashtam's built-in fake institution and its adapter of
// commands.Provider. The institution (Institution) is an http.Handler that
// the server mounts under Prefix: an OAuth 2.0 authorize page with PKCE, a
// token and a revoke endpoint, and data endpoints in the sandbox's own JSON
// dialect. Its data is a pure function of a per-user seed, the persona
// chosen on the authorize page and the current time, so two calls at the
// same instant agree and later calls show the change a real bank shows.
// Tokens are HMAC-signed and self-contained, so a restart with the same key
// keeps every connection working. The adapter (Provider) talks to the
// institution over HTTP with golang.org/x/oauth2 exactly as a real
// provider's adapter talks to its bank. docs/sandbox.md describes both.
package sandbox
