package web

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
)

// maxBearerLength bounds the Authorization header's token: an access JWT is
// a few hundred bytes, and nothing longer deserves a signature check.
const maxBearerLength = 4096

// maxUserAgentBytes bounds the User-Agent kept in event metadata and
// session views: real ones are a few hundred bytes, and a client must not
// be able to write kilobytes into every event it causes.
const maxUserAgentBytes = 512

// identityKey keys the verified commands.Principal in a request context;
// only authenticate sets it, and the rate limits and handlers trust it.
type identityKey struct{}

// requestContextKey keys the commands.RequestContext of a request.
type requestContextKey struct{}

// identityPrincipal returns the caller the auth middleware verified.
func identityPrincipal(ctx context.Context) (commands.Principal, bool) {
	p, ok := ctx.Value(identityKey{}).(commands.Principal)
	return p, ok
}

// callerOf returns the verified caller, or an internal error: a handler of a
// protected operation that runs without one means the middleware is
// misconfigured, and failing closed is the only safe answer.
func callerOf(ctx context.Context) (commands.Principal, error) {
	p, ok := identityPrincipal(ctx)
	if !ok {
		return commands.Principal{}, errors.New("no verified principal in the request context")
	}
	return p, nil
}

// requestContextOf returns who asked and from where, for event metadata.
func requestContextOf(ctx context.Context) commands.RequestContext {
	rc, _ := ctx.Value(requestContextKey{}).(commands.RequestContext)
	return rc
}

// accessDeniedTimeout bounds the recording of one refusal: it outlives a
// client that hangs up, but a stalled store must not hold the request forever.
const accessDeniedTimeout = 5 * time.Second

// authenticate establishes who is calling. For each operation of the
// OpenAPI document it reads the declared permission: public ones pass (a
// token sent along is ignored, so a stale one cannot break login); others
// need a bearer token the identity service accepts, else 401. It sets the
// verified caller the rate limits key on and requirePermission checks, so it
// runs first; routes outside the document pass untouched.
func (s *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		perm, inSpec := s.permissions[r.Method+" "+c.Path()]
		if !inSpec {
			return next(c)
		}
		ctx := r.Context()
		rc := s.requestContext(r)
		ctx = context.WithValue(ctx, requestContextKey{}, rc)
		if perm == "" {
			c.SetRequest(r.WithContext(ctx))
			return next(c)
		}

		token, err := bearerToken(r.Header.Get(echo.HeaderAuthorization))
		if err != nil {
			return err
		}
		p, err := s.identity.Authenticate(ctx, token)
		if err != nil {
			return authenticationError(err)
		}
		ctx = context.WithValue(ctx, identityKey{}, p)
		c.SetRequest(r.WithContext(ctx))
		return next(c)
	}
}

// requirePermission is the one place permissions are enforced: a caller
// whose roles lack the permission the operation declares gets 403, and the
// refusal is recorded on the caller's stream. It runs after the rate
// limits, so a client probing admin routes spends its allowance and cannot
// append events faster than it may make requests.
func (s *Server) requirePermission(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		perm := s.permissions[r.Method+" "+c.Path()]
		if perm == "" {
			return next(c) // public, or outside the document
		}
		ctx := r.Context()
		p, err := callerOf(ctx)
		if err != nil {
			return err
		}
		if user.HasPermission(p.Roles, perm) {
			return next(c)
		}
		rc := requestContextOf(ctx)
		// Recorded even if the client hangs up at once: a probe that
		// disconnects early must still leave its trace.
		recordCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), accessDeniedTimeout)
		defer cancel()
		denial := user.AccessDenial{Method: r.Method, Route: c.Path(), Permission: perm}
		if err := s.identity.RecordAccessDenied(recordCtx, p, denial, rc); err != nil {
			// The refusal stands either way; a lost audit event is
			// logged loudly rather than turned into a 500.
			s.log.ErrorContext(ctx, "record access denied failed",
				"trace_id", rc.TraceID, "permission", string(perm), "error", err.Error())
		}
		return Errorf(CodeForbidden, "your role does not allow this operation (needs %s)", perm)
	}
}

// requestContext is who sent r and from where, for event metadata; the
// address is found as the rate limiter finds it, so both agree.
func (s *Server) requestContext(r *http.Request) commands.RequestContext {
	rc := commands.RequestContext{UserAgent: truncateUTF8(r.UserAgent(), maxUserAgentBytes), TraceID: TraceID(r.Context())}
	if addr, err := netip.ParseAddr(s.clientAddr(r)); err == nil {
		rc.IP = addr.Unmap()
	}
	return rc
}

// truncateUTF8 returns s cut to at most n bytes of valid UTF-8: the cut
// falls on a rune boundary, and bytes that are not UTF-8 are dropped.
func truncateUTF8(s string, n int) string {
	if len(s) > n {
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s = s[:n]
	}
	return strings.ToValidUTF8(s, "")
}

// bearerToken extracts the token of an "Authorization: Bearer" header;
// the scheme is case-insensitive (RFC 9110 §11.1).
func bearerToken(header string) (string, error) {
	if header == "" {
		return "", unauthorized("a bearer token is required", "")
	}
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", unauthorized("the Authorization header must be \"Bearer <token>\"", "invalid_request")
	}
	if len(token) > maxBearerLength {
		return "", unauthorized("the access token is invalid", "invalid_token")
	}
	return token, nil
}

// authenticationError turns a refusal of Authenticate into a 401; any
// other failure (the database is down) stays what it is, so an outage is a
// 5xx rather than a wave of clients told to log in again.
func authenticationError(err error) error {
	switch {
	case errors.Is(err, commands.ErrTokenExpired):
		return unauthorizedErr("the access token expired; refresh it", err)
	case errors.Is(err, commands.ErrTokenInvalid):
		return unauthorizedErr("the access token is invalid", err)
	case errors.Is(err, identity.ErrSessionRevoked):
		return unauthorizedErr("the session of the access token has ended", err)
	}
	return err
}

// unauthenticated maps err to the 401 the auth middleware would answer.
func unauthenticated(target error) errorMapping {
	return func(err error) (*Error, bool) {
		if !errors.Is(err, target) {
			return nil, false
		}
		e, _ := authenticationError(err).(*Error)
		return e, e != nil
	}
}

// unauthorizedErr is a 401 for a token that was presented and refused.
func unauthorizedErr(detail string, cause error) *Error {
	e := unauthorized(detail, "invalid_token")
	e.Err = cause
	return e
}

// unauthorized builds a 401 with the RFC 6750 challenge; oauthError is
// empty when no token was sent at all, as §3.1 asks.
func unauthorized(detail, oauthError string) *Error {
	challenge := `Bearer realm="dashtam"`
	if oauthError != "" {
		challenge += `, error="` + oauthError + `"`
	}
	return &Error{
		Code:   CodeUnauthorized,
		Detail: detail,
		header: http.Header{echo.HeaderWWWAuthenticate: {challenge}},
	}
}
