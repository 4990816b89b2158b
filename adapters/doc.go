// Package adapters holds the implementations of the ports declared in package
// commands: provider clients (providers/schwab, providers/sandbox) speaking each
// provider's own HTTP dialect through golang.org/x/oauth2, the AES-256-GCM
// vault for provider tokens, and mail (SMTP and a file outbox). Each is
// tested against a real server over HTTP or SMTP, never against a mock of its
// own interface.
package adapters
