package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/audit"
	"github.com/dashtam/dashtam/commands/connections"
	"github.com/dashtam/dashtam/commands/fanout"
	"github.com/dashtam/dashtam/commands/identity"
	"github.com/dashtam/dashtam/commands/webhooks"
	"github.com/dashtam/dashtam/projections"
)

// Code classifies an application error so that each class maps to exactly
// one HTTP status, here and nowhere else.
type Code string

// The codes clients see in a problem's `code` member; they are part of the
// API contract, so an existing value must never change meaning.
const (
	// CodeInvalid means the request breaks the API contract (400).
	CodeInvalid Code = "invalid"
	// CodeUnauthorized means the bearer token is missing or invalid (401).
	CodeUnauthorized Code = "unauthorized"
	// CodeForbidden means the caller's role does not allow the operation (403).
	CodeForbidden Code = "forbidden"
	// CodeNotFound means no such route or resource, or another user's (404).
	CodeNotFound Code = "not_found"
	// CodeMethodNotAllowed means the route exists for other methods (405).
	CodeMethodNotAllowed Code = "method_not_allowed"
	// CodeConflict means the resource changed concurrently or is in the wrong state (409).
	CodeConflict Code = "conflict"
	// CodeTooLarge means the request body exceeds the configured limit (413).
	CodeTooLarge Code = "too_large"
	// CodeUnsupportedMediaType means the body's Content-Type is not accepted (415).
	CodeUnsupportedMediaType Code = "unsupported_media_type"
	// CodeUnprocessable means the request matches the contract but a value
	// is refused: text with invalid UTF-8 or control characters, an email
	// that is not one deliverable mailbox, audit filters that cannot be
	// answered (422).
	CodeUnprocessable Code = "unprocessable"
	// CodeRateLimited means the caller sent too many requests (429).
	CodeRateLimited Code = "rate_limited"
	// CodeUnavailable means a dependency is down or the request timed out (503).
	CodeUnavailable Code = "unavailable"
	// CodeInternal means a server fault whose details only the logs hold (500).
	CodeInternal Code = "internal"

	// CodeEmailNotVerified refines 403 for a login before the email is verified, so a client can offer to resend the mail.
	CodeEmailNotVerified Code = "email_not_verified"
	// CodeAccountLocked refines 403 for a login during a lockout; Retry-After says when it ends.
	CodeAccountLocked Code = "account_locked"
	// CodeReauthorizationRequired refines 409 for a connection whose
	// provider refused its credentials: the user must authorise it again
	// (POST /connections/{id}/reauthorizations).
	CodeReauthorizationRequired Code = "reauthorization_required"
	// CodeConnectionDisconnected refines 409 for a change to a
	// disconnected connection, which stays readable but changes no more.
	CodeConnectionDisconnected Code = "connection_disconnected"
	// CodeConnectionNotActive refines 409 for an operation that needs an
	// active connection on a pending or failed one.
	CodeConnectionNotActive Code = "connection_not_active"
)

// codeStatus is the one table from error class to HTTP status.
var codeStatus = map[Code]int{
	CodeInvalid:              http.StatusBadRequest,
	CodeUnauthorized:         http.StatusUnauthorized,
	CodeForbidden:            http.StatusForbidden,
	CodeNotFound:             http.StatusNotFound,
	CodeMethodNotAllowed:     http.StatusMethodNotAllowed,
	CodeConflict:             http.StatusConflict,
	CodeTooLarge:             http.StatusRequestEntityTooLarge,
	CodeUnsupportedMediaType: http.StatusUnsupportedMediaType,
	CodeUnprocessable:        http.StatusUnprocessableEntity,
	CodeRateLimited:          http.StatusTooManyRequests,
	CodeUnavailable:          http.StatusServiceUnavailable,
	CodeInternal:             http.StatusInternalServerError,
}

// refinedCodeStatus holds codes that refine a status codeStatus already
// gives a general code: kept apart so that statusCode, which maps Echo's
// bare statuses back to codes, can only ever pick the general one.
var refinedCodeStatus = map[Code]int{
	CodeEmailNotVerified:        http.StatusForbidden,
	CodeAccountLocked:           http.StatusForbidden,
	CodeReauthorizationRequired: http.StatusConflict,
	CodeConnectionDisconnected:  http.StatusConflict,
	CodeConnectionNotActive:     http.StatusConflict,
}

// Error is what a handler returns to choose the problem a client sees; its
// Detail and Fields are shown verbatim, its Err only logged.
type Error struct {
	// Code selects the HTTP status and the problem's `code` member.
	Code Code
	// Detail explains this occurrence to the client; it must hold no secret.
	Detail string
	// Fields lists the inputs that failed validation, for `errors[]`.
	Fields []FieldError
	// Err is the underlying cause, kept for logs and errors.Is.
	Err error

	// logged marks an error already logged with more context (a panic's stack).
	logged bool
	// header holds response headers the problem needs (WWW-Authenticate).
	header http.Header
	// retryAt, when set, becomes Retry-After relative to the server's clock,
	// which tests pin; a mapping has no clock of its own.
	retryAt time.Time
	// retryAfter, when set, is sent as Retry-After as it is.
	retryAfter time.Duration
}

// FieldError names one invalid input and says what is wrong with it.
type FieldError struct {
	// Field is a parameter name or a dotted path into the request body.
	Field string
	// Message says what is wrong without echoing the value back.
	Message string
}

// Errorf builds an Error whose detail is formatted like fmt.Sprintf.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Error returns the code and detail, plus the cause when there is one.
func (e *Error) Error() string {
	msg := string(e.Code)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap exposes the cause to errors.Is and errors.As.
func (e *Error) Unwrap() error { return e.Err }

// Status returns the HTTP status for the error's code; unknown codes are
// server bugs and so answer 500.
func (e *Error) Status() int {
	if s, ok := codeStatus[e.Code]; ok {
		return s
	}
	if s, ok := refinedCodeStatus[e.Code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// errorMappings turns errors of other packages into application errors.
// They are tried in order; a package that returns a new sentinel or typed
// error adds one line here, e.g.
//
//	is(eventstore.ErrConcurrencyConflict, CodeConflict, "the resource changed; reload and retry"),
//	as[*commands.NotFoundError](CodeNotFound, "no such resource"),
var errorMappings = []errorMapping{
	as[*http.MaxBytesError](CodeTooLarge, "request body too large"),
	// The database being down, or a stream too busy to write to, is a 503
	// with Retry-After (unavailable.go), before anything reads the cause
	// more closely: whatever the handler was doing, it could not finish.
	databaseDown,
	conflictExhausted,
	// A busy provider may carry the context's error of a wait that ran
	// out; it is still the provider's delay that tells when to retry.
	providerBusy,
	is(context.DeadlineExceeded, CodeUnavailable, "the request timed out"),
	is(context.Canceled, CodeUnavailable, "the request was cancelled"),

	// Identity (docs/identity.md). Inputs that fail the service's checks are field
	// errors, so a form can show the message beside the field.
	is(identity.ErrEmailTaken, CodeConflict, "the email is already registered"),
	// An email is refused by its content, not its JSON shape: 422, like
	// any text the API does not accept.
	isFieldCode(CodeUnprocessable, identity.ErrInvalidEmail, "email", "must be a single valid email address"),
	isFieldCode(CodeUnprocessable, user.ErrInvalidEmail, "email", "must be a single valid email address"),
	isField(commands.ErrPasswordTooShort, "password", "must be at least 12 characters"),
	isField(commands.ErrPasswordTooLong, "password", "must be at most 128 characters"),
	isField(commands.ErrPasswordCommon, "password", "is too common; choose another"),
	// Unknown email and wrong password share one line, so one body: login
	// must not tell them apart.
	is(identity.ErrInvalidCredentials, CodeUnauthorized, "invalid email or password"),
	is(user.ErrInvalidCredentials, CodeUnauthorized, "invalid email or password"),
	is(user.ErrEmailNotVerified, CodeEmailNotVerified, "verify the email address before logging in"),
	locked,
	// Reuse detection revokes the session, but the thief must not learn
	// that it was noticed: every bad refresh token reads the same.
	is(identity.ErrInvalidRefreshToken, CodeUnauthorized, "the refresh token is invalid, expired or already used"),
	is(user.ErrRefreshTokenReused, CodeUnauthorized, "the refresh token is invalid, expired or already used"),
	// Verification and reset tokens travel in the body, not the path, so a
	// bad one is a bad input (400 on `token`), not a missing resource.
	isField(identity.ErrTokenNotFound, "token", "is unknown, already used or expired"),
	is(identity.ErrNotFound, CodeNotFound, "no such resource"),
	is(user.ErrSessionNotFound, CodeNotFound, "no such resource"),
	is(user.ErrLastRole, CodeConflict, "a user must keep at least one role"),
	isField(user.ErrInvalidRole, "roles", "must be readonly, user, admin or auditor"),
	isField(user.ErrReasonRequired, "reason", "is required"),
	// A handler that meets these has a token the middleware let through a
	// moment before (a session revoked in between): the same 401 as there.
	unauthenticated(identity.ErrSessionRevoked),
	unauthenticated(commands.ErrTokenExpired),
	unauthenticated(commands.ErrTokenInvalid),

	// Provider connections (docs/api.md#connection-errors). Another
	// user's connection reads exactly like a missing one.
	is(connections.ErrNotFound, CodeNotFound, "no such resource"),
	is(connection.ErrNotFound, CodeNotFound, "no such resource"),
	fieldProblem(commands.ErrUnknownProvider, CodeNotFound, "no enabled provider has this slug",
		"provider_slug", "is not an enabled provider (see GET /api/v1/providers)"),
	isFieldCode(CodeUnprocessable, connection.ErrInvalidAlias, "alias",
		"must be 1 to 64 characters of visible text once surrounding spaces are trimmed"),
	fieldProblem(connections.ErrAliasTaken, CodeConflict, "the alias is already used by another connection of this provider",
		"alias", "is already used by another of your live connections of this provider"),
	is(connections.ErrReauthenticationRequired, CodeReauthorizationRequired,
		"the provider refused the connection's credentials; authorize it again with POST /api/v1/connections/{id}/reauthorizations"),
	is(connection.ErrDisconnected, CodeConnectionDisconnected, "the connection is disconnected"),
	is(connection.ErrFailed, CodeConnectionNotActive, "the connection's authorization failed; create a new connection"),
	is(connection.ErrNotActive, CodeConnectionNotActive, "the connection is not active"),

	// Erasure (docs/audit.md).
	is(identity.ErrErasureUnavailable, CodeUnavailable, "erasure is not available on this server"),

	// Audit (docs/audit.md).
	auditInvalid,
	is(audit.ErrNotFound, CodeNotFound, "no such resource"),
	is(user.ErrNotPermitted, CodeForbidden, "your role does not allow this operation"),

	// Data (docs/data-api.md): another user's account, transaction or
	// connection reads exactly as a missing one; a read model that has
	// not reached a client's min_position yet is worth asking again soon.
	is(projections.ErrNotFound, CodeNotFound, "no such resource"),
	positionNotReached,

	// Fan-out (docs/events.md): webhooks, the live stream, the change feed.
	is(webhooks.ErrNotFound, CodeNotFound, "no such resource"),
	isFieldCode(CodeUnprocessable, webhooks.ErrInvalidURL, "url",
		"must be an absolute https URL of a host that resolves only to public addresses"),
	isFieldCode(CodeUnprocessable, webhooks.ErrInvalidEventTypes, "event_types", "must name at least one known event type, each once"),
	is(webhooks.ErrTooManyEndpoints, CodeConflict, "a user may register at most 10 webhook endpoints"),
	is(webhooks.ErrDisabled, CodeConflict, "the webhook endpoint is disabled; enable it first"),
	isFieldCode(CodeUnprocessable, fanout.ErrInvalidCursor, "cursor", "was not issued to you by this API"),
	isField(fanout.ErrInvalidEventID, "Last-Event-ID", "was not sent by this API"),
	is(fanout.ErrTooManyStreams, CodeRateLimited, "too many open event streams; close one first"),
}

// auditInvalid maps the audit API's refusals of input to 422 naming the field.
func auditInvalid(err error) (*Error, bool) {
	var ie *audit.InvalidError
	if !errors.As(err, &ie) {
		return nil, false
	}
	return &Error{Code: CodeUnprocessable, Detail: "the query cannot be answered as given",
		Fields: []FieldError{{Field: ie.Field, Message: ie.Message}}, Err: err}, true
}

// defaultProviderRetryAfter is the Retry-After of a busy provider that
// named no delay: its outages and rate windows last seconds to minutes.
const defaultProviderRetryAfter = 30 * time.Second

// providerBusy maps connections.ErrProviderBusy (the provider failed, is
// rate limited, or another refresh of the connection is running) to 503
// with the delay the provider or the shared pacer asked for.
func providerBusy(err error) (*Error, bool) {
	if !errors.Is(err, connections.ErrProviderBusy) {
		return nil, false
	}
	retry := defaultProviderRetryAfter
	var snooze *commands.JobSnoozeError
	if errors.As(err, &snooze) && snooze.Delay > 0 {
		retry = snooze.Delay
	}
	return &Error{Code: CodeUnavailable, Detail: "the provider is unavailable or busy; retry later", Err: err, retryAfter: retry}, true
}

// fieldProblem maps errors matching target to code with a detail and one
// field error, for refusals a form shows beside the field.
func fieldProblem(target error, code Code, detail, field, message string) errorMapping {
	return func(err error) (*Error, bool) {
		if !errors.Is(err, target) {
			return nil, false
		}
		return &Error{Code: code, Detail: detail, Fields: []FieldError{{Field: field, Message: message}}, Err: err}, true
	}
}

// errorMapping recognises one kind of error and says how to present it.
type errorMapping func(error) (*Error, bool)

// is maps errors matching target under errors.Is.
func is(target error, code Code, detail string) errorMapping {
	return func(err error) (*Error, bool) {
		if !errors.Is(err, target) {
			return nil, false
		}
		return &Error{Code: code, Detail: detail, Err: err}, true
	}
}

// isField maps errors matching target to a 400 naming the field at fault.
func isField(target error, field, message string) errorMapping {
	return isFieldCode(CodeInvalid, target, field, message)
}

// isFieldCode maps errors matching target to code, naming the field at fault.
func isFieldCode(code Code, target error, field, message string) errorMapping {
	return func(err error) (*Error, bool) {
		if !errors.Is(err, target) {
			return nil, false
		}
		return &Error{
			Code: code, Detail: "the request has invalid fields",
			Fields: []FieldError{{Field: field, Message: message}}, Err: err,
		}, true
	}
}

// positionNotReached maps a read model that has not applied a client's
// min_position within the wait to 503 with Retry-After.
func positionNotReached(err error) (*Error, bool) {
	if !errors.Is(err, projections.ErrPositionNotReached) {
		return nil, false
	}
	return &Error{Code: CodeUnavailable, Detail: "the read model has not reached min_position yet; retry shortly",
		Err: err, retryAfter: time.Second}, true
}

// locked maps a lockout to 403 account_locked carrying when it ends.
func locked(err error) (*Error, bool) {
	var le *user.LockedError
	if !errors.As(err, &le) {
		return nil, false
	}
	return &Error{
		Code: CodeAccountLocked, Detail: "too many failed logins; the account is locked for a while",
		Err: err, retryAt: le.Until,
	}, true
}

// as maps errors that errors.As can convert to T.
func as[T error](code Code, detail string) errorMapping {
	return func(err error) (*Error, bool) {
		var target T
		if !errors.As(err, &target) {
			return nil, false
		}
		return &Error{Code: code, Detail: detail, Err: err}, true
	}
}

// toError classifies any error a handler or middleware returned; whatever
// nothing recognises is internal, so an unexpected error never leaks detail.
func toError(err error) *Error {
	var appErr *Error
	if errors.As(err, &appErr) {
		return appErr
	}
	for _, m := range errorMappings {
		if e, ok := m(err); ok {
			return e
		}
	}
	if e, ok := fromEchoError(err); ok {
		return e
	}
	return &Error{Code: CodeInternal, Err: err}
}
