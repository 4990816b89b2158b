package webhooks

import (
	"context"
	"time"
)

// The error classes of an attempt that got no usable answer, as Sender
// reports them and deliveries show them.
const (
	// ErrorTimeout: no complete answer within the delivery timeout.
	ErrorTimeout = "timeout"
	// ErrorBlockedAddress: the host resolved to an address deliveries may
	// not reach (private, loopback, link-local, ...), checked at send time.
	ErrorBlockedAddress = "blocked_address"
	// ErrorDNS: the host did not resolve.
	ErrorDNS = "dns"
	// ErrorConnection: the connection was refused or reset.
	ErrorConnection = "connection"
	// ErrorTLS: the TLS handshake failed.
	ErrorTLS = "tls"
	// ErrorRedirect: the receiver answered a redirect, which is not followed.
	ErrorRedirect = "redirect"
	// ErrorInvalidURL: the stored URL no longer passes validation.
	ErrorInvalidURL = "invalid_url"
)

// Send is one signed delivery attempt.
type Send struct {
	URL string
	// ID is the webhook-id header: the integration event's id, the same on
	// every attempt.
	ID string
	// Timestamp is the webhook-timestamp header: when this attempt is made.
	Timestamp time.Time
	// Body is sent as is and signed as is.
	Body []byte
	// Secrets are the raw signing keys, newest first: one signature each
	// goes into webhook-signature, so receivers verify during a rotation
	// with either secret.
	Secrets [][]byte
}

// Result is what an attempt got.
type Result struct {
	// StatusCode is the receiver's answer; zero when none came.
	StatusCode int
	// RetryAfter is the receiver's Retry-After, zero when absent.
	RetryAfter time.Duration
	// Error is one of the Error* classes when no usable answer came.
	Error string
	// Latency is how long the attempt took.
	Latency time.Duration
}

// Succeeded reports a 2xx answer.
func (r Result) Succeeded() bool { return r.Error == "" && r.StatusCode >= 200 && r.StatusCode < 300 }

// Sender signs and sends deliveries over HTTP; adapters/webhook
// implements it with a client that dials only addresses the URL policy
// allows (checked on the resolved address, against DNS rebinding), follows
// no redirect and gives up after the delivery timeout.
type Sender interface {
	// Send makes one attempt. It never returns an error: every failure is
	// an attempt's result, classified.
	Send(ctx context.Context, s Send) Result
}

// URLPolicy decides which URLs endpoints may have; adapters/webhook
// implements it.
type URLPolicy interface {
	// Check returns nil when raw is an acceptable endpoint URL: https (or
	// http when private addresses are allowed for development), no user
	// information, and a host that resolves only to addresses deliveries
	// may reach. The error's text says why, without echoing the URL.
	Check(ctx context.Context, raw string) error
}
