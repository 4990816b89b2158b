package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
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
	// CodeRateLimited means the caller sent too many requests (429).
	CodeRateLimited Code = "rate_limited"
	// CodeUnavailable means a dependency is down or the request timed out (503).
	CodeUnavailable Code = "unavailable"
	// CodeInternal means a server fault whose details only the logs hold (500).
	CodeInternal Code = "internal"
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
	CodeRateLimited:          http.StatusTooManyRequests,
	CodeUnavailable:          http.StatusServiceUnavailable,
	CodeInternal:             http.StatusInternalServerError,
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
	is(context.DeadlineExceeded, CodeUnavailable, "the request timed out"),
	is(context.Canceled, CodeUnavailable, "the request was cancelled"),
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
