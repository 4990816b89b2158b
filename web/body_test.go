package web_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/user"
)

// unknownMembers is a body of n members the contract does not define,
// padded to about size bytes.
func unknownMembers(n int) string {
	var b strings.Builder
	b.WriteString(`{"refresh_token":"abc"`)
	for i := range n {
		fmt.Fprintf(&b, `,"k%d":1`, i)
	}
	b.WriteString("}")
	return b.String()
}

// A 1 MiB body of 90,000 unknown members used to answer a 5.7 MB problem
// listing every one. The problem now lists 20 and says more were left out,
// and nothing reaches the identity service.
func TestUnknownMembersAnswerABoundedProblem(t *testing.T) {
	s := MustIdentityServer(t)
	body := unknownMembers(90_000)
	require.Greater(t, len(body), 900_000)
	require.LessOrEqual(t, len(body), 1<<20)
	r := MustCall(t, http.MethodPost, s.URL+"/api/v1/tokens", body, "")
	p := MustProblem(t, r, http.StatusBadRequest, "/api/v1/tokens")
	assert.Equal(t, "invalid", p.Code)
	require.Len(t, p.Errors, 20)
	assert.Equal(t, field{Field: "k0", Message: "is not a member the API defines"}, p.Errors[0])
	require.NotNil(t, p.ErrorsOmitted)
	assert.GreaterOrEqual(t, *p.ErrorsOmitted, 1)
	assert.Less(t, len(r.Body), 4096, "the answer is a few KB whatever the body")
}

// A member name is echoed only when it is a short plain identifier.
func TestUnknownMemberNamesAreEchoedOnlyWhenPlain(t *testing.T) {
	s := MustIdentityServer(t)
	long := strings.Repeat("x", 100)
	for body, want := range map[string]string{
		`{"refresh_token":"abc","role":"admin"}`:          "role",
		`{"refresh_token":"abc","` + long + `":1}`:        "body",
		`{"refresh_token":"abc","a\nb":1}`:                "body",
		`{"refresh_token":"abc","<script>":1}`:            "body",
		`{"refresh_token":"abc","a\u0000":1}`:             "body",
		"{\"refresh_token\":\"abc\",\"r\xffle\":1}":       "body",
		`{"refresh_token":{"nested":{"deeper":"value"}}}`: "refresh_token",
		`{"refresh_token":["a","b"]}`:                     "refresh_token",
	} {
		r := MustCall(t, http.MethodPost, s.URL+"/api/v1/tokens", body, "")
		p := MustProblem(t, r, http.StatusBadRequest, "/api/v1/tokens")
		require.NotEmpty(t, p.Errors, body)
		assert.Equal(t, want, p.Errors[0].Field, body)
		assert.NotContains(t, string(r.Body), long, body)
		assert.NotContains(t, string(r.Body), "<script>", body)
	}
}

// Exactly one JSON value per body, and each member once: what the validator
// checks and what the handler receives cannot differ.
func TestBodyIsOneJSONValueWithUniqueMembers(t *testing.T) {
	s := MustIdentityServer(t)
	for _, tc := range []struct {
		body, field, message string
	}{
		{`{"refresh_token":"abc"} {"refresh_token":"def"}`, "body", "has data after the JSON value"},
		{`{"refresh_token":"abc"}garbage`, "body", "has data after the JSON value"},
		{`{"refresh_token":"abc"}}`, "body", "has data after the JSON value"},
		{`{"refresh_token":"abc","refresh_token":"def"}`, "refresh_token", "appears more than once"},
		{`{"refresh_token":"abc"`, "body", "is not valid JSON (at byte 22)"},
		{`{"refresh_token":"abc",}`, "body", "is not valid JSON (at byte 23)"},
		// JSON has no raw control characters in strings: they must be escaped.
		{"{\"refresh_token\":\"a\x00b\"}", "body", "is not valid JSON (at byte 18)"},
	} {
		r := MustCall(t, http.MethodPost, s.URL+"/api/v1/tokens", tc.body, "")
		p := MustProblem(t, r, http.StatusBadRequest, "/api/v1/tokens")
		assert.Equal(t, "invalid", p.Code, tc.body)
		require.NotEmpty(t, p.Errors, tc.body)
		assert.Equal(t, field{Field: tc.field, Message: tc.message}, p.Errors[0], tc.body)
	}
	r := MustCall(t, http.MethodPost, s.URL+"/api/v1/tokens", "\n {\"refresh_token\":\"abc\"} \r\n\t", "")
	assert.Equal(t, http.StatusOK, r.Status, "whitespace around the value is fine: %s", r.Body)
}

// An array beyond its maxItems stops the scan at the first extra item.
func TestOverlongArrayIsRefusedAtItsLimit(t *testing.T) {
	s := MustIdentityServer(t)
	admin, _ := s.Identity.MustToken(t, user.RoleAdmin)
	roles := `{"roles":["user"` + strings.Repeat(`,"user"`, 100_000) + `]}`
	path := "/api/v1/admin/users/" + "0190a6f0-0000-7000-8000-000000000001" + "/roles"
	p := MustProblem(t, MustCall(t, http.MethodPut, s.URL+path, roles, admin), http.StatusBadRequest, path)
	assert.Equal(t, []field{{Field: "roles", Message: "must have at most 4 items"}}, p.Errors)
}

// Go's JSON decoder replaces invalid UTF-8 and lone surrogates with U+FFFD
// without a word, so "pässword" sent as Latin-1 would have set another
// password than the one typed. Such text is refused with 422, in every
// string of every body.
func TestInvalidUTF8IsUnprocessable(t *testing.T) {
	s := MustIdentityServer(t)
	admin, _ := s.Identity.MustToken(t, user.RoleAdmin)
	for _, tc := range []struct {
		name, method, path, body, token, field string
	}{
		{"latin-1 password", "POST", "/api/v1/users", "{\"email\":\"ada@example.com\",\"password\":\"p\xe4ssword and more\"}", "", "password"},
		{"truncated sequence", "POST", "/api/v1/sessions", "{\"email\":\"ada@example.com\",\"password\":\"abc\xe2\x82\"}", "", "password"},
		{"lone high surrogate", "POST", "/api/v1/users", `{"email":"ada@example.com","password":"\ud800 and more text"}`, "", "password"},
		{"lone low surrogate", "POST", "/api/v1/password-resets", `{"token":"t","password":"x\udc00 and more text"}`, "", "password"},
		{"swapped surrogates", "POST", "/api/v1/users", `{"email":"ada@example.com","password":"\ude00\ud83d and more"}`, "", "password"},
		{"email", "POST", "/api/v1/users", "{\"email\":\"ad\xc3@example.com\",\"password\":\"correct horse battery\"}", "", "email"},
		{"token", "POST", "/api/v1/tokens", "{\"refresh_token\":\"\xff\"}", "", "refresh_token"},
		{"reason", "POST", "/api/v1/admin/security/rotations", "{\"reason\":\"stolen \xc0\xaf\"}", admin, "reason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := MustCall(t, tc.method, s.URL+tc.path, tc.body, tc.token)
			p := MustProblem(t, r, http.StatusUnprocessableEntity, tc.path)
			assert.Equal(t, "unprocessable", p.Code)
			assert.Equal(t, []field{{Field: tc.field, Message: "is not valid UTF-8"}}, p.Errors)
		})
	}

	before := len(s.Identity.Passwords())
	r := MustCall(t, http.MethodPost, s.URL+"/api/v1/users", `{"email":"ada@example.com","password":"p\u00e4ssword \ud83d\ude00 and more"}`, "")
	require.Equal(t, http.StatusCreated, r.Status, "escaped and paired surrogates are fine: %s", r.Body)
	r = MustCall(t, http.MethodPost, s.URL+"/api/v1/users", `{"email":"ada@example.com","password":"pässword 😀 and more"}`, "")
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	assert.Equal(t, []string{"pässword 😀 and more", "pässword 😀 and more"}, s.Identity.Passwords()[before:])
}

// Text that ends up in events and logs refuses control characters with a
// 422 naming the field: a NUL in a rotation's reason used to answer 500,
// because PostgreSQL's jsonb cannot hold it. A password is hashed, never
// stored or shown, so it may hold any character.
func TestControlCharactersInTextAreUnprocessable(t *testing.T) {
	s := MustIdentityServer(t)
	admin, _ := s.Identity.MustToken(t, user.RoleAdmin)
	rotate := "/api/v1/admin/security/rotations"
	userRotate := "/api/v1/admin/users/0190a6f0-0000-7000-8000-000000000001/rotations"
	for _, tc := range []struct {
		name, path, body, field string
	}{
		{"NUL in a reason", rotate, `{"reason":"laptop\u0000stolen"}`, "reason"},
		{"newline in a reason", userRotate, `{"reason":"laptop stolen\nforged log line"}`, "reason"},
		{"escape in a reason", rotate, `{"reason":"\u001b[31mred"}`, "reason"},
		{"C1 control", rotate, `{"reason":"a\u0085b"}`, "reason"},
		{"DEL", rotate, `{"reason":"a\u007fb"}`, "reason"},
		{"bidi override", rotate, `{"reason":"approved \u202egnp.exe"}`, "reason"},
		{"bidi isolate", rotate, `{"reason":"approved \u2066x\u2069"}`, "reason"},
		{"line separator", rotate, `{"reason":"a\u2028b"}`, "reason"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := MustCall(t, http.MethodPost, s.URL+tc.path, tc.body, admin)
			p := MustProblem(t, r, http.StatusUnprocessableEntity, tc.path)
			assert.Equal(t, "unprocessable", p.Code)
			assert.Equal(t, []field{{Field: tc.field, Message: "must not contain control characters"}}, p.Errors)
		})
	}
	for _, tc := range []struct{ path, body, field string }{
		{"/api/v1/users", `{"email":"ada@example.com\u0000","password":"correct horse battery"}`, "email"},
		{"/api/v1/password-reset-tokens", `{"email":"ada@exam\tple.com"}`, "email"},
		{"/api/v1/email-verifications", `{"token":"abc\u0000"}`, "token"},
	} {
		p := MustProblem(t, MustCall(t, http.MethodPost, s.URL+tc.path, tc.body, ""), http.StatusUnprocessableEntity, tc.path)
		assert.Equal(t, tc.field, p.Errors[0].Field, tc.body)
	}

	// The schema answers first: a reason both too long and with a NUL is a 400.
	r := MustCall(t, http.MethodPost, s.URL+rotate, `{"reason":"`+strings.Repeat("a", 501)+`\u0000"}`, admin)
	MustProblem(t, r, http.StatusBadRequest, rotate)

	r = MustCall(t, http.MethodPost, s.URL+rotate, `{"reason":"laptop stolen, ticket 42 – “urgent” ✓"}`, admin)
	assert.Equal(t, http.StatusOK, r.Status, "punctuation and symbols are text: %s", r.Body)

	before := len(s.Identity.Passwords())
	r = MustCall(t, http.MethodPost, s.URL+"/api/v1/users", `{"email":"ada@example.com","password":"tab\there and \u0001 there"}`, "")
	require.Equal(t, http.StatusCreated, r.Status, "a password may hold controls: %s", r.Body)
	assert.Equal(t, []string{"tab\there and \x01 there"}, s.Identity.Passwords()[before:])
}

// BenchmarkHostileBody measures the answer to 90,000 unknown members
// (about 1 MiB) through the whole server, beside a valid refresh through
// the same server as the baseline.
func BenchmarkHostileBody(b *testing.B) {
	s := MustIdentityServer(b)
	hostile := []byte(unknownMembers(90_000))
	for _, bc := range []struct {
		name string
		body []byte
		want int
	}{
		{"valid_refresh_baseline", []byte(`{"refresh_token":"abc"}`), http.StatusOK},
		{"90000_unknown_members", hostile, http.StatusBadRequest},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var out int
			for b.Loop() {
				req, err := http.NewRequest(http.MethodPost, s.URL+"/api/v1/tokens", bytes.NewReader(bc.body))
				require.NoError(b, err)
				req.Header.Set("Content-Type", "application/json")
				r := MustDo(b, req)
				if r.Status != bc.want {
					b.Fatalf("status %d: %s", r.Status, r.Body)
				}
				out = len(r.Body)
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/req")
			b.ReportMetric(float64(out), "response-bytes")
		})
	}
}
