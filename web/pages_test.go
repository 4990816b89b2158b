package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/commands/identity"
)

// MustPostForm submits an HTML form to url.
func MustPostForm(tb testing.TB, target string, form url.Values) response {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	require.NoError(tb, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return MustDo(tb, req)
}

// assertPage checks an HTML page that must not be cached, framed or leak
// its URL (which holds a token) through a Referer.
func assertPage(tb testing.TB, r response, status int, contains ...string) {
	tb.Helper()
	require.Equal(tb, status, r.Status, "%s", r.Body)
	assert.Equal(tb, "text/html; charset=UTF-8", r.Header.Get("Content-Type"))
	assert.Equal(tb, "no-store", r.Header.Get("Cache-Control"))
	assert.Equal(tb, "no-referrer", r.Header.Get("Referrer-Policy"))
	assert.Contains(tb, r.Header.Get("Content-Security-Policy"), "default-src 'none'")
	for _, s := range contains {
		assert.Contains(tb, string(r.Body), s)
	}
}

// Opening the mailed link only shows a form, so a prefetching mail scanner
// spends nothing; submitting it verifies.
func TestVerifyEmailPage(t *testing.T) {
	s := MustIdentityServer(t)
	s.Identity.Fail("spent", identity.ErrTokenNotFound)

	assertPage(t, MustGet(t, s.URL+"/verify-email?token=abc"), http.StatusOK, `name="token" value="abc"`, `action="/verify-email"`)
	assertPage(t, MustGet(t, s.URL+"/verify-email?token=%22%3E%3Cscript%3E"), http.StatusOK, `value="&#34;&gt;&lt;script&gt;"`)
	assertPage(t, MustGet(t, s.URL+"/verify-email"), http.StatusOK, "incomplete")

	assertPage(t, MustPostForm(t, s.URL+"/verify-email", url.Values{"token": {"abc"}}), http.StatusOK, "confirmed")
	assertPage(t, MustPostForm(t, s.URL+"/verify-email", url.Values{"token": {"spent"}}), http.StatusBadRequest, "invalid, already used or expired")
}

func TestResetPasswordPage(t *testing.T) {
	s := MustIdentityServer(t)
	s.Identity.Fail("spent", identity.ErrTokenNotFound)

	assertPage(t, MustGet(t, s.URL+"/reset-password?token=abc"), http.StatusOK, `type="password"`, `value="abc"`)
	r := MustPostForm(t, s.URL+"/reset-password", url.Values{"token": {"abc"}, "password": {"short"}})
	assertPage(t, r, http.StatusBadRequest, "must be at least 12 characters", `value="abc"`)
	assert.NotContains(t, string(r.Body), `value="short"`, "a refused password is not echoed")
	assertPage(t, MustPostForm(t, s.URL+"/reset-password", url.Values{"token": {"spent"}, "password": {"correct horse battery"}}),
		http.StatusBadRequest, "invalid, already used or expired")
	// A form can carry bytes that are not UTF-8; such a password could never
	// be typed at the JSON login, so the page refuses it as the API does.
	assertPage(t, MustPostForm(t, s.URL+"/reset-password", url.Values{"token": {"abc"}, "password": {"p\xe4ssword long enough"}}),
		http.StatusUnprocessableEntity, "not valid text", `value="abc"`)
	assertPage(t, MustPostForm(t, s.URL+"/reset-password", url.Values{"token": {"abc"}, "password": {"correct horse battery"}}),
		http.StatusOK, "Password changed")
}

// The mails link to the paths commands/identity declares; the pages must be
// served on exactly those, or every mailed link is a 404.
func TestPagesAreServedOnTheMailedLinkPaths(t *testing.T) {
	s := MustIdentityServer(t)
	for _, path := range []string{identity.VerifyEmailPath, identity.ResetPasswordPath} {
		assertPage(t, MustGet(t, s.URL+path+"?token=abc"), http.StatusOK, `action="`+path+`"`, `value="abc"`)
	}
}
