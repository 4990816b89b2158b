package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/commands/ratelimit"
)

// callbackPath is where providers send the user's browser back after an
// authorisation: <public URL>/oauth/<slug>/callback, the redirect URI
// registered with each provider. It is a page for a person, outside
// /api/v1 and the OpenAPI document, like the pages the identity mails
// link to.
const callbackPath = "/oauth/:slug/callback"

// callbackRateLimits declares the callback's per-IP limit: each callback
// may exchange a code with the provider.
var callbackRateLimits = ownRouteRateLimits{
	http.MethodGet + " " + callbackPath: ratelimit.OAuthCallback,
}

// callbackTimeout bounds a callback's work once the browser is gone: the
// code exchange (a provider call of at most 30 s) and the writes after it.
const callbackTimeout = time.Minute

// callbackStyle is the page's only style, allowed by its hash: the page
// runs no script and loads nothing.
const callbackStyle = `body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;line-height:1.5}` +
	`h1{font-size:1.5rem}.ref{color:#5b6875;font-size:.9rem}`

// callbackCSP forbids everything but that style: no script, no form, no
// frame, no base, no fetch.
var callbackCSP = func() string {
	sum := sha256.Sum256([]byte(callbackStyle))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

// callbackTemplate renders the outcome; html/template escapes the alias
// and provider name, which the user and the configuration chose.
var callbackTemplate = template.Must(template.New("callback").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Dashtam - {{.Title}}</title>
<style>` + callbackStyle + `</style>
</head>
<body>
<main id="{{.ID}}">
<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{if .Reference}}<p class="ref">Reference: {{.Reference}}</p>{{end}}
</main>
</body>
</html>
`))

// callbackPage is what callbackTemplate shows. ID marks the outcome for
// tests and scripts that drive a browser: "connected" or "not-connected".
type callbackPage struct {
	ID, Title, Message, Reference string
}

// registerCallbackPage mounts the OAuth callback page.
func (s *Server) registerCallbackPage(e *echo.Echo) {
	e.GET(callbackPath, s.oauthCallback)
}

// oauthCallback completes an authorisation from the provider's redirect
// and tells the person in the browser what happened, in words: the query
// (code, state, error) goes to the connections service as received,
// decoded once, and nothing of it is shown or logged.
func (s *Server) oauthCallback(c echo.Context) error {
	// The page tells people they may close the window, and some close it
	// before it loads: the callback then finishes on its own (within a
	// bound) rather than leave a spent state, an exchanged code and a
	// connection pending until its authorisation expires.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(c.Request().Context()), callbackTimeout)
	defer cancel()
	if s.connections == nil {
		return renderCallback(c, http.StatusServiceUnavailable, callbackPage{ID: "not-connected",
			Title: "Connections are not available", Message: "This server does not connect providers."})
	}
	slug := c.Param("slug")
	out := s.connections.Callback(ctx, slug, c.Request().URL.Query(), s.pageRequestContext(c))
	name := out.ProviderName
	if name == "" {
		name = s.providerName(slug)
	}
	if out.OK {
		return renderCallback(c, http.StatusOK, callbackPage{ID: "connected", Title: "Connected",
			Message: "Your " + name + " connection '" + out.Alias + "' is connected. You can close this window."})
	}
	status, msg := callbackFailure(out, name)
	return renderCallback(c, status, callbackPage{ID: "not-connected", Title: "Not connected", Message: msg,
		Reference: TraceID(ctx)})
}

// providerName is the display name of an enabled provider, or a
// placeholder: a slug from the URL is never echoed.
func (s *Server) providerName(slug string) string {
	for _, p := range s.providers {
		if p.Slug == slug {
			return p.Name
		}
	}
	return "the provider"
}

// callbackFailure says, in plain words, why an authorisation did not
// complete, and with which status: 400 for a callback that cannot be ours
// or came too late, 502 for a provider that refused or answered nonsense,
// 503 for one that could not be reached; declining is the user's choice,
// not an error, and answers 200.
func callbackFailure(out connections.CallbackOutcome, name string) (int, string) {
	if out.BadRequest {
		return http.StatusBadRequest, "This page was opened without the authorization details a provider sends back. " +
			"Start connecting again from your application."
	}
	switch out.Reason {
	case connection.FailedAccessDenied:
		return http.StatusOK, "You declined access at " + name + ", so nothing was connected. " +
			"You can start again from your application whenever you like."
	case connection.FailedExpired:
		return http.StatusBadRequest, "The authorization took too long and expired. Start connecting again from your application."
	case connection.FailedInvalidState:
		return http.StatusBadRequest, "This authorization is unknown or was already used. " +
			"Start connecting again from your application."
	case connection.FailedProviderUnavailable, connection.FailedRateLimited:
		return http.StatusServiceUnavailable, name + " could not be reached to complete the connection. " +
			"Try again in a few minutes."
	}
	return http.StatusBadGateway, name + " did not complete the authorization. Start connecting again from your application."
}

// renderCallback writes p with headers that keep the page, whose URL holds
// the code and state, out of caches, frames and Referer headers.
func renderCallback(c echo.Context, status int, p callbackPage) error {
	var buf bytes.Buffer
	if err := callbackTemplate.Execute(&buf, p); err != nil {
		return errors.Join(errors.New("render callback page"), err)
	}
	h := c.Response().Header()
	h.Set(echo.HeaderCacheControl, "no-store")
	h.Set(headerReferrerPolicy, "no-referrer")
	h.Set(echo.HeaderXFrameOptions, "DENY")
	h.Set(echo.HeaderContentSecurityPolicy, callbackCSP)
	return c.HTMLBlob(status, buf.Bytes())
}
