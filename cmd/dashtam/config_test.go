package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLoadServeConfig(t *testing.T) {
	good := map[string]string{
		"DASHTAM_ENCRYPTION_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"DASHTAM_JWT_SECRET":     strings.Repeat("s", 32),
	}
	env := func(over map[string]string) func(string) string {
		return func(k string) string {
			if v, ok := over[k]; ok {
				return v
			}
			return good[k]
		}
	}
	c, err := loadServeConfig(env(nil), "/data")
	require.NoError(t, err)
	assert.Equal(t, "127.0.0.1:8080", c.HTTPAddr)
	assert.Equal(t, "file:///data/mail", c.MailURL)
	assert.Equal(t, []string{"sandbox"}, c.Providers)
	assert.Len(t, c.Keyring.KeyIDs(), 1)

	c, err = loadServeConfig(env(map[string]string{"DASHTAM_MAIL_URL": "smtps://u:p@mail.example:465"}), "/data")
	require.NoError(t, err)
	assert.Equal(t, "smtps://u:p@mail.example:465", c.MailURL)

	schwab := map[string]string{"SCHWAB_CLIENT_ID": "app", "SCHWAB_CLIENT_SECRET": "app-secret",
		"DASHTAM_ID_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
	c, err = loadServeConfig(env(schwab), "/data")
	require.NoError(t, err)
	assert.Equal(t, []string{"sandbox", "schwab"}, c.Providers)
	assert.Equal(t, "http://127.0.0.1:8080/oauth/schwab/callback", c.Schwab.RedirectURI)
	assert.Equal(t, "https://api.schwabapi.com/trader/v1", c.Schwab.APIBaseURL)
	assert.Len(t, c.IDKey, 32)
	assert.Equal(t, roleAll, c.Role)
	assert.Empty(t, c.TrustedProxies, "no proxy is trusted by default")
	assert.Zero(t, c.RotationGrace, "a rotation cuts old tokens off at once by default")
	assert.Equal(t, 6*time.Hour, c.SyncInterval, "DASHTAM_SYNC_INTERVAL's default")

	c, err = loadServeConfig(env(map[string]string{"DASHTAM_SYNC_INTERVAL": "90m"}), "/data")
	require.NoError(t, err)
	assert.Equal(t, 90*time.Minute, c.SyncInterval)

	assert.Equal(t, sinkPostgres, c.EventSink, "integration events go to the postgres topic by default")
	assert.False(t, c.WebhookAllowPrivate, "webhooks reach only public addresses by default")

	c, err = loadServeConfig(env(map[string]string{"DASHTAM_EVENT_SINK": "nats://127.0.0.1:4222", "DASHTAM_WEBHOOK_ALLOW_PRIVATE": "true"}), "/data")
	require.NoError(t, err)
	assert.Equal(t, "nats://127.0.0.1:4222", c.EventSink)
	assert.True(t, c.WebhookAllowPrivate)

	c, err = loadServeConfig(env(map[string]string{"DASHTAM_TRUSTED_PROXIES": "10.0.0.0/8, fd00::/8,"}), "/data")
	require.NoError(t, err)
	assert.Equal(t, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}, c.TrustedProxies)

	for raw, want := range map[string]time.Duration{"5m": 5 * time.Minute, " 90s ": 90 * time.Second, "0s": 0, "24h": 24 * time.Hour} {
		c, err = loadServeConfig(env(map[string]string{"DASHTAM_TOKEN_ROTATION_GRACE": raw}), "/data")
		require.NoError(t, err, raw)
		assert.Equal(t, want, c.RotationGrace, raw)
	}

	for name, tc := range map[string]struct {
		over map[string]string
		want string
	}{
		"missing key":      {map[string]string{"DASHTAM_ENCRYPTION_KEY": ""}, "DASHTAM_ENCRYPTION_KEY is not set"},
		"short key":        {map[string]string{"DASHTAM_ENCRYPTION_KEY": "AAEC"}, "DASHTAM_ENCRYPTION_KEY is malformed"},
		"not base64":       {map[string]string{"DASHTAM_ENCRYPTION_KEY": "%%%"}, "DASHTAM_ENCRYPTION_KEY is malformed"},
		"missing jwt":      {map[string]string{"DASHTAM_JWT_SECRET": ""}, "DASHTAM_JWT_SECRET is not set"},
		"short jwt":        {map[string]string{"DASHTAM_JWT_SECRET": "short-secret-value"}, "DASHTAM_JWT_SECRET is too short"},
		"bad addr":         {map[string]string{"DASHTAM_HTTP_ADDR": "8080"}, "DASHTAM_HTTP_ADDR"},
		"bad provider":     {map[string]string{"DASHTAM_PROVIDERS": "sandbox,plaid"}, `unknown provider "plaid"`},
		"bad mail url":     {map[string]string{"DASHTAM_MAIL_URL": "http://x"}, "DASHTAM_MAIL_URL"},
		"bad public url":   {map[string]string{"DASHTAM_PUBLIC_URL": "ftp://x"}, "DASHTAM_PUBLIC_URL"},
		"bad proxy":        {map[string]string{"DASHTAM_TRUSTED_PROXIES": "10.0.0.0/8,10.0.0.1"}, `DASHTAM_TRUSTED_PROXIES entry "10.0.0.1"`},
		"grace no unit":    {map[string]string{"DASHTAM_TOKEN_ROTATION_GRACE": "300"}, `DASHTAM_TOKEN_ROTATION_GRACE "300"`},
		"grace garbage":    {map[string]string{"DASHTAM_TOKEN_ROTATION_GRACE": "soon"}, `DASHTAM_TOKEN_ROTATION_GRACE "soon"`},
		"grace negative":   {map[string]string{"DASHTAM_TOKEN_ROTATION_GRACE": "-1m"}, `DASHTAM_TOKEN_ROTATION_GRACE "-1m"`},
		"grace too long":   {map[string]string{"DASHTAM_TOKEN_ROTATION_GRACE": "24h1s"}, `DASHTAM_TOKEN_ROTATION_GRACE "24h1s"`},
		"keyring bad id":   {map[string]string{"DASHTAM_ENCRYPTION_KEY": "a b:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}, "DASHTAM_ENCRYPTION_KEY is malformed"},
		"schwab no secret": {map[string]string{"SCHWAB_CLIENT_ID": "app"}, "SCHWAB_CLIENT_SECRET is not set"},
		"schwab no id key": {map[string]string{"SCHWAB_CLIENT_ID": "app", "SCHWAB_CLIENT_SECRET": "s"}, "DASHTAM_ID_KEY"},
		"schwab bad url": {map[string]string{"SCHWAB_CLIENT_ID": "app", "SCHWAB_CLIENT_SECRET": "s", "SCHWAB_TOKEN_URL": "ftp://x",
			"DASHTAM_ID_KEY": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}, "SCHWAB_TOKEN_URL"},
		"bad role":                {map[string]string{"DASHTAM_ROLE": "cook"}, `DASHTAM_ROLE "cook"`},
		"sync interval too short": {map[string]string{"DASHTAM_SYNC_INTERVAL": "1m"}, `DASHTAM_SYNC_INTERVAL "1m"`},
		"sync interval garbage":   {map[string]string{"DASHTAM_SYNC_INTERVAL": "often"}, `DASHTAM_SYNC_INTERVAL "often"`},
		"bad sink":                {map[string]string{"DASHTAM_EVENT_SINK": "kafka://k:9092"}, `DASHTAM_EVENT_SINK "kafka://k:9092"`},
		"bad allowance":           {map[string]string{"DASHTAM_WEBHOOK_ALLOW_PRIVATE": "yes"}, `DASHTAM_WEBHOOK_ALLOW_PRIVATE "yes"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := loadServeConfig(env(tc.over), "/data")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
			assert.NotContains(t, err.Error(), "short-secret-value", "secrets are never echoed")
			assert.NotContains(t, err.Error(), "\n")
		})
	}
}

func TestHelpNeverShowsDatabasePassword(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://u:hunter2-secret@db.example:5432/x")
	var out strings.Builder
	code := runWith(context.Background(), []string{"audit", "replay", "--help"}, &out, &out)
	assert.Equal(t, 0, code)
	assert.NotContains(t, out.String(), "hunter2-secret")
	assert.Contains(t, out.String(), "--database-url")
}

// TestSecretsDefaultToTheDataDir checks the README's documented default: the
// secrets `make run` generated into the data dir serve every command, and the
// environment wins when set.
func TestSecretsDefaultToTheDataDir(t *testing.T) {
	dir := t.TempDir()
	key := "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	require.NoError(t, os.WriteFile(filepath.Join(dir, "encryption.key"), []byte(key), 0o600))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "jwt.secret"), []byte(strings.Repeat("f", 48)), 0o600))
	none := func(string) string { return "" }

	c, err := loadServeConfig(none, dir)
	require.NoError(t, err)
	assert.Len(t, c.Keyring.KeyIDs(), 1)
	assert.Equal(t, strings.Repeat("f", 48), string(c.JWTSecret))

	env := map[string]string{"DASHTAM_JWT_SECRET": strings.Repeat("e", 40)}
	c, err = loadServeConfig(func(k string) string { return env[k] }, dir)
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat("e", 40), string(c.JWTSecret), "the environment wins")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "encryption.key"), []byte("not-a-key"), 0o600))
	_, err = loadServeConfig(none, dir)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DASHTAM_ENCRYPTION_KEY (from "+filepath.Join(dir, "encryption.key")+") is malformed")
	assert.NotContains(t, err.Error(), "not-a-key", "the value is never echoed")
}
