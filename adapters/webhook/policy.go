package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// maxURLLength bounds an endpoint URL.
const maxURLLength = 2048

// Policy implements commands/webhooks.URLPolicy.
type Policy struct {
	// AllowPrivate accepts private, loopback and link-local addresses and
	// plain http (DASHTAM_WEBHOOK_ALLOW_PRIVATE, development and tests).
	AllowPrivate bool
	// Lookup resolves a host name; nil means the system resolver. Tests
	// give names the addresses they need.
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Errors of Check; their text is safe to show (it never repeats the URL).
var (
	errScheme   = errors.New("the URL must be https")
	errShape    = errors.New("the URL must be absolute, with a host and no user information")
	errTooLong  = errors.New("the URL is too long")
	errResolve  = errors.New("the host does not resolve")
	errAddress  = errors.New("the host resolves to an address webhooks may not reach (private, loopback, link-local or reserved)")
	errNoAnswer = errors.New("the host has no address")
)

// Check returns nil when raw is an acceptable endpoint URL; see
// commands/webhooks.URLPolicy.
func (p Policy) Check(ctx context.Context, raw string) error {
	if len(raw) > maxURLLength {
		return errTooLong
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.User != nil || u.Opaque != "" {
		return errShape
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowPrivate:
	default:
		return errScheme
	}
	if p.AllowPrivate {
		return nil
	}
	host := u.Hostname()
	if a, err := netip.ParseAddr(host); err == nil {
		if Blocked(a) {
			return errAddress
		}
		return nil
	}
	if strings.HasSuffix(strings.ToLower(host), ".localhost") || strings.EqualFold(host, "localhost") {
		return errAddress
	}
	lookup := p.Lookup
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	addrs, err := lookup(ctx, host)
	if err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) {
			return errResolve
		}
		return fmt.Errorf("look the host up: %w", err)
	}
	if len(addrs) == 0 {
		return errNoAnswer
	}
	for _, a := range addrs {
		if Blocked(a) {
			return errAddress
		}
	}
	return nil
}
