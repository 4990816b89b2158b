package web

import (
	"bytes"
	"errors"
	"html/template"
	"net/http"
	"unicode/utf8"

	"github.com/labstack/echo/v4"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/commands/ratelimit"
)

// Paths of the pages the identity mails link to: commands/identity builds
// the links as <public URL><path>?token=... and owns the paths, so the two
// cannot drift apart. They live outside /api/v1: a person opens them in a
// browser, and no script is needed to use them.
const (
	verifyEmailPagePath   = identity.VerifyEmailPath
	resetPasswordPagePath = identity.ResetPasswordPath
)

// pageRateLimits declares the per-IP limits of the pages, which are served
// outside the OpenAPI document: showing a form is a cheap read, and
// submitting one does the work of the API operation it stands for, so it
// spends the same policy.
var pageRateLimits = ownRouteRateLimits{
	http.MethodGet + " " + verifyEmailPagePath:    ratelimit.PublicReads,
	http.MethodPost + " " + verifyEmailPagePath:   ratelimit.EmailVerification,
	http.MethodGet + " " + resetPasswordPagePath:  ratelimit.PublicReads,
	http.MethodPost + " " + resetPasswordPagePath: ratelimit.PasswordResetCompletion,
}

// pageTemplate renders every identity page; html/template escapes the
// token and messages, which come from the query string.
var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Dashtam - {{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}input,button{font-size:1rem;padding:.4rem}</style>
</head>
<body>
<h1>{{.Title}}</h1>
{{if .Message}}<p>{{.Message}}</p>{{end}}
{{if .Form}}<form method="post" action="{{.Action}}">
<input type="hidden" name="token" value="{{.Token}}">
{{if .AskPassword}}<p><label>New password (12 to 128 characters)<br>
<input type="password" name="password" minlength="1" maxlength="1024" autocomplete="new-password" required></label></p>{{end}}
<p><button type="submit">{{.Button}}</button></p>
</form>{{end}}
</body>
</html>
`))

// page is what pageTemplate shows.
type page struct {
	Title, Message, Action, Token, Button string
	Form, AskPassword                     bool
}

// registerPages mounts the pages the identity mails link to. Opening a link
// only shows a form; the token is spent by the POST it submits, so a mail
// scanner that prefetches links cannot consume it.
func (s *Server) registerPages(e *echo.Echo) {
	e.GET(verifyEmailPagePath, func(c echo.Context) error {
		return renderPage(c, http.StatusOK, page{
			Title: "Confirm your email address", Action: verifyEmailPagePath, Token: c.QueryParam("token"),
			Button: "Confirm", Form: c.QueryParam("token") != "",
			Message: messageIf(c.QueryParam("token") == "", "This link is incomplete; open the one in the mail."),
		})
	})
	e.POST(verifyEmailPagePath, func(c echo.Context) error {
		ctx := c.Request().Context()
		err := s.identity.VerifyEmail(ctx, boundedFormValue(c, "token"), s.pageRequestContext(c))
		if err != nil {
			return s.pageError(c, "Confirm your email address", err)
		}
		return renderPage(c, http.StatusOK, page{Title: "Email address confirmed", Message: "You can now log in."})
	})
	e.GET(resetPasswordPagePath, func(c echo.Context) error {
		return renderPage(c, http.StatusOK, page{
			Title: "Choose a new password", Action: resetPasswordPagePath, Token: c.QueryParam("token"),
			Button: "Set password", Form: c.QueryParam("token") != "", AskPassword: true,
			Message: messageIf(c.QueryParam("token") == "", "This link is incomplete; open the one in the mail."),
		})
	})
	e.POST(resetPasswordPagePath, func(c echo.Context) error {
		ctx := c.Request().Context()
		token, password := boundedFormValue(c, "token"), boundedFormValue(c, "password")
		if !utf8.ValidString(password) {
			// The API refuses such a password (422), so one set here could
			// never be typed at login: refused alike, not hashed as bytes.
			return renderPage(c, http.StatusUnprocessableEntity, page{
				Title: "Choose a new password", Action: resetPasswordPagePath, Token: token,
				Button: "Set password", Form: true, AskPassword: true,
				Message: "The password is not valid text; type it again.",
			})
		}
		err := s.identity.ResetPassword(ctx, token, password, s.pageRequestContext(c))
		if err != nil {
			p := s.pageProblem(c, err)
			if p.Status == http.StatusBadRequest && len(p.Fields) > 0 && p.Fields[0].Field == "password" {
				// A password the policy refuses: let the person try another.
				return renderPage(c, http.StatusBadRequest, page{
					Title: "Choose a new password", Action: resetPasswordPagePath, Token: token,
					Button: "Set password", Form: true, AskPassword: true,
					Message: "The password " + p.Fields[0].Message + ".",
				})
			}
			return s.pageError(c, "Choose a new password", err)
		}
		return renderPage(c, http.StatusOK, page{Title: "Password changed",
			Message: "Every session was logged out; log in with the new password."})
	})
}

// pageProblemInfo is what a page needs to know of a classified error.
type pageProblemInfo struct {
	Status int
	Fields []FieldError
}

// pageProblem classifies err through the same table as API errors, logging
// server faults under the trace id.
func (s *Server) pageProblem(c echo.Context, err error) pageProblemInfo {
	e := toError(err)
	if e.Status() >= http.StatusInternalServerError {
		ctx := c.Request().Context()
		s.log.ErrorContext(ctx, "request failed", "trace_id", TraceID(ctx),
			"method", c.Request().Method, "path", c.Request().URL.Path, "error", err.Error())
	}
	return pageProblemInfo{Status: e.Status(), Fields: e.Fields}
}

// pageError renders a failed form submission as a page, never as JSON:
// the reader is a person in a browser.
func (s *Server) pageError(c echo.Context, title string, err error) error {
	p := s.pageProblem(c, err)
	msg := "Something went wrong on our side; try again later. Reference: " + TraceID(c.Request().Context())
	if p.Status < http.StatusInternalServerError {
		msg = "This link is invalid, already used or expired. Ask for a new one."
	}
	return renderPage(c, p.Status, page{Title: title, Message: msg})
}

// pageRequestContext is the audit metadata of a page request.
func (s *Server) pageRequestContext(c echo.Context) commands.RequestContext {
	return s.requestContext(c.Request())
}

// boundedFormValue returns a form field, or "" when it is longer than any
// token or password the API accepts, so the service never sees more.
func boundedFormValue(c echo.Context, name string) string {
	v := c.FormValue(name)
	if len(v) > 1024 {
		return ""
	}
	return v
}

// messageIf returns msg when cond holds, else "".
func messageIf(cond bool, msg string) string {
	if cond {
		return msg
	}
	return ""
}

// renderPage writes p as HTML; pages with tokens must not be cached or
// framed, and the token must not leak through a Referer.
func renderPage(c echo.Context, status int, p page) error {
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, p); err != nil {
		return errors.Join(errors.New("render page"), err)
	}
	h := c.Response().Header()
	h.Set(echo.HeaderCacheControl, "no-store")
	h.Set(headerReferrerPolicy, "no-referrer")
	h.Set(echo.HeaderXFrameOptions, "DENY")
	h.Set(echo.HeaderContentSecurityPolicy, "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	return c.HTMLBlob(status, buf.Bytes())
}
