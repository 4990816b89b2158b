package web

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
)

// specRoutes indexes the document's operations by "METHOD echo-path", so
// the validator reuses Echo's routing instead of routing a second time.
type specRoutes map[string]*routers.Route

// newSpecRoutes indexes every operation of doc.
//
// The routes carry the document as version 3.0 for kin-openapi to check
// requests with its OpenAPI 3.0 schema validator. For a 3.1 document it
// would turn every parameter's and body's schema into a JSON Schema 2020
// validator, marshalled and compiled anew on every request (it keeps
// none): 40% of the server's CPU for a page of transactions
// (docs/benchmarks.md). The request schemas use nothing the 3.0 validator
// does not read (a type list with "null" is read by both), and
// TestRequestSchemasNeedNoJSONSchema2020 keeps it so.
func newSpecRoutes(doc *openapi3.T) specRoutes {
	as30 := *doc
	as30.OpenAPI = requestValidationVersion
	idx := specRoutes{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			idx[method+" "+echoPath(path)] = &routers.Route{
				Spec: &as30, Path: path, PathItem: item, Method: method, Operation: op,
			}
		}
	}
	return idx
}

// requestValidationVersion is the OpenAPI version requests are checked
// under (newSpecRoutes).
const requestValidationVersion = "3.0.3"

// validationOptions collects every violation rather than the first, so a
// client can fix a request in one round trip. Authentication is left to the
// auth middleware, which knows sessions; the spec's security only documents.
// The uuid format is checked here because kin-openapi checks no format by
// default, and the generated binder that would catch a bad id afterwards
// quotes the offending value in its error. KeepValidatedValue leaves the
// decoded body on the request, and the generated handlers bind that value
// rather than decoding the JSON a second time (case-insensitively), so a
// handler receives exactly what was validated.
var validationOptions = &openapi3filter.Options{
	MultiError:         true,
	KeepValidatedValue: true,
	AuthenticationFunc: openapi3filter.NoopAuthenticationFunc,
	SchemaValidationOptions: []openapi3.SchemaValidationOption{
		openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(uuidPattern)),
	},
}

// uuidPattern is the canonical hyphenated form of any UUID version.
const uuidPattern = `^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`

// validateRequests rejects requests that break the OpenAPI contract with a
// 400 problem listing each bad field, and JSON text the API refuses with a
// 422. A JSON body is first scanned as a stream (body.go), which stops at
// the first handful of errors and answers unknown members, duplicate
// members and trailing data before the schema validator decodes anything.
// Routes outside the document (pages, test hooks) pass through untouched.
func validateRequests(routes specRoutes) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			route, ok := routes[r.Method+" "+c.Path()]
			if !ok {
				return next(c)
			}
			var refused []FieldError
			if schema, ok := jsonBodySchema(r, route.Operation); ok {
				var buf bytes.Buffer
				if r.ContentLength > 0 {
					buf.Grow(int(r.ContentLength)) // limitBodies capped it
				}
				if _, err := buf.ReadFrom(r.Body); err != nil {
					return validationError(err)
				}
				raw := buf.Bytes()
				r.Body = io.NopCloser(bytes.NewReader(raw))
				if len(raw) > 0 {
					scan := scanJSONBody(raw, schema)
					if len(scan.contract) > 0 {
						return &Error{Code: CodeInvalid, Detail: "the request does not match the API contract", Fields: scan.contract}
					}
					refused = scan.content
				}
			}
			params := make(map[string]string, len(c.ParamNames()))
			for i, name := range c.ParamNames() {
				params[name] = c.ParamValues()[i]
			}
			in := &openapi3filter.RequestValidationInput{
				Request: r, PathParams: params, Route: route, Options: validationOptions,
			}
			if err := openapi3filter.ValidateRequest(r.Context(), in); err != nil {
				return validationError(err)
			}
			if len(refused) > 0 {
				return &Error{Code: CodeUnprocessable, Detail: "the request has text the API does not accept", Fields: refused}
			}
			return next(c)
		}
	}
}

// validationError turns kin-openapi's findings into one application error.
func validationError(err error) error {
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return &Error{Code: CodeTooLarge, Detail: "request body too large", Err: err}
	}
	if wrongContentType(err) {
		// The submitted type is not echoed: it is the client's input.
		return &Error{Code: CodeUnsupportedMediaType, Detail: "the request body must be application/json", Err: err}
	}
	e := &Error{Code: CodeInvalid, Detail: "the request does not match the API contract", Err: err}
	e.Fields = fieldErrors(err, "")
	return e
}

// wrongContentType reports whether kin-openapi refused the body for its
// Content-Type, which it says only in a RequestError's reason.
func wrongContentType(err error) bool {
	switch e := err.(type) {
	case openapi3.MultiError:
		return slices.ContainsFunc(e, wrongContentType)
	case *openapi3filter.RequestError:
		return e.RequestBody != nil && strings.HasPrefix(e.Reason, "header Content-Type has unexpected value")
	}
	if inner := errors.Unwrap(err); inner != nil {
		return wrongContentType(inner)
	}
	return false
}

// fieldErrors flattens kin-openapi's nested errors into one entry per field.
// field is the name known so far (a parameter, "body", or "" at the top).
// It switches on concrete types rather than errors.As, because errors.As
// would see through a RequestError and lose the parameter it names.
func fieldErrors(err error, field string) []FieldError {
	switch e := err.(type) {
	case openapi3.MultiError:
		var out []FieldError
		for _, inner := range e {
			out = append(out, fieldErrors(inner, field)...)
		}
		return out
	case *openapi3filter.RequestError:
		name := "request"
		switch {
		case e.Parameter != nil:
			name = e.Parameter.Name
		case e.RequestBody != nil:
			name = "body"
		}
		switch e.Err.(type) {
		case openapi3.MultiError, *openapi3.SchemaError:
			return fieldErrors(e.Err, name)
		}
		// Reason is kin-openapi's value-free summary ("value is required",
		// "failed to decode request body"); the cause may quote the input.
		msg := e.Reason
		var parseErr *openapi3filter.ParseError
		if errors.As(e.Err, &parseErr) {
			msg = parseReason(parseErr)
		} else if msg == "" && e.Err != nil {
			msg = e.Err.Error()
		}
		return []FieldError{{Field: name, Message: msg}}
	case *openapi3.SchemaError:
		name := field
		if ptr := e.JSONPointer(); len(ptr) > 0 {
			path := strings.Join(ptr, ".")
			if field == "" || field == "body" || field == "request" {
				name = path
			} else {
				name = field + "." + path
			}
		}
		// Reason, unlike Error(), never repeats the offending value.
		return []FieldError{{Field: name, Message: e.Reason}}
	}
	if inner := errors.Unwrap(err); inner != nil {
		return fieldErrors(inner, field)
	}
	if field == "" {
		field = "request"
	}
	return []FieldError{{Field: field, Message: err.Error()}}
}

// parseReason describes a parse failure without the Value kin-openapi's
// Error() would quote, since the value may be a secret sent by mistake.
func parseReason(e *openapi3filter.ParseError) string {
	for e != nil {
		if e.Reason != "" {
			return e.Reason
		}
		next, ok := e.Cause.(*openapi3filter.ParseError)
		if !ok {
			break
		}
		e = next
	}
	return "malformed value"
}
