package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/labstack/echo/v4"

	"github.com/dashtam/dashtam/web/api"
)

// problemContentType is the RFC 9457 media type every error is served as.
const problemContentType = "application/problem+json"

// internalDetail is all a client learns about a server fault; the cause is
// logged under the trace id instead.
const internalDetail = "internal error"

// statusCode maps statuses Echo or generated code raise on their own back
// to codes, so their errors read like ours.
var statusCode = func() map[int]Code {
	m := make(map[int]Code, len(codeStatus))
	for c, s := range codeStatus {
		m[s] = c
	}
	return m
}()

// fromEchoError translates Echo's own errors (no route, wrong method, bad
// parameter format in generated binding code) into application errors.
func fromEchoError(err error) (*Error, bool) {
	var he *echo.HTTPError
	if !errors.As(err, &he) {
		return nil, false
	}
	code, ok := statusCode[he.Code]
	if !ok {
		return &Error{Code: CodeInternal, Err: err}, true
	}
	e := &Error{Code: code, Err: err}
	if msg, ok := he.Message.(string); ok && he.Code < http.StatusInternalServerError {
		e.Detail = msg
	}
	if code == CodeNotFound && he == echo.ErrNotFound {
		e.Detail = "no route matches this path"
	}
	return e, true
}

// problemFor renders e for the request in c; internal errors lose their
// detail and field list so nothing about the server leaks.
func problemFor(c echo.Context, e *Error) api.Problem {
	status := e.Status()
	p := api.Problem{
		Type:     "about:blank",
		Title:    http.StatusText(status),
		Status:   status,
		Instance: c.Request().URL.Path,
		TraceId:  TraceID(c.Request().Context()),
	}
	if e.Code != "" {
		code := string(e.Code)
		p.Code = &code
	}
	detail := e.Detail
	if status >= http.StatusInternalServerError && e.Code != CodeUnavailable {
		detail = internalDetail
	}
	if detail != "" {
		p.Detail = &detail
	}
	if len(e.Fields) > 0 && status < http.StatusInternalServerError {
		shown := e.Fields[:min(len(e.Fields), maxFieldErrors)]
		fields := make([]api.FieldError, len(shown))
		for i, f := range shown {
			fields[i] = api.FieldError{Field: f.Field, Message: f.Message}
		}
		p.Errors = &fields
		if omitted := len(e.Fields) - len(shown); omitted > 0 {
			p.ErrorsOmitted = &omitted
		}
	}
	return p
}

// statusClientClosedRequest is the status the access log and metrics
// record for a request whose client hung up before it was answered
// (nginx's 499). It is never sent: there is no one to send it to.
const statusClientClosedRequest = 499

// clientGone reports whether e is a server error only because the
// request's own context was cancelled, which net/http does when the client
// disconnects. A panic (already logged with its stack) stays a 500.
func clientGone(ctx context.Context, e *Error) bool {
	return errors.Is(ctx.Err(), context.Canceled) && e.Status() >= http.StatusInternalServerError && !e.logged
}

// handleError is Echo's HTTPErrorHandler: the single place where errors
// become responses, so every error is problem+json with a trace id.
func (s *Server) handleError(err error, c echo.Context) {
	e := toError(err)
	ctx := c.Request().Context()
	if clientGone(ctx, e) {
		// Nobody is left to read an answer, and the server did nothing
		// wrong: no 5xx in the logs or metrics, no body.
		s.log.InfoContext(ctx, "client closed request",
			"trace_id", TraceID(ctx),
			"method", c.Request().Method,
			"path", c.Request().URL.Path,
			"error", err.Error())
		if !c.Response().Committed {
			c.Response().Status = statusClientClosedRequest
		}
		return
	}
	if e.Status() >= http.StatusInternalServerError && !e.logged {
		s.log.ErrorContext(ctx, "request failed",
			"trace_id", TraceID(ctx),
			"method", c.Request().Method,
			"path", c.Request().URL.Path,
			"error", err.Error())
	}
	if c.Response().Committed {
		// Part of a response is on the wire; a problem body would corrupt it.
		return
	}
	for k, vs := range e.header {
		c.Response().Header()[k] = vs
	}
	switch {
	case !e.retryAt.IsZero():
		// At least 1: "Retry-After: 0" invites an immediate retry loop.
		c.Response().Header().Set(headerRetryAfter, strconv.FormatInt(ceilSeconds(e.retryAt.Sub(s.now()), 1), 10))
	case e.retryAfter > 0:
		c.Response().Header().Set(headerRetryAfter, strconv.FormatInt(ceilSeconds(e.retryAfter, 1), 10))
	}
	if e.Code == CodeTooLarge {
		// The unread rest of the body cannot be trusted to be drained cheaply.
		c.Response().Header().Set("Connection", "close")
	}
	writeProblem(c, problemFor(c, e))
}

// writeProblem sends p with its own status.
func writeProblem(c echo.Context, p api.Problem) {
	body, err := json.Marshal(p)
	if err != nil {
		// A Problem holds only strings and ints, so this is unreachable;
		// still answer with a valid problem rather than nothing.
		p.Status = http.StatusInternalServerError
		body = []byte(`{"type":"about:blank","title":"Internal Server Error","status":500,"detail":"internal error"}`)
	}
	_ = c.Blob(p.Status, problemContentType, body)
}
