package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/dashtam/dashtam/adapters/providers/schwab/schwabtest"
	"github.com/dashtam/dashtam/adapters/vault"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/commands/identity"
)

// connectionsServer is the real server with its public URL on the address
// it listens on, so that providers send the browser back to it.
type connectionsServer struct {
	*identityServer
	publicURL string
	// recorded holds every response body of the flow: the API's answers,
	// the pages the browser-like client opened.
	recorded *recorder
}

// freeAddr returns a loopback address no one listens on now. The public
// URL must name the listen address before the server starts (redirect
// URIs are registered with it), so port 0 does not do; another process
// taking the port in between fails the start loudly, never silently.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// startConnectionsServer starts the real server over a fresh database,
// with the public URL on its own address; change adjusts the environment
// further, knowing the public URL.
func startConnectionsServer(t *testing.T, change ...func(env map[string]string, publicURL string)) *connectionsServer {
	t.Helper()
	addr := freeAddr(t)
	public := "http://" + addr
	srv := startIdentityServer(t, func(env map[string]string) {
		env["DASHTAM_HTTP_ADDR"] = addr
		env["DASHTAM_PUBLIC_URL"] = public
		for _, f := range change {
			f(env, public)
		}
	})
	return &connectionsServer{identityServer: srv, publicURL: public, recorded: &recorder{}}
}

// recorder keeps response bodies and redirect targets, for the test that
// no secret appears in any of them.
type recorder struct {
	mu        sync.Mutex
	bodies    []string
	locations []string
}

func (r *recorder) add(body, location string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bodies = append(r.bodies, body)
	if location != "" {
		r.locations = append(r.locations, location)
	}
}

// Bodies returns every body recorded, joined.
func (r *recorder) Bodies() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.bodies, "\n")
}

// Locations returns every redirect target recorded.
func (r *recorder) Locations() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.locations...)
}

// RoundTrip sends req and records the answer's body and Location.
func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	r.add(string(b), resp.Header.Get("Location"))
	return resp, nil
}

// api sends a JSON request to the server and records the answer.
func (s *connectionsServer) api(method, path string, body any, token string) reply {
	r := s.client.Do(method, path, body, token)
	s.recorded.add(r.Raw, r.Header.Get("Location"))
	return r
}

// browser is an HTTP client as a browser without script: it follows
// redirects and records everything it receives.
func (s *connectionsServer) browser() *http.Client {
	return &http.Client{Transport: s.recorded, Timeout: 30 * time.Second}
}

// loaded is a page the browser ended on.
type loaded struct {
	URL    *url.URL
	Status int
	Body   string
	Header http.Header
}

func readPage(t *testing.T, resp *http.Response, err error) loaded {
	t.Helper()
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return loaded{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(b), Header: resp.Header}
}

// open loads u in the browser.
func (s *connectionsServer) open(t *testing.T, u string) loaded {
	t.Helper()
	resp, err := s.browser().Get(u)
	return readPage(t, resp, err)
}

// submitSandbox opens the sandbox's authorize page at authURL, fills its
// form as a person would (the fields as the page set them: the sandbox
// user, the checked persona, the signed request) and presses the button
// with decision, then follows the redirect to wherever it leads.
func (s *connectionsServer) submitSandbox(t *testing.T, authURL, decision string) loaded {
	t.Helper()
	page := s.open(t, authURL)
	require.Equal(t, http.StatusOK, page.Status, page.Body)
	action, fields := parseForm(t, page.Body)
	target, err := page.URL.Parse(action)
	require.NoError(t, err)
	fields.Set("decision", decision)
	resp, err := s.browser().PostForm(target.String(), fields)
	return readPage(t, resp, err)
}

// parseForm returns the action and the submitted fields of the first
// form of an HTML page: text and hidden inputs, and checked radios.
func parseForm(t *testing.T, body string) (string, url.Values) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(body))
	require.NoError(t, err)
	var action string
	found := false
	fields := url.Values{}
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			attr := map[string]string{}
			checked := false
			for _, a := range n.Attr {
				attr[a.Key] = a.Val
				if a.Key == "checked" {
					checked = true
				}
			}
			switch {
			case n.Data == "form" && !found:
				action, found = attr["action"], true
			case n.Data == "input" && attr["name"] != "":
				switch attr["type"] {
				case "hidden", "text", "":
					fields.Set(attr["name"], attr["value"])
				case "radio", "checkbox":
					if checked {
						fields.Set(attr["name"], attr["value"])
					}
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	require.True(t, found, "no form on the page: %s", body)
	return action, fields
}

// mustUser registers, verifies and logs in a user; it returns the access token.
func (s *connectionsServer) mustUser(t *testing.T, email string) string {
	t.Helper()
	const password = "a long and unusual passphrase"
	s.api("POST", "/api/v1/users", map[string]string{"email": email, "password": password}, "").Want(t, 201, "register "+email)
	token := mustMailToken(t, s.mailDir, email, identity.VerifyEmailPath)
	s.api("POST", "/api/v1/email-verifications", map[string]string{"token": token}, "").Want(t, 204, "verify "+email)
	login := s.api("POST", "/api/v1/sessions", map[string]string{"email": email, "password": password}, "").Want(t, 201, "login "+email)
	return login.Str("access_token")
}

// events lists a stream's event types, with the reason of failures. The
// events of the sync that follows an authorisation (Sync*), which runs on
// its own meanwhile, are left out: serve_syncs_test.go follows them.
func (s *connectionsServer) events(t *testing.T, stream string) []string {
	t.Helper()
	rows, err := s.pool.Query(context.Background(), `SELECT event_type || coalesce(':' || (payload->>'reason'), '')
		FROM events WHERE stream_id = $1 AND event_type NOT LIKE 'Sync%' ORDER BY version`, stream)
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var e string
		require.NoError(t, rows.Scan(&e))
		out = append(out, e)
	}
	require.NoError(t, rows.Err())
	return out
}

// storedTokens opens the vault row of a connection with the server's key
// and returns the provider tokens it holds: the test knows them so that
// it can look for them everywhere else.
func (s *connectionsServer) storedTokens(t *testing.T, id string) []string {
	t.Helper()
	var blob []byte
	require.NoError(t, s.pool.QueryRow(context.Background(), `SELECT blob FROM provider_credentials WHERE connection_id = $1`, id).Scan(&blob))
	k, err := vault.Parse(s.env["DASHTAM_ENCRYPTION_KEY"])
	require.NoError(t, err)
	plain, err := k.Open(uuid.MustParse(id), blob)
	require.NoError(t, err)
	var c commands.Credentials
	require.NoError(t, json.Unmarshal(plain, &c))
	require.NotEmpty(t, c.AccessToken)
	require.NotEmpty(t, c.RefreshToken)
	return []string{c.AccessToken, c.RefreshToken}
}

// assertNoSecrets stops the server and looks for every secret, as sent and
// URL-encoded, in the events and jobs tables, the server's logs and every
// response body recorded.
func (s *connectionsServer) assertNoSecrets(t *testing.T, secrets []string) {
	t.Helper()
	var events, jobs string
	require.NoError(t, s.pool.QueryRow(context.Background(),
		`SELECT coalesce(string_agg(payload::text || ' ' || metadata::text, E'\n'), '') FROM events`).Scan(&events))
	require.NoError(t, s.pool.QueryRow(context.Background(),
		`SELECT coalesce(string_agg(args::text || ' ' || coalesce(errors::text, ''), E'\n'), '') FROM river_job`).Scan(&jobs))
	require.NoError(t, s.stop())
	places := map[string]string{"the events table": events, "the jobs table": jobs, "the server's logs": s.logs.String(),
		"the responses": s.recorded.Bodies()}
	require.NotEmpty(t, events)
	require.NotEmpty(t, places["the server's logs"])
	checked := 0
	for i, secret := range secrets {
		require.GreaterOrEqual(t, len(secret), 12, "a secret too short to look for")
		for _, form := range []string{secret, url.QueryEscape(secret)} {
			for where, text := range places {
				checked++
				// Neither the secret nor the text is printed: the failure
				// says which secret and where, nothing more.
				assert.False(t, strings.Contains(text, form), "secret %d of %d (%d characters) found in %s", i+1, len(secrets), len(secret), where)
			}
		}
	}
	assert.Positive(t, checked)
}

// TestSandboxConnectionEndToEnd walks the whole flow against the real
// server and its mounted sandbox institution: a verified user connects,
// a browser-like client submits the sandbox's authorize form and lands on
// Dashtam's callback page, then the connection is read, renamed, its
// tokens refreshed and it is disconnected, each step recorded on its
// stream; no token, code or client secret of the sandbox appears in the
// log, the jobs, the server's logs or any answer.
func TestSandboxConnectionEndToEnd(t *testing.T) {
	srv := startConnectionsServer(t)
	token := srv.mustUser(t, "carol@example.com")

	providers := srv.api("GET", "/api/v1/providers", nil, "").Want(t, 200, "catalog")
	assert.Contains(t, providers.Raw, `"slug":"sandbox"`)

	created := srv.api("POST", "/api/v1/connections", map[string]string{"provider_slug": "sandbox", "alias": "Everyday"}, token).
		Want(t, 201, "connect")
	id := created.Str("id")
	assert.Equal(t, "/api/v1/connections/"+id, created.Header.Get("Location"))
	assert.Equal(t, "pending", created.Str("status"))
	assert.Equal(t, 600.0, created.Body["expires_in"])
	authURL := created.Str("authorization_url")
	require.True(t, strings.HasPrefix(authURL, srv.publicURL+"/sandbox/oauth/authorize?"), authURL)
	assert.Contains(t, authURL, "state="+url.QueryEscape(created.Str("state")))
	assert.Contains(t, authURL, "code_challenge_method=S256", "the sandbox takes PKCE")

	landed := srv.submitSandbox(t, authURL, "approve")
	assert.Equal(t, srv.publicURL+"/oauth/sandbox/callback", landed.URL.Scheme+"://"+landed.URL.Host+landed.URL.Path)
	require.Equal(t, http.StatusOK, landed.Status, landed.Body)
	assert.Contains(t, landed.Body, `id="connected"`)
	assert.Contains(t, landed.Body, "Your Sandbox Bank connection &#39;Everyday&#39; is connected. You can close this window.")
	assert.Equal(t, "no-store", landed.Header.Get("Cache-Control"))
	assert.Contains(t, landed.Header.Get("Content-Security-Policy"), "default-src 'none'")

	got := srv.api("GET", "/api/v1/connections/"+id, nil, token).Want(t, 200, "get")
	assert.Equal(t, "active", got.Str("status"))
	assert.NotEmpty(t, got.Str("connected_at"))
	assert.NotEmpty(t, got.Str("access_expires_at"))
	assert.NotEmpty(t, got.Str("reauthorize_by"), "the sandbox says when its refresh token ends")
	assert.Nil(t, got.Body["last_sync_at"])
	tokens := srv.storedTokens(t, id)

	renamed := srv.api("PATCH", "/api/v1/connections/"+id, map[string]string{"alias": "Daily"}, token).Want(t, 200, "rename")
	assert.Equal(t, "Daily", renamed.Str("alias"))

	refreshed := srv.api("POST", "/api/v1/connections/"+id+"/token-refreshes", nil, token).Want(t, 200, "refresh")
	assert.Equal(t, id, refreshed.Str("connection_id"))
	assert.ElementsMatch(t, []string{"connection_id", "access_expires_at", "reauthorize_by", "position"}, slices.Collect(maps.Keys(refreshed.Body)),
		"expiries and the position only: %s", refreshed.Raw)
	assert.Equal(t, got.Str("reauthorize_by"), refreshed.Str("reauthorize_by"), "a refresh never extends the sandbox's authorisation")
	tokens = append(tokens, srv.storedTokens(t, id)...)
	assert.NotEqual(t, tokens[0], tokens[2], "the refresh stored a new access token")

	srv.api("DELETE", "/api/v1/connections/"+id, nil, token).Want(t, 204, "disconnect")
	gone := srv.api("GET", "/api/v1/connections/"+id, nil, token).Want(t, 200, "get after disconnect")
	assert.Equal(t, "disconnected", gone.Str("status"))
	assert.NotEmpty(t, gone.Str("disconnected_at"))
	assert.Nil(t, gone.Body["access_expires_at"])
	p := srv.api("DELETE", "/api/v1/connections/"+id, nil, token).Want(t, 409, "disconnect again")
	assert.Equal(t, "connection_disconnected", p.Str("code"))
	var left int
	require.NoError(t, srv.pool.QueryRow(context.Background(), `SELECT count(*) FROM provider_credentials WHERE connection_id = $1`, id).Scan(&left))
	assert.Zero(t, left, "the credentials are destroyed")
	var revoked bool
	require.NoError(t, srv.pool.QueryRow(context.Background(), `SELECT (payload->>'revoked_at_provider')::boolean FROM events
		WHERE stream_id = $1 AND event_type = 'ProviderDisconnectionSucceeded'`, id).Scan(&revoked))
	assert.True(t, revoked, "the sandbox revoked its grant")

	assert.Equal(t, []string{"ProviderConnectionAttempted", "ProviderConnectionSucceeded", "ProviderConnectionRenamed",
		"ProviderTokenRefreshAttempted", "ProviderTokenRefreshSucceeded", "ProviderDisconnectionAttempted",
		"ProviderDisconnectionSucceeded"}, srv.events(t, id))

	// The secrets the sandbox handed out: its code (in the redirect the
	// browser followed), the tokens (from the vault, with the server's
	// key) and the client secret the server derives, proven to be the
	// real one by the token endpoint, which authenticates the client
	// before it looks at the grant.
	var secrets []string
	for _, loc := range srv.recorded.Locations() {
		if u, err := url.Parse(loc); err == nil && u.Query().Get("code") != "" {
			secrets = append(secrets, u.Query().Get("code"))
		}
	}
	require.Len(t, secrets, 1, "the one code of the flow")
	clientSecret := fmt.Sprintf("%x", deriveKey([]byte(srv.env["DASHTAM_JWT_SECRET"]), "dashtam sandbox client secret v1"))
	req, err := http.NewRequest("POST", srv.publicURL+"/sandbox/oauth/token", strings.NewReader("grant_type=refresh_token&refresh_token=nope"))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(sandboxClientID, clientSecret)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode, "the derived client secret is the sandbox's (401 would mean it is not)")
	srv.assertNoSecrets(t, append(append(secrets, tokens...), clientSecret))
}

// TestConnectionListEndToEnd: the list, fed by the connections projector,
// shows a user's connections, and only theirs, once the projector has
// caught up with the log.
func TestConnectionListEndToEnd(t *testing.T) {
	srv := startConnectionsServer(t)
	token := srv.mustUser(t, "lena@example.com")
	other := srv.mustUser(t, "omar@example.com")
	first := srv.api("POST", "/api/v1/connections", map[string]string{"provider_slug": "sandbox", "alias": "One"}, token).Want(t, 201, "connect")
	srv.submitSandbox(t, first.Str("authorization_url"), "approve")
	second := srv.api("POST", "/api/v1/connections", map[string]string{"provider_slug": "sandbox", "alias": "Two"}, token).Want(t, 201, "connect")
	srv.api("POST", "/api/v1/connections", map[string]string{"provider_slug": "sandbox", "alias": "Theirs"}, other).Want(t, 201, "connect")

	probe := srv.api("GET", "/api/v1/connections", nil, token)
	if probe.Status == http.StatusServiceUnavailable && strings.Contains(probe.Raw, "not configured") {
		t.Skip("GET /api/v1/connections is not wired: serve.go must set web.Options.ConnectionList = projections.ConnectionReader{Pool: s.pool}")
	}
	type page struct {
		Items []struct {
			ID     string `json:"id"`
			Alias  string `json:"alias"`
			Status string `json:"status"`
		} `json:"items"`
		NextCursor *string `json:"next_cursor"`
	}
	// The read model trails the log by the projector's lag: poll until it
	// shows both connections as the stream does.
	var first1, first2 page
	require.Eventually(t, func() bool {
		r := srv.client.Do("GET", "/api/v1/connections?limit=1", nil, token).Want(t, 200, "list")
		first1 = page{}
		require.NoError(t, json.Unmarshal([]byte(r.Raw), &first1))
		if len(first1.Items) != 1 || first1.Items[0].Status != "active" || first1.NextCursor == nil {
			return false
		}
		r = srv.client.Do("GET", "/api/v1/connections?limit=1&cursor="+url.QueryEscape(*first1.NextCursor), nil, token).Want(t, 200, "page 2")
		first2 = page{}
		require.NoError(t, json.Unmarshal([]byte(r.Raw), &first2))
		return len(first2.Items) == 1
	}, 20*time.Second, 20*time.Millisecond)
	assert.Equal(t, first.Str("id"), first1.Items[0].ID, "oldest first")
	assert.Equal(t, "One", first1.Items[0].Alias)
	assert.Equal(t, second.Str("id"), first2.Items[0].ID)
	assert.Equal(t, "pending", first2.Items[0].Status)
	assert.Nil(t, first2.NextCursor, "the last page")
	theirs := srv.client.Do("GET", "/api/v1/connections", nil, other).Want(t, 200, "the other user's list")
	assert.NotContains(t, theirs.Raw, first.Str("id"))
}

// TestSchwabConnectionEndToEnd connects through Schwab's own dialect: the
// server's SCHWAB_* point at a schwabtest fake whose registered callback is
// the server's; the fake's approval redirects with the code's "@" sent as
// %40, which the callback must decode exactly once. No token, code or
// client secret of the fake appears anywhere the flow leaves text.
func TestSchwabConnectionEndToEnd(t *testing.T) {
	var fake *schwabtest.Fake
	srv := startConnectionsServer(t, func(env map[string]string, public string) {
		fake = schwabtest.New(t, schwabtest.Options{RedirectURI: public + "/oauth/schwab/callback"})
		env["DASHTAM_PROVIDERS"] = "sandbox,schwab"
		env["SCHWAB_CLIENT_ID"] = fake.ClientID()
		env["SCHWAB_CLIENT_SECRET"] = fake.ClientSecret()
		env["SCHWAB_REDIRECT_URI"] = fake.RedirectURI()
		env["SCHWAB_AUTH_URL"] = fake.AuthURL()
		env["SCHWAB_TOKEN_URL"] = fake.TokenURL()
		env["SCHWAB_API_BASE_URL"] = fake.APIBaseURL()
		env["DASHTAM_ID_KEY"] = base64.StdEncoding.EncodeToString([]byte(strings.Repeat("i", 32)))
	})
	token := srv.mustUser(t, "dana@example.com")
	catalog := srv.api("GET", "/api/v1/providers", nil, "").Want(t, 200, "catalog")
	assert.Contains(t, catalog.Raw, `{"auth_type":"oauth2","name":"Charles Schwab","slug":"schwab"}`)

	created := srv.api("POST", "/api/v1/connections", map[string]string{"provider_slug": "schwab", "alias": "Brokerage"}, token).
		Want(t, 201, "connect")
	id := created.Str("id")
	authURL := created.Str("authorization_url")
	require.True(t, strings.HasPrefix(authURL, fake.AuthURL()+"?"), authURL)

	callback := fake.ApproveURL(t, authURL)
	require.True(t, strings.HasPrefix(callback, srv.publicURL+"/oauth/schwab/callback?"), callback)
	require.Contains(t, callback, "%40", "Schwab sends the code's @ URL-encoded")
	landed := srv.open(t, callback)
	require.Equal(t, http.StatusOK, landed.Status, landed.Body)
	assert.Contains(t, landed.Body, "Your Charles Schwab connection &#39;Brokerage&#39; is connected.")
	assert.Equal(t, 1, fake.Calls(schwabtest.EndpointToken), "one code exchange")

	got := srv.api("GET", "/api/v1/connections/"+id, nil, token).Want(t, 200, "get")
	assert.Equal(t, "active", got.Str("status"))
	connected, err := time.Parse(time.RFC3339Nano, got.Str("connected_at"))
	require.NoError(t, err)
	reauth, err := time.Parse(time.RFC3339Nano, got.Str("reauthorize_by"))
	require.NoError(t, err)
	assert.InDelta(t, schwabtest.RefreshTokenLifetime.Seconds(), reauth.Sub(connected).Seconds(), 60,
		"Schwab's refresh token ends seven days after the authorisation")
	tokens := srv.storedTokens(t, id)

	refreshed := srv.api("POST", "/api/v1/connections/"+id+"/token-refreshes", nil, token).Want(t, 200, "refresh")
	assert.Equal(t, got.Str("reauthorize_by"), refreshed.Str("reauthorize_by"), "a refresh keeps Schwab's seven days")
	assert.Equal(t, 2, fake.Calls(schwabtest.EndpointToken), "one refresh")
	tokens = append(tokens, srv.storedTokens(t, id)...)

	// The same callback again: the state is spent, nothing is exchanged.
	replay := srv.open(t, callback)
	assert.Equal(t, http.StatusBadRequest, replay.Status)
	assert.Contains(t, replay.Body, "unknown or was already used")
	assert.Equal(t, 2, fake.Calls(schwabtest.EndpointToken), "a replayed code is never exchanged")

	srv.api("DELETE", "/api/v1/connections/"+id, nil, token).Want(t, 204, "disconnect")
	assert.Equal(t, "disconnected", srv.api("GET", "/api/v1/connections/"+id, nil, token).Want(t, 200, "get").Str("status"))
	assert.Equal(t, []string{"ProviderConnectionAttempted", "ProviderConnectionSucceeded", "ProviderTokenRefreshAttempted",
		"ProviderTokenRefreshSucceeded", "ProviderDisconnectionAttempted", "ProviderDisconnectionSucceeded"}, srv.events(t, id))

	secrets := fake.Secrets()
	require.GreaterOrEqual(t, len(secrets), 4, "the client secret, a code, access and refresh tokens")
	srv.assertNoSecrets(t, append(secrets, tokens...))
}

// TestConnectionRefusalsEndToEnd sends the real server what it must
// refuse, and the callbacks that must fail, and checks what each leaves
// on the connection's stream.
func TestConnectionRefusalsEndToEnd(t *testing.T) {
	srv := startConnectionsServer(t)
	token := srv.mustUser(t, "erin@example.com")
	stranger := srv.mustUser(t, "frank@example.com")
	connect := func(slug, alias string, who string) reply {
		return srv.api("POST", "/api/v1/connections", map[string]string{"provider_slug": slug, "alias": alias}, who)
	}

	p := connect("nope", "A", token).Want(t, 404, "unknown provider")
	assert.Equal(t, "not_found", p.Str("code"))
	assert.Contains(t, p.Raw, `"field":"provider_slug"`)
	// Each connect spends the user's provider_connect allowance (5 a
	// minute), refused ones too: the refusals get a user of their own.
	refused := srv.mustUser(t, "grace@example.com")
	for _, alias := range []string{"", "   ", strings.Repeat("x", 65), "a\u200bb", "a\u202eb"} {
		p = connect("sandbox", alias, refused).Want(t, 422, fmt.Sprintf("alias %q", alias))
		assert.Equal(t, "unprocessable", p.Str("code"))
		assert.Contains(t, p.Raw, `"field":"alias"`)
	}
	mine := connect("sandbox", "Household", token).Want(t, 201, "connect")
	p = connect("sandbox", "household", token).Want(t, 409, "the same alias, another case")
	assert.Equal(t, "conflict", p.Str("code"))
	connect("sandbox", "Household", stranger).Want(t, 201, "another user's aliases are theirs")

	path := "/api/v1/connections/" + mine.Str("id")
	foreign := srv.api("GET", path, nil, stranger).Want(t, 404, "another user's connection")
	missing := srv.api("GET", "/api/v1/connections/"+uuid.NewString(), nil, stranger).Want(t, 404, "a missing connection")
	assert.Equal(t, missing.Str("detail"), foreign.Str("detail"))
	assert.Equal(t, missing.Str("code"), foreign.Str("code"))
	srv.api("PATCH", path, map[string]string{"alias": "Mine"}, stranger).Want(t, 404, "renaming another user's")
	srv.api("DELETE", path, nil, stranger).Want(t, 404, "disconnecting another user's")
	srv.api("GET", "/api/v1/connections/not-a-uuid", nil, token).Want(t, 400, "a malformed id")
	p = srv.api("POST", path+"/token-refreshes", nil, token).Want(t, 409, "refreshing a pending connection")
	assert.Equal(t, "connection_not_active", p.Str("code"))

	// A callback without state did not come from an authorisation we started.
	page := srv.open(t, srv.publicURL+"/oauth/sandbox/callback?code=whatever")
	assert.Equal(t, http.StatusBadRequest, page.Status)
	assert.Contains(t, page.Body, `id="not-connected"`)
	assert.Equal(t, []string{"ProviderConnectionAttempted"}, srv.events(t, mine.Str("id")), "nothing is recorded")

	// The user declines at the sandbox: the page says so, the connection fails.
	declined := srv.submitSandbox(t, mine.Str("authorization_url"), "deny")
	assert.Equal(t, http.StatusOK, declined.Status, declined.Body)
	assert.Equal(t, "access_denied", declined.URL.Query().Get("error"))
	assert.Contains(t, declined.Body, "You declined access at Sandbox Bank")
	assert.Equal(t, "failed", srv.api("GET", path, nil, token).Want(t, 200, "get").Str("status"))
	assert.Equal(t, []string{"ProviderConnectionAttempted", "ProviderConnectionFailed:access_denied"}, srv.events(t, mine.Str("id")))
	connect("sandbox", "Household", token).Want(t, 201, "a failed connection frees its alias")

	// A replayed state. After a success it changes nothing but the page;
	// while a re-authorisation is pending it fails that authorisation, so
	// a stolen callback URL cannot be used to complete someone's flow.
	token = stranger
	ok := connect("sandbox", "Savings", token).Want(t, 201, "connect")
	landed := srv.submitSandbox(t, ok.Str("authorization_url"), "approve")
	require.Equal(t, http.StatusOK, landed.Status, landed.Body)
	again := srv.open(t, landed.URL.String())
	assert.Equal(t, http.StatusBadRequest, again.Status)
	assert.Contains(t, again.Body, "unknown or was already used")
	assert.Equal(t, []string{"ProviderConnectionAttempted", "ProviderConnectionSucceeded"}, srv.events(t, ok.Str("id")))
	reauth := srv.api("POST", "/api/v1/connections/"+ok.Str("id")+"/reauthorizations", nil, token).Want(t, 201, "reauthorize")
	assert.NotEqual(t, ok.Str("state"), reauth.Str("state"))
	again = srv.open(t, landed.URL.String())
	assert.Equal(t, http.StatusBadRequest, again.Status)
	assert.Equal(t, []string{"ProviderConnectionAttempted", "ProviderConnectionSucceeded", "ProviderConnectionAttempted",
		"ProviderConnectionFailed:invalid_state"}, srv.events(t, ok.Str("id")))
	assert.Equal(t, "active", srv.api("GET", "/api/v1/connections/"+ok.Str("id"), nil, token).Want(t, 200, "get").Str("status"),
		"a failed re-authorisation leaves the connection as it was")
}
