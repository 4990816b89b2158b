package schwab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/dashtam/dashtam/commands"
)

// maxBody bounds one answer; a full page of 3000 transactions with their
// legs is a few megabytes.
const maxBody = 64 << 20

// call is one GET of the Trader API.
type call struct {
	// op says what the adapter was doing, for errors.
	op string
	// route is the path below the API base as a template, for errors.
	route string
	// path is the path below the API base, escaped.
	path string
	// query is the query string, nil for none.
	query url.Values
	// account marks an account-scoped call, where a 404 means the
	// account is unknown rather than a broken route.
	account bool
}

// answer is a 2xx answer's body and correlation id.
type answer struct {
	body []byte
	// correl is " (Schwab-Client-CorrelId …)" or empty, for errors.
	correl string
}

// get performs cl with c's access token and returns a 2xx answer, or an
// error of exactly one of the port's kinds.
func (a *Adapter) get(ctx context.Context, c commands.Credentials, cl call) (answer, error) {
	if err := a.usable(c); err != nil {
		return answer{}, fmt.Errorf("schwab: %s: %w", cl.op, err)
	}
	u := a.api + cl.path
	if len(cl.query) > 0 {
		u += "?" + cl.query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return answer{}, fmt.Errorf("schwab: %s: build request: %w", cl.op, commands.ErrProviderUnavailable)
	}
	req.Header.Set("Authorization", "Bearer "+c.AccessToken)
	req.Header.Set("Accept", "application/json")
	resp, err := a.client.Do(req)
	if err != nil {
		return answer{}, fmt.Errorf("schwab: %s: %w: %w", cl.op, commands.ErrProviderUnavailable, redactURL(err, cl.route))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return answer{}, fmt.Errorf("schwab: %s: read answer: %w: %w", cl.op, commands.ErrProviderUnavailable, redactURL(err, cl.route))
	}
	correl := correlation(resp.Header)
	if len(body) > maxBody {
		return answer{}, fmt.Errorf("schwab: %s: answer larger than %d bytes%s: %w",
			cl.op, maxBody, correl, commands.ErrProviderInvalidResponse)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return answer{body: body, correl: correl}, nil
	}
	return answer{}, a.statusError(cl, resp.StatusCode, resp.Header, body, c)
}

// usable refuses credentials that cannot work, without calling Schwab: the
// caller refreshes on ErrProviderAuth.
func (a *Adapter) usable(c commands.Credentials) error {
	if c.AccessToken == "" {
		return fmt.Errorf("no access token: %w", commands.ErrProviderAuth)
	}
	if !c.AccessExpiresAt.IsZero() && !a.now().Before(c.AccessExpiresAt) {
		return fmt.Errorf("access token expired at %s: %w", c.AccessExpiresAt.UTC().Format(time.RFC3339), commands.ErrProviderAuth)
	}
	return nil
}

// statusError maps a non-2xx answer. Non-JSON bodies on 4xx and 5xx are
// gateway pages ("Access Denied") and mean unavailable, except a plain 404,
// which is how Schwab answers an unknown route or account.
func (a *Adapter) statusError(cl call, status int, h http.Header, body []byte, c commands.Credentials) error {
	isJSON := looksJSON(body)
	msg := scrub(errorMessage(body, h), c.AccessToken, c.RefreshToken)
	var kind error
	switch {
	case status == http.StatusTooManyRequests:
		kind = &commands.RateLimitedError{RetryAfter: retryAfter(h, a.now())}
	case status >= 500:
		kind = commands.ErrProviderUnavailable
	case status == http.StatusNotFound:
		kind = commands.ErrProviderUnavailable
		if cl.account {
			kind = commands.ErrProviderNotFound
		}
	case !isJSON:
		kind = commands.ErrProviderUnavailable
	case status == http.StatusUnauthorized, status == http.StatusForbidden:
		kind = commands.ErrProviderAuth
	case status == http.StatusBadRequest && cl.account && strings.Contains(strings.ToLower(msg), "account number"):
		// Schwab answers {"message":"Invalid account number"} for a hash
		// it does not know.
		kind = commands.ErrProviderNotFound
	default:
		// A 400 means Schwab could not read the request: nothing the
		// caller can fix, so it is reported like an unreadable answer.
		kind = commands.ErrProviderInvalidResponse
	}
	detail := fmt.Sprintf("HTTP %d", status)
	if msg != "" {
		detail += " " + msg
	}
	return fmt.Errorf("schwab: %s: %s%s: %w", cl.op, detail, correlation(h), kind)
}

// errorBody covers the error shapes Schwab answers: {"message"},
// {"errors":[...]} with objects or strings (status a number or a string),
// and the API gateway's {"fault"}.
type errorBody struct {
	Message string            `json:"message"`
	Error   string            `json:"error"`
	Errors  []json.RawMessage `json:"errors"`
	Fault   *struct {
		FaultString string `json:"faultstring"`
		Detail      struct {
			ErrorCode string `json:"errorcode"`
		} `json:"detail"`
	} `json:"fault"`
}

// errorItem is one entry of "errors"; Status is a number or a string.
type errorItem struct {
	Status any    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
}

// errorMessage extracts what Schwab said went wrong, or names the body's
// kind when it is not JSON.
func errorMessage(body []byte, h http.Header) string {
	if !looksJSON(body) {
		ct, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
		if ct == "text/plain" && len(body) > 0 {
			return strings.TrimSpace(string(body))
		}
		if ct == "" {
			ct = "no content type"
		}
		return fmt.Sprintf("(%d-byte %s body)", len(body), ct)
	}
	var eb errorBody
	if json.Unmarshal(body, &eb) != nil {
		return ""
	}
	var parts []string
	add := func(s string) {
		if s = strings.TrimSpace(s); s != "" {
			parts = append(parts, s)
		}
	}
	add(eb.Message)
	add(eb.Error)
	for _, raw := range eb.Errors {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			add(s)
			continue
		}
		var it errorItem
		if json.Unmarshal(raw, &it) == nil {
			add(strings.TrimSpace(it.Title + ": " + it.Detail))
		}
	}
	if eb.Fault != nil {
		add(eb.Fault.FaultString)
		add(eb.Fault.Detail.ErrorCode)
	}
	return strings.Join(parts, "; ")
}

// looksJSON reports whether body is a JSON object or array.
func looksJSON(body []byte) bool {
	b := bytes.TrimSpace(body)
	return len(b) > 0 && (b[0] == '{' || b[0] == '[') && json.Valid(b)
}

// longDigits are runs that could be an account number.
var longDigits = regexp.MustCompile(`[0-9]{6,}`)

// scrub makes Schwab's text fit for an error: no secret, nothing that
// could be an account number, no control characters, bounded length.
func scrub(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	s = longDigits.ReplaceAllString(s, "[digits]")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > 200 {
		s = string(r[:200]) + "…"
	}
	return s
}

// correlIDShape is what a Schwab-Client-CorrelId looks like (a UUID); any
// other value is left out of errors.
var correlIDShape = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// correlation names Schwab's correlation id of an answer, for support
// requests.
func correlation(h http.Header) string {
	id := h.Get("Schwab-Client-CorrelId")
	if !correlIDShape.MatchString(id) {
		return ""
	}
	return " (Schwab-Client-CorrelId " + id + ")"
}

// retryAfter reads Retry-After as delay-seconds or an HTTP date (RFC 9110),
// zero when absent, unreadable or past.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(24*time.Hour/time.Second))) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

// redactURL replaces the request URL inside a transport error by its
// route template, so that errors carry no account hash or query.
func redactURL(err error, route string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: route, Err: ue.Err}
	}
	return err
}
