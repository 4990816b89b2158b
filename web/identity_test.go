package web_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
)

// login posts a login for email and password.
func (s *identityServer) login(tb testing.TB, email, password string) response {
	tb.Helper()
	return MustCall(tb, http.MethodPost, s.URL+"/api/v1/sessions",
		fmt.Sprintf(`{"email":%q,"password":%q}`, email, password), "")
}

func TestLoginLockedAnswersAccountLockedWithRetryAfter(t *testing.T) {
	s := MustIdentityServer(t)
	s.Identity.Fail("locked@example.com", fmt.Errorf("login: %w", &user.LockedError{Until: testEpoch.Add(15 * time.Minute)}))
	s.Clock.Advance(30 * time.Second)

	r := s.login(t, "locked@example.com", "correct horse battery")
	p := MustProblem(t, r, http.StatusForbidden, "/api/v1/sessions")
	assert.Equal(t, "account_locked", p.Code)
	assert.Equal(t, "870", r.Header.Get("Retry-After"), "seconds until the lock ends, by the server's clock")
	assert.NotContains(t, string(r.Body), "2026", "the unlock instant is in Retry-After only")
}

func TestLoginUnverifiedAnswersEmailNotVerified(t *testing.T) {
	s := MustIdentityServer(t)
	s.Identity.Fail("new@example.com", user.ErrEmailNotVerified)
	p := MustProblem(t, s.login(t, "new@example.com", "correct horse battery"), http.StatusForbidden, "/api/v1/sessions")
	assert.Equal(t, "email_not_verified", p.Code)
}

// An unknown email and a wrong password must be indistinguishable: same
// status, same headers that matter, same body but for the trace id.
func TestLoginUnknownEmailAndWrongPasswordLookTheSame(t *testing.T) {
	s := MustIdentityServer(t)
	s.Identity.Fail("nobody@example.com", identity.ErrInvalidCredentials)
	unknown := s.login(t, "nobody@example.com", "correct horse battery")
	wrong := s.login(t, "ada@example.com", "wrong")

	require.Equal(t, http.StatusUnauthorized, unknown.Status)
	assert.Equal(t, unknown.Status, wrong.Status)
	for _, h := range []string{"Content-Type", "WWW-Authenticate", "Retry-After", "Cache-Control"} {
		assert.Equal(t, unknown.Header.Get(h), wrong.Header.Get(h), h)
	}
	assert.Equal(t, withoutTraceID(t, unknown.Body), withoutTraceID(t, wrong.Body))
	assert.Empty(t, wrong.Header.Get("WWW-Authenticate"), "a failed login is not a bearer challenge")
}

// withoutTraceID decodes a problem body and drops the one member that
// differs between any two requests.
func withoutTraceID(tb testing.TB, body []byte) map[string]any {
	tb.Helper()
	var m map[string]any
	require.NoError(tb, json.Unmarshal(body, &m))
	delete(m, "trace_id")
	return m
}

// Each error the identity service documents reaches the client as the
// problem the API promises, in one table.
func TestIdentityErrorMapping(t *testing.T) {
	s := MustIdentityServer(t)
	admin, _ := s.Identity.MustToken(t, user.RoleAdmin)
	s.Identity.Fail("taken@example.com", identity.ErrEmailTaken)
	s.Identity.Fail("bad-email", fmt.Errorf("register: %w", identity.ErrInvalidEmail))
	s.Identity.Fail("short@example.com", fmt.Errorf("register: %w", commands.ErrPasswordTooShort))
	s.Identity.Fail("common@example.com", commands.ErrPasswordCommon)
	s.Identity.Fail("spent-token", identity.ErrTokenNotFound)
	s.Identity.Fail("reused-refresh", fmt.Errorf("refresh: %w", identity.ErrInvalidRefreshToken))
	s.Identity.Fail("busy@example.com", fmt.Errorf("reset: %w", user.ErrTooManyResets))
	s.Identity.Fail("user", user.ErrLastRole)
	s.Identity.Fail("no such user", identity.ErrNotFound)

	tests := []struct {
		name, method, path, body, token string
		status                          int
		code, field                     string
	}{
		{"taken email", "POST", "/api/v1/users", `{"email":"taken@example.com","password":"correct horse battery"}`, "", 409, "conflict", ""},
		{"invalid email", "POST", "/api/v1/users", `{"email":"bad-email","password":"correct horse battery"}`, "", 422, "unprocessable", "email"},
		{"short password", "POST", "/api/v1/users", `{"email":"short@example.com","password":"short"}`, "", 400, "invalid", "password"},
		{"common password", "POST", "/api/v1/users", `{"email":"common@example.com","password":"password1234"}`, "", 400, "invalid", "password"},
		{"oversized password", "POST", "/api/v1/users", `{"email":"a@example.com","password":"` + strings.Repeat("p", 1025) + `"}`, "", 400, "invalid", "password"},
		{"unknown field", "POST", "/api/v1/users", `{"email":"a@example.com","password":"correct horse battery","role":"admin"}`, "", 400, "invalid", ""},
		{"spent verification token", "POST", "/api/v1/email-verifications", `{"token":"spent-token"}`, "", 400, "invalid", "token"},
		{"spent reset token", "POST", "/api/v1/password-resets", `{"token":"spent-token","password":"correct horse battery"}`, "", 400, "invalid", "token"},
		{"reset password too short", "POST", "/api/v1/password-resets", `{"token":"t","password":"short"}`, "", 400, "invalid", "password"},
		{"reused refresh token", "POST", "/api/v1/tokens", `{"refresh_token":"reused-refresh"}`, "", 401, "unauthorized", ""},
		{"another user's session", "GET", "/api/v1/sessions/" + uuid.NewString(), "", admin, 404, "not_found", ""},
		{"revoke another user's session", "DELETE", "/api/v1/sessions/" + uuid.NewString(), "", admin, 404, "not_found", ""},
		{"last role", "PUT", "/api/v1/admin/users/" + uuid.NewString() + "/roles", `{"roles":["user"]}`, admin, 409, "conflict", ""},
		{"unknown role", "PUT", "/api/v1/admin/users/" + uuid.NewString() + "/roles", `{"roles":["root"]}`, admin, 400, "invalid", ""},
		{"no roles", "PUT", "/api/v1/admin/users/" + uuid.NewString() + "/roles", `{"roles":[]}`, admin, 400, "invalid", ""},
		{"rotate unknown user", "POST", "/api/v1/admin/users/" + uuid.NewString() + "/rotations", `{"reason":"no such user"}`, admin, 404, "not_found", ""},
		{"rotation without reason", "POST", "/api/v1/admin/security/rotations", `{"reason":""}`, admin, 400, "invalid", "reason"},
		{"malformed session id", "GET", "/api/v1/sessions/not-a-uuid", "", admin, 400, "invalid", "id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := MustCall(t, tt.method, s.URL+tt.path, tt.body, tt.token)
			p := MustProblem(t, r, tt.status, tt.path)
			assert.Equal(t, tt.code, p.Code)
			if tt.field != "" {
				require.NotEmpty(t, p.Errors, "field errors")
				assert.Equal(t, tt.field, p.Errors[0].Field)
			}
			assert.NotContains(t, string(r.Body), "correct horse", "a password is never echoed")
		})
	}

	t.Run("too many resets still answers 202", func(t *testing.T) {
		for _, email := range []string{"busy@example.com", "nobody@example.com"} {
			r := MustCall(t, http.MethodPost, s.URL+"/api/v1/password-reset-tokens", `{"email":"`+email+`"}`, "")
			assert.Equal(t, http.StatusAccepted, r.Status, "%s: %s", email, r.Body)
			assert.Empty(t, r.Body)
		}
	})

	t.Run("a verification request answers 202 whatever the email", func(t *testing.T) {
		s.Identity.Fail("eager@example.com", fmt.Errorf("resend: %w", user.ErrTooManyVerificationRequests))
		s.Identity.Fail("verified@example.com", fmt.Errorf("resend: %w", user.ErrAlreadyVerified))
		var answers []response
		for _, email := range []string{"eager@example.com", "verified@example.com", "nobody@example.com"} {
			r := MustCall(t, http.MethodPost, s.URL+"/api/v1/email-verification-tokens", `{"email":"`+email+`"}`, "")
			assert.Equal(t, http.StatusAccepted, r.Status, "%s: %s", email, r.Body)
			assert.Empty(t, r.Body)
			answers = append(answers, r)
		}
		for _, r := range answers[1:] {
			assert.Equal(t, answers[0].Header.Get("Content-Type"), r.Header.Get("Content-Type"))
			assert.Equal(t, answers[0].Header.Get("Content-Length"), r.Header.Get("Content-Length"))
		}
		r := MustCall(t, http.MethodPost, s.URL+"/api/v1/email-verification-tokens", `{"email":"a@example.com","password":"x"}`, "")
		MustProblem(t, r, http.StatusBadRequest, "/api/v1/email-verification-tokens")
	})
}

// Tokens appear in the login and refresh answers and nowhere else, and no
// identity answer may be cached.
func TestIdentityResponses(t *testing.T) {
	s := MustIdentityServer(t)
	r := MustCall(t, http.MethodPost, s.URL+"/api/v1/users", `{"email":"ada@example.com","password":"correct horse battery"}`, "")
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	var u map[string]any
	require.NoError(t, json.Unmarshal(r.Body, &u))
	assert.ElementsMatch(t, []string{"id", "email", "email_verified", "roles", "created_at"}, keys(u))
	assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))

	r = s.login(t, "ada@example.com", "correct horse battery")
	require.Equal(t, http.StatusCreated, r.Status, "%s", r.Body)
	var tok struct {
		AccessToken  string `json:"access_token"`
		RefreshToken string `json:"refresh_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int    `json:"expires_in"`
		SessionID    string `json:"session_id"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &tok))
	assert.Equal(t, "Bearer", tok.TokenType)
	assert.Equal(t, 900, tok.ExpiresIn)
	assert.Equal(t, "no-store", r.Header.Get("Cache-Control"))

	r = MustCall(t, http.MethodGet, s.URL+"/api/v1/sessions", "", tok.AccessToken)
	require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
	assert.NotContains(t, string(r.Body), tok.AccessToken)
	assert.NotContains(t, string(r.Body), tok.RefreshToken)
	var list struct {
		Items []struct {
			ID      string `json:"id"`
			Current bool   `json:"current"`
		} `json:"items"`
		NextCursor *string `json:"next_cursor"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &list))
	require.Len(t, list.Items, 1)
	assert.Equal(t, tok.SessionID, list.Items[0].ID)
	assert.True(t, list.Items[0].Current)
	assert.Nil(t, list.NextCursor)

	r = MustCall(t, http.MethodDelete, s.URL+"/api/v1/sessions/current", "", tok.AccessToken)
	require.Equal(t, http.StatusNoContent, r.Status, "%s", r.Body)
	r = MustCall(t, http.MethodGet, s.URL+"/api/v1/users/me", "", tok.AccessToken)
	assertUnauthorized(t, r, `error="invalid_token"`)
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// A body of another media type is refused with 415 before it is read as
// JSON, and the problem does not echo the type the client sent.
func TestWrongContentTypeIsUnsupportedMediaType(t *testing.T) {
	s := MustIdentityServer(t)
	for _, ct := range []string{"text/plain; secret=hunter2", "application/x-www-form-urlencoded", ""} {
		req, err := http.NewRequest(http.MethodPost, s.URL+"/api/v1/sessions", strings.NewReader(loginBody))
		require.NoError(t, err)
		req.Header.Set("Content-Type", ct)
		r := MustDo(t, req)
		p := MustProblem(t, r, http.StatusUnsupportedMediaType, "/api/v1/sessions")
		assert.Equal(t, "unsupported_media_type", p.Code, ct)
		assert.Equal(t, "the request body must be application/json", p.Detail, ct)
		assert.NotContains(t, string(r.Body), "hunter2", "the submitted type is not echoed")
		assert.NotContains(t, string(r.Body), "text/plain", "the submitted type is not echoed")
	}
	req, err := http.NewRequest(http.MethodPost, s.URL+"/api/v1/sessions", strings.NewReader(loginBody))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	assert.Equal(t, http.StatusCreated, MustDo(t, req).Status, "parameters of application/json are fine")
}

// Every /api/v1 response is no-store, errors of the router included; other
// paths are left to their handlers.
func TestEveryAPIResponseIsNoStore(t *testing.T) {
	s := MustIdentityServer(t)
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{http.MethodGet, "/api/v1/providers", http.StatusOK},
		{http.MethodGet, "/api/v1/users/me", http.StatusUnauthorized},
		{http.MethodGet, "/api/v1/no-such-route", http.StatusNotFound},
		{http.MethodDelete, "/api/v1/providers", http.StatusMethodNotAllowed},
		{http.MethodGet, "/api/v1", http.StatusNotFound},
	} {
		r := MustCall(t, tc.method, s.URL+tc.path, "", "")
		require.Equal(t, tc.status, r.Status, "%s %s: %s", tc.method, tc.path, r.Body)
		assert.Equal(t, "no-store", r.Header.Get("Cache-Control"), "%s %s", tc.method, tc.path)
	}
	r := MustCall(t, http.MethodGet, s.URL+"/api/v1x", "", "")
	assert.Empty(t, r.Header.Get("Cache-Control"), "only the /api/v1 tree")
}
