package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dashtam/dashtam/commands/webhooks"
)

// DefaultTimeout bounds one attempt, from dialling to the end of the
// answer's headers: the Standard Webhooks specification recommends 15 to
// 30 seconds, and a receiver should acknowledge at once and work later.
const DefaultTimeout = 15 * time.Second

// maxResponseBody is how much of an answer is read (and thrown away) so
// that the connection can be reused; nothing of it is stored.
const maxResponseBody = 64 << 10

// userAgent names the sender to receivers.
const userAgent = "Dashtam-Webhooks/1"

// SenderConfig configures a Sender.
type SenderConfig struct {
	// AllowPrivate lets deliveries reach private, loopback and link-local
	// addresses (DASHTAM_WEBHOOK_ALLOW_PRIVATE).
	AllowPrivate bool
	// Timeout bounds an attempt; zero means DefaultTimeout.
	Timeout time.Duration
	// RootCAs replaces the system's roots (tests trust their own server).
	RootCAs *x509.CertPool
	// Now stamps nothing; latency is measured with it (tests pin it).
	Now func() time.Time
}

// Sender implements commands/webhooks.Sender.
type Sender struct {
	client *http.Client
	now    func() time.Time
}

var _ webhooks.Sender = (*Sender)(nil)

// errBlocked is returned by the dialer for an address deliveries may not reach.
var errBlocked = errors.New("address not allowed for webhooks")

// NewSender returns a sender whose client dials only allowed addresses,
// ignores proxy settings (a proxy would dial for it, unchecked), follows
// no redirect and times out after cfg.Timeout.
func NewSender(cfg SenderConfig) *Sender {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	if !cfg.AllowPrivate {
		// Control runs for every address the dialer tries, after name
		// resolution: the check is on what is actually dialled.
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return errBlocked
			}
			a, err := netip.ParseAddr(host)
			if err != nil || Blocked(a) {
				return errBlocked
			}
			return nil
		}
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: cfg.RootCAs},
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConns:          200,
		MaxIdleConnsPerHost:   50,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	client := &http.Client{
		Transport: transport,
		Timeout:   cfg.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return &Sender{client: client, now: cfg.Now}
}

// Send makes one attempt; see commands/webhooks.Sender.
func (s *Sender) Send(ctx context.Context, d webhooks.Send) webhooks.Result {
	start := s.now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return webhooks.Result{Error: webhooks.ErrorInvalidURL}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("webhook-id", d.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(d.Timestamp.Unix(), 10))
	req.Header.Set("webhook-signature", SignatureHeader(d.Secrets, d.ID, d.Timestamp, d.Body))
	resp, err := s.client.Do(req)
	if err != nil {
		return webhooks.Result{Error: classify(err), Latency: s.now().Sub(start)}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	_ = resp.Body.Close()
	res := webhooks.Result{StatusCode: resp.StatusCode, Latency: s.now().Sub(start), RetryAfter: retryAfter(resp.Header.Get("Retry-After"), s.now())}
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		res.Error = webhooks.ErrorRedirect
	}
	return res
}

// classify names the failure of an attempt that got no answer.
func classify(err error) string {
	var (
		netErr  net.Error
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		hostErr x509.HostnameError
		recErr  tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, errBlocked):
		return webhooks.ErrorBlockedAddress
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return webhooks.ErrorTimeout
	case errors.As(err, &dnsErr):
		return webhooks.ErrorDNS
	case errors.As(err, &certErr), errors.As(err, &hostErr), errors.As(err, &recErr), strings.Contains(err.Error(), "tls: "):
		return webhooks.ErrorTLS
	}
	return webhooks.ErrorConnection
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && secs > 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
