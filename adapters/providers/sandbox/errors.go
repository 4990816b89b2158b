package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/dashtam/dashtam/commands"
)

// Every error of the adapter is built here from status codes and the
// dialect's error codes only, never from a response body or a library's
// message, so that no token, code or secret can reach an error's text.

// transportError classifies a failure to reach the institution; a
// cancelled or expired context is also reported as itself.
func transportError(ctx context.Context, op string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("sandbox: %s: %w: %w", op, commands.ErrProviderUnavailable, ctxErr)
	}
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() {
		return fmt.Errorf("sandbox: %s: timed out: %w", op, commands.ErrProviderUnavailable)
	}
	return fmt.Errorf("sandbox: %s: institution unreachable: %w", op, commands.ErrProviderUnavailable)
}

// statusError classifies a data or revoke call's non-200 answer.
func statusError(op string, resp *http.Response, body []byte) error {
	code := dialectCode(body)
	status := resp.StatusCode
	switch {
	case status == http.StatusTooManyRequests:
		return fmt.Errorf("sandbox: %s: %w", op, &commands.RateLimitedError{RetryAfter: retryAfter(resp.Header, time.Now())})
	case status >= 500:
		return fmt.Errorf("sandbox: %s: status %d: %w", op, status, commands.ErrProviderUnavailable)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("sandbox: %s: status %d %s: %w", op, status, code, commands.ErrProviderAuth)
	case status == http.StatusNotFound && code == codeAccountNotFound:
		return fmt.Errorf("sandbox: %s: %s: %w", op, code, commands.ErrProviderNotFound)
	}
	return fmt.Errorf("sandbox: %s: unexpected status %d %s: %w", op, status, code, commands.ErrProviderInvalidResponse)
}

// dialectCode returns the error code of a dialect error body, sanitised,
// or "" for any other body.
func dialectCode(body []byte) string {
	var e wireError
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return safeCode(e.Error.Code)
}

// safeCode keeps an error code only when it looks like one (lowercase
// letters and underscores, short), so that nothing else is echoed.
func safeCode(s string) string {
	if len(s) == 0 || len(s) > 40 {
		return ""
	}
	for _, r := range s {
		if (r < 'a' || r > 'z') && r != '_' {
			return ""
		}
	}
	return s
}

// retryAfter parses Retry-After in seconds or as an HTTP date; zero when
// absent or unreadable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		return max(time.Duration(s)*time.Second, 0)
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now).Round(time.Second), 0)
	}
	return 0
}

// tokenError classifies a failure of the token endpoint as oauth2 reports it.
func tokenError(ctx context.Context, op string, err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		if ctx.Err() != nil || isTransport(err) {
			return transportError(ctx, op, err)
		}
		// A 200 that is not a token response: unreadable or incomplete.
		return fmt.Errorf("sandbox: %s: unreadable token response: %w", op, commands.ErrProviderInvalidResponse)
	}
	status := 0
	var h http.Header
	if re.Response != nil {
		status, h = re.Response.StatusCode, re.Response.Header
	}
	code := safeCode(re.ErrorCode)
	switch {
	case status == http.StatusTooManyRequests:
		return fmt.Errorf("sandbox: %s: %w", op, &commands.RateLimitedError{RetryAfter: retryAfter(h, time.Now())})
	case status >= 500:
		return fmt.Errorf("sandbox: %s: status %d: %w", op, status, commands.ErrProviderUnavailable)
	case code == "invalid_grant" || code == "invalid_client" || code == "unauthorized_client" || code == "access_denied" ||
		status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Errorf("sandbox: %s: status %d %s: %w", op, status, code, commands.ErrProviderAuth)
	}
	return fmt.Errorf("sandbox: %s: unexpected status %d %s: %w", op, status, code, commands.ErrProviderInvalidResponse)
}

// isTransport reports whether err is a failure to talk HTTP at all.
func isTransport(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
