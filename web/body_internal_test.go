package web

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/labstack/echo/v4"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hostileBody is a refresh body with n members the contract does not define.
func hostileBody(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"refresh_token":"abc"`)
	for i := range n {
		fmt.Fprintf(&b, `,"k%d":1`, i)
	}
	b.WriteString("}")
	return []byte(b.String())
}

// refreshSchemaRoute is the spec route of POST /api/v1/tokens.
func refreshSchemaRoute(tb testing.TB) specRoutesEntry {
	tb.Helper()
	doc, _, err := loadSpec(context.Background())
	require.NoError(tb, err)
	route := newSpecRoutes(doc)["POST /api/v1/tokens"]
	require.NotNil(tb, route)
	return specRoutesEntry{route: route, schema: route.Operation.RequestBody.Value.Content.Get("application/json").Schema.Value}
}

// The scan decides about a body of 90,000 unknown members after reading
// the first few: it does not walk the other keys.
func TestScanStopsAtTheCap(t *testing.T) {
	body := hostileBody(90_000)
	scan := scanJSONBody(body, refreshSchemaRoute(t).schema)
	assert.Len(t, scan.contract, maxFieldErrors+1)
	assert.True(t, scan.stopped)
	assert.Less(t, scan.dec.InputOffset(), int64(1000), "of %d bytes", len(body))
}

func TestValidJSONText(t *testing.T) {
	for lit, want := range map[string]bool{
		`"plain"`:              true,
		`"p\u00e4ss"`:          true,
		`"😀 \ud83d\ude00"`:     true,
		`"\\ud800"`:            true, // an escaped backslash, then the letters
		`"\\\ud83d\ude00"`:     true,
		`"\ud800"`:             false,
		`"\ud800\u0041"`:       false,
		`"\ud800x"`:            false,
		`"\udc00"`:             false,
		`"\ude00\ud83d"`:       false,
		"\"p\xe4ss\"":          false,
		"\"\xed\xa0\x80\"":     false, // a surrogate encoded in UTF-8
		`"\ud83d\ude00\ud83d"`: false,
		`"tail \ud83d\`:        false,
		`"bad escape \uZZZZ"`:  true, // the decoder refuses it itself
	} {
		assert.Equal(t, want, validJSONText([]byte(lit)), lit)
	}
}

// The cap applies to every problem, whoever built its field list.
func TestProblemCapsFieldErrors(t *testing.T) {
	e := &Error{Code: CodeInvalid}
	for i := range 25 {
		e.Fields = append(e.Fields, FieldError{Field: fmt.Sprintf("f%d", i), Message: "bad"})
	}
	req, err := http.NewRequest(http.MethodPost, "/x", nil)
	require.NoError(t, err)
	p := problemFor(newTestContext(req), e)
	require.NotNil(t, p.Errors)
	assert.Len(t, *p.Errors, maxFieldErrors)
	require.NotNil(t, p.ErrorsOmitted)
	assert.Equal(t, 5, *p.ErrorsOmitted)

	e.Fields = e.Fields[:3]
	p = problemFor(newTestContext(req), e)
	assert.Len(t, *p.Errors, 3)
	assert.Nil(t, p.ErrorsOmitted)
}

// BenchmarkHostileBodyValidation compares, on the same 1 MiB body of
// 90,000 unknown members, the scan that now answers it with the schema
// validation that used to (kin-openapi collecting every error), measured
// in the same run.
func BenchmarkHostileBodyValidation(b *testing.B) {
	body := hostileBody(90_000)
	entry := refreshSchemaRoute(b)
	b.Run("scan", func(b *testing.B) {
		for b.Loop() {
			if s := scanJSONBody(body, entry.schema); len(s.contract) == 0 {
				b.Fatal("no errors")
			}
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/body")
	})
	b.Run("kin-openapi_baseline", func(b *testing.B) {
		errs := 0
		for b.Loop() {
			req, err := http.NewRequest(http.MethodPost, "/api/v1/tokens", strings.NewReader(string(body)))
			require.NoError(b, err)
			req.Header.Set("Content-Type", "application/json")
			err = openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
				Request: req, Route: entry.route, Options: validationOptions,
			})
			require.Error(b, err)
			errs = len(fieldErrors(err, ""))
		}
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/body")
		b.ReportMetric(float64(errs), "field-errors")
	})
}

// specRoutesEntry is a spec route and its JSON body schema.
type specRoutesEntry struct {
	route  *routers.Route
	schema *openapi3.Schema
}

// newTestContext is an Echo context for req outside any server.
func newTestContext(req *http.Request) echo.Context {
	return echo.New().NewContext(req, httptest.NewRecorder())
}
