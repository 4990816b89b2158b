package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/web"
)

// providerPage mirrors the list response.
type providerPage struct {
	Items []struct {
		Slug     string `json:"slug"`
		Name     string `json:"name"`
		AuthType string `json:"auth_type"`
	} `json:"items"`
	NextCursor *string `json:"next_cursor"`
}

var catalog = []web.ProviderInfo{
	{Slug: "schwab", Name: "Charles Schwab", AuthType: "oauth2"},
	{Slug: "sandbox", Name: "Sandbox Bank", AuthType: "none"},
	{Slug: "alpaca", Name: "Alpaca", AuthType: "api_key"},
}

func TestProvidersPagination(t *testing.T) {
	ts := MustServer(t, web.Options{Providers: catalog})

	var slugs []string
	next := ts.URL + "/api/v1/providers?limit=2"
	for pages := 0; next != ""; pages++ {
		require.Less(t, pages, 3, "pagination does not end")
		r := MustGet(t, next)
		require.Equal(t, http.StatusOK, r.Status, "%s", r.Body)
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		var page providerPage
		require.NoError(t, json.Unmarshal(r.Body, &page))
		for _, p := range page.Items {
			slugs = append(slugs, p.Slug)
		}
		next = ""
		if page.NextCursor != nil {
			next = ts.URL + "/api/v1/providers?limit=2&cursor=" + url.QueryEscape(*page.NextCursor)
		}
	}
	assert.Equal(t, []string{"alpaca", "sandbox", "schwab"}, slugs)
}

func TestProvidersLastPageHasNullCursor(t *testing.T) {
	ts := MustServer(t, web.Options{Providers: catalog})
	r := MustGet(t, ts.URL+"/api/v1/providers")
	require.Equal(t, http.StatusOK, r.Status)
	assert.JSONEq(t, `{"items":[
		{"slug":"alpaca","name":"Alpaca","auth_type":"api_key"},
		{"slug":"sandbox","name":"Sandbox Bank","auth_type":"none"},
		{"slug":"schwab","name":"Charles Schwab","auth_type":"oauth2"}],
		"next_cursor":null}`, string(r.Body))

	empty := MustServer(t, web.Options{})
	r = MustGet(t, empty.URL+"/api/v1/providers")
	require.Equal(t, http.StatusOK, r.Status)
	assert.JSONEq(t, `{"items":[],"next_cursor":null}`, string(r.Body))
}

func TestProvidersValidation(t *testing.T) {
	ts := MustServer(t, web.Options{Providers: catalog})
	tests := map[string]struct {
		query string
		field string
	}{
		"limit zero":      {"limit=0", "limit"},
		"limit too large": {"limit=101", "limit"},
		"limit not int":   {"limit=abc", "limit"},
		"cursor too long": {"cursor=" + strings.Repeat("a", 201), "cursor"},
		"cursor garbage":  {"cursor=%21%21", "cursor"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			r := MustGet(t, ts.URL+"/api/v1/providers?"+tt.query)
			p := MustProblem(t, r, http.StatusBadRequest, "/api/v1/providers")
			assert.Equal(t, "invalid", p.Code)
			require.NotEmpty(t, p.Errors, "%s", r.Body)
			assert.Equal(t, tt.field, p.Errors[0].Field)
			assert.NotEmpty(t, p.Errors[0].Message)
			assert.NotContains(t, p.Errors[0].Message, "abc", "messages must not echo values")
		})
	}
}
