package schwab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"golang.org/x/oauth2"

	"github.com/dashtam/dashtam/commands"
)

// Token lifetimes as Schwab states them; expires_in overrides the first
// when the token endpoint names one.
const (
	// AccessTokenLifetime is how long an access token works.
	AccessTokenLifetime = 30 * time.Minute
	// RefreshTokenLifetime is how long a refresh token works, counted from
	// the original code exchange and never extended by a refresh.
	RefreshTokenLifetime = 7 * 24 * time.Hour
)

// AuthorizationURL returns Schwab's authorize page for the app with state;
// Schwab takes no PKCE challenge, so challenge is ignored.
func (a *Adapter) AuthorizationURL(state, _ string) string {
	return a.oauth.AuthCodeURL(state)
}

// Exchange trades the code for credentials. code is the value the callback
// read from its query string, decoded once there (…%40 became …@); it is
// passed on untouched, never unescaped again. An invalid, used or expired
// code is ErrProviderAuth.
func (a *Adapter) Exchange(ctx context.Context, code, _ string) (commands.Credentials, error) {
	const op = "exchange code"
	if code == "" {
		return commands.Credentials{}, fmt.Errorf("schwab: %s: empty code: %w", op, commands.ErrProviderAuth)
	}
	// Stamped before the call: Schwab starts both clocks when it issues
	// the tokens, so an expiry counted from here is never late.
	start := a.now()
	tok, err := a.oauth.Exchange(a.oauthContext(ctx), code)
	if err != nil {
		return commands.Credentials{}, a.tokenError(op, err)
	}
	creds, err := credentialsOf(tok, start)
	if err != nil {
		return commands.Credentials{}, fmt.Errorf("schwab: %s: %w", op, err)
	}
	creds.RefreshExpiresAt = start.Add(RefreshTokenLifetime)
	return creds, nil
}

// Refresh trades c's refresh token for a new access token. The refresh
// token Schwab answers is stored whatever it is (the same one, or a new one
// should Schwab rotate); RefreshExpiresAt stays that of the original
// exchange. A refresh token past that date is refused without a call.
func (a *Adapter) Refresh(ctx context.Context, c commands.Credentials) (commands.Credentials, error) {
	const op = "refresh token"
	if c.RefreshToken == "" {
		return commands.Credentials{}, fmt.Errorf("schwab: %s: no refresh token: %w", op, commands.ErrProviderAuth)
	}
	start := a.now()
	if !c.RefreshExpiresAt.IsZero() && !start.Before(c.RefreshExpiresAt) {
		return commands.Credentials{}, fmt.Errorf("schwab: %s: refresh token expired at %s: %w",
			op, c.RefreshExpiresAt.UTC().Format(time.RFC3339), commands.ErrProviderAuth)
	}
	// A token without an access token is never valid, so the source goes
	// straight to the refresh grant.
	tok, err := a.oauth.TokenSource(a.oauthContext(ctx), &oauth2.Token{RefreshToken: c.RefreshToken}).Token()
	if err != nil {
		return commands.Credentials{}, a.tokenError(op, err)
	}
	next, err := credentialsOf(tok, start)
	if err != nil {
		return commands.Credentials{}, fmt.Errorf("schwab: %s: %w", op, err)
	}
	next.RefreshExpiresAt = c.RefreshExpiresAt
	if next.Scope == "" {
		next.Scope = c.Scope
	}
	next.Extra = maps.Clone(c.Extra)
	return next, nil
}

// oauthContext makes golang.org/x/oauth2 use the adapter's client, with
// its timeouts, for the token endpoint.
func (a *Adapter) oauthContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, oauth2.HTTPClient, a.client)
}

// credentialsOf maps a token answer; expiries come from expires_in and the
// adapter's clock, not from oauth2's own reading of time.Now.
func credentialsOf(tok *oauth2.Token, start time.Time) (commands.Credentials, error) {
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		return commands.Credentials{}, fmt.Errorf("token answer without access or refresh token: %w", commands.ErrProviderInvalidResponse)
	}
	life := AccessTokenLifetime
	if tok.ExpiresIn > 0 {
		life = time.Duration(tok.ExpiresIn) * time.Second
	}
	typ := tok.TokenType
	if typ == "" {
		typ = "Bearer"
	}
	scope, _ := tok.Extra("scope").(string)
	return commands.Credentials{
		AccessToken:     tok.AccessToken,
		RefreshToken:    tok.RefreshToken,
		TokenType:       typ,
		AccessExpiresAt: start.Add(life),
		Scope:           scope,
	}, nil
}

// oauthErrorCode is the shape of RFC 6749's error codes; anything else
// from the token endpoint is left out of errors, since its text may echo
// what was sent.
var oauthErrorCode = regexp.MustCompile(`^[a-z_]{1,64}$`)

// tokenError maps a failed token request to the port's kinds. It never
// quotes the response body or oauth2's own message (which embeds the body):
// only the status, an RFC 6749 error code and the correlation id.
func (a *Adapter) tokenError(op string, err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		var h http.Header
		if re.Response != nil {
			status, h = re.Response.StatusCode, re.Response.Header
		}
		detail := fmt.Sprintf("HTTP %d", status)
		if oauthErrorCode.MatchString(re.ErrorCode) {
			detail += " " + re.ErrorCode
		}
		detail += correlation(h)
		var kind error
		switch {
		case status == http.StatusTooManyRequests:
			kind = &commands.RateLimitedError{RetryAfter: retryAfter(h, a.now())}
		case status >= 500, !looksJSON(re.Body):
			// A gateway's HTML "Access Denied" page is a transient fault.
			kind = commands.ErrProviderUnavailable
		case status == http.StatusBadRequest, status == http.StatusUnauthorized, status == http.StatusForbidden,
			status < 300:
			// 400 is how Schwab refuses a bad code or refresh token; a 2xx
			// with an error code is a refusal too.
			kind = commands.ErrProviderAuth
		default:
			kind = commands.ErrProviderUnavailable
		}
		return fmt.Errorf("schwab: %s: %s: %w", op, detail, kind)
	}
	if cause := transportError(err); cause != nil {
		return fmt.Errorf("schwab: %s: %w: %w", op, commands.ErrProviderUnavailable, cause)
	}
	// oauth2 could not parse a 2xx answer, or it lacked an access token.
	return fmt.Errorf("schwab: %s: unreadable token answer: %w", op, commands.ErrProviderInvalidResponse)
}

// transportError returns err when it is a failure to reach Schwab or a
// cancelled or expired context, nil otherwise. A *url.Error names only
// the URL, never the request body.
func transportError(err error) error {
	var ue *url.Error
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.As(err, &ue):
		return err
	}
	return nil
}
