package webhook_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/adapters/webhook"
	"github.com/dashtam/dashtam/commands/webhooks"
)

// TestSignMatchesTheSpecification signs the Standard Webhooks reference
// example (its libraries' TestWebhookSign): secret, message id, timestamp
// and payload give exactly the published signature.
func TestSignMatchesTheSpecification(t *testing.T) {
	key, err := webhook.DecodeSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	require.NoError(t, err)
	at := time.Unix(1614265330, 0)
	body := []byte(`{"test": 2432232314}`)
	sig := webhook.Sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", at, body)
	assert.Equal(t, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", sig)
	assert.True(t, webhook.Verify(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", at, body, "v1,bogus "+sig))
	assert.False(t, webhook.Verify(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", at, []byte(`{"test": 2432232315}`), sig))
	assert.False(t, webhook.Verify(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", at.Add(time.Second), body, sig))
}

// TestPolicyRefusesPrivateAddresses: https only, no credentials in the
// URL, and no host on or resolving to a loopback, private, link-local,
// unique-local, carrier-grade NAT or metadata address, however written.
func TestPolicyRefusesPrivateAddresses(t *testing.T) {
	names := map[string][]netip.Addr{
		"hooks.example.com":   {netip.MustParseAddr("93.184.215.14")},
		"rebind.example.com":  {netip.MustParseAddr("93.184.215.14"), netip.MustParseAddr("169.254.169.254")},
		"inside.example.com":  {netip.MustParseAddr("10.1.2.3")},
		"ula.example.com":     {netip.MustParseAddr("fd00:ec2::254")},
		"nowhere.example.com": nil,
	}
	p := webhook.Policy{Lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
		a, ok := names[host]
		if !ok {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return a, nil
	}}
	ctx := context.Background()
	for _, ok := range []string{"https://hooks.example.com/dashtam", "https://hooks.example.com:8443/x?y=1", "https://93.184.215.14/"} {
		assert.NoError(t, p.Check(ctx, ok), ok)
	}
	for _, bad := range []string{
		"http://hooks.example.com/", "ftp://hooks.example.com/", "hooks.example.com/x", "https://user:pw@hooks.example.com/",
		"https://127.0.0.1/", "https://127.1.2.3:8443/", "https://169.254.169.254/latest/meta-data/", "https://[::1]/",
		"https://[::ffff:127.0.0.1]/", "https://[::ffff:169.254.169.254]/", "https://[64:ff9b::a9fe:a9fe]/",
		"https://10.0.0.1/", "https://172.16.5.4/", "https://192.168.1.1/", "https://100.64.0.1/", "https://0.0.0.0/",
		"https://[fe80::1]/", "https://[fd12:3456::1]/", "https://[fe80::1%25eth0]/", "https://224.0.0.1/",
		"https://localhost/", "https://api.localhost/", "https://rebind.example.com/", "https://inside.example.com/",
		"https://ula.example.com/", "https://nowhere.example.com/", "https://unknown.example.com/",
	} {
		assert.Error(t, p.Check(ctx, bad), bad)
	}
	dev := webhook.Policy{AllowPrivate: true}
	assert.NoError(t, dev.Check(ctx, "http://127.0.0.1:9000/hook"))
	assert.Error(t, dev.Check(ctx, "ftp://127.0.0.1/"))
}

func send(s *webhook.Sender, url string, secrets ...[]byte) webhooks.Result {
	return s.Send(context.Background(), webhooks.Send{URL: url, ID: "evt_1", Timestamp: time.Unix(1700000000, 0),
		Body: []byte(`{"type":"x"}`), Secrets: secrets})
}

// TestSenderChecksTheAddressItDials: without AllowPrivate the sender
// refuses to connect to loopback and metadata addresses at send time,
// after resolving the name, whatever the URL passed at registration.
func TestSenderChecksTheAddressItDials(t *testing.T) {
	hits := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { hits++ }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	s := webhook.NewSender(webhook.SenderConfig{Timeout: 5 * time.Second})
	for _, u := range []string{srv.URL, "http://localhost:" + port + "/", "http://169.254.169.254/latest/meta-data/"} {
		r := send(s, u, []byte("k"))
		assert.Equal(t, webhooks.ErrorBlockedAddress, r.Error, u)
		assert.Zero(t, r.StatusCode)
	}
	assert.Zero(t, hits, "nothing reached the receiver")
}

// TestSenderSignsTimesOutAndFollowsNoRedirect: a delivery carries the
// Standard Webhooks headers with one signature per secret; a receiver
// that hangs costs the timeout and no more; a redirect is a failure, not
// followed; Retry-After is read; TLS is verified.
func TestSenderSignsTimesOutAndFollowsNoRedirect(t *testing.T) {
	release := make(chan struct{})
	var got http.Header
	var body []byte
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // so the server notices the client leaving
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/ok", http.StatusFound)
	})
	mux.HandleFunc("/busy", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusting client's handshake fails on purpose
	srv.StartTLS()
	defer srv.Close()
	defer close(release)
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	s := webhook.NewSender(webhook.SenderConfig{AllowPrivate: true, Timeout: 300 * time.Millisecond, RootCAs: pool})

	k1, k2 := []byte("new secret key"), []byte("old secret key")
	r := send(s, srv.URL+"/ok", k1, k2)
	require.True(t, r.Succeeded(), "%+v", r)
	assert.Equal(t, "evt_1", got.Get("webhook-id"))
	assert.Equal(t, "1700000000", got.Get("webhook-timestamp"))
	ts, _ := strconv.ParseInt(got.Get("webhook-timestamp"), 10, 64)
	for _, k := range [][]byte{k1, k2} {
		assert.True(t, webhook.Verify(k, got.Get("webhook-id"), time.Unix(ts, 0), body, got.Get("webhook-signature")),
			"either secret verifies during a rotation")
	}
	assert.Equal(t, "application/json", got.Get("Content-Type"))

	r = send(s, srv.URL+"/hang", k1)
	assert.Equal(t, webhooks.ErrorTimeout, r.Error)
	assert.False(t, r.Succeeded())

	r = send(s, srv.URL+"/moved", k1)
	assert.Equal(t, http.StatusFound, r.StatusCode)
	assert.Equal(t, webhooks.ErrorRedirect, r.Error)

	r = send(s, srv.URL+"/busy", k1)
	assert.Equal(t, http.StatusServiceUnavailable, r.StatusCode)
	assert.Equal(t, 2*time.Minute, r.RetryAfter)

	untrusting := webhook.NewSender(webhook.SenderConfig{AllowPrivate: true, Timeout: time.Second})
	r = send(untrusting, srv.URL+"/ok", k1)
	assert.Equal(t, webhooks.ErrorTLS, r.Error)
	assert.False(t, errors.Is(context.Background().Err(), context.Canceled))
}
