package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/migrations/testdb"
)

func TestLoadAuditConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	key := base64.StdEncoding.EncodeToString(tamperSeed)
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	c, err := loadAuditConfig(env(map[string]string{"DASHTAM_AUDIT_SIGNING_KEY": key}), dir, true)
	require.NoError(t, err)
	assert.Equal(t, filepath.Join(dir, "checkpoints"), c.Dir)
	assert.Equal(t, 15*time.Minute, c.Interval)
	require.NotNil(t, c.Signer)

	c, err = loadAuditConfig(env(nil), dir, false)
	require.NoError(t, err, "verification needs no key")
	assert.Nil(t, c.Signer)

	require.NoError(t, os.WriteFile(filepath.Join(dir, signingKeyFile), []byte(key+"\n"), 0o600))
	c, err = loadAuditConfig(env(map[string]string{"DASHTAM_AUDIT_CHECKPOINT_DIR": "/elsewhere", "DASHTAM_AUDIT_CHECKPOINT_INTERVAL": "90s"}), dir, true)
	require.NoError(t, err, "the data dir's key is the default")
	assert.Equal(t, "/elsewhere", c.Dir)
	assert.Equal(t, 90*time.Second, c.Interval)

	for name, tc := range map[string]struct {
		env  map[string]string
		want string
	}{
		"short key":     {map[string]string{"DASHTAM_AUDIT_SIGNING_KEY": "AAEC"}, "DASHTAM_AUDIT_SIGNING_KEY is malformed"},
		"not base64":    {map[string]string{"DASHTAM_AUDIT_SIGNING_KEY": "%%%"}, "DASHTAM_AUDIT_SIGNING_KEY is malformed"},
		"interval unit": {map[string]string{"DASHTAM_AUDIT_CHECKPOINT_INTERVAL": "900"}, `DASHTAM_AUDIT_CHECKPOINT_INTERVAL "900"`},
		"interval tiny": {map[string]string{"DASHTAM_AUDIT_CHECKPOINT_INTERVAL": "10ms"}, `DASHTAM_AUDIT_CHECKPOINT_INTERVAL "10ms"`},
		"interval huge": {map[string]string{"DASHTAM_AUDIT_CHECKPOINT_INTERVAL": "25h"}, `DASHTAM_AUDIT_CHECKPOINT_INTERVAL "25h"`},
	} {
		_, err := loadAuditConfig(env(tc.env), dir, true)
		require.Error(t, err, name)
		assert.Contains(t, err.Error(), tc.want, name)
		assert.NotContains(t, err.Error(), "AAEC", "the key is never echoed")
	}
	_, err = loadAuditConfig(env(nil), t.TempDir(), true)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DASHTAM_AUDIT_SIGNING_KEY is not set")
}

func TestAuditCheckpointAndPublicKeyCommands(t *testing.T) {
	t.Parallel()
	l := newAuditLog(t)
	dataDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dataDir, signingKeyFile), []byte(base64.StdEncoding.EncodeToString(tamperSeed)), 0o600))
	cli := func(args ...string) (int, string, string) {
		return runAuditCLI(t, append([]string{"--data-dir", dataDir, "--database-url", l.url, "audit"}, args...)...)
	}
	code, pub, stderr := cli("public-key")
	require.Equal(t, 0, code, stderr)
	signer, err := eventstore.NewSigner(tamperSeed)
	require.NoError(t, err)
	assert.Equal(t, eventstore.EncodePublicKey(signer.PublicKey())+"\n", pub)

	var ck eventstore.Checkpoint
	require.Eventually(t, func() bool {
		code, stdout, stderr := cli("checkpoint")
		require.Equal(t, 0, code, stderr)
		if stdout == "" {
			return false // nothing behind the horizon yet
		}
		lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
		require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &ck))
		return ck.TreeSize == 5
	}, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, ck.VerifySignature(eventstore.TrustedKeys{signer.PublicKey()}))
	_, err = os.Stat(filepath.Join(dataDir, "checkpoints", "checkpoint-00000000000000000001.json"))
	require.NoError(t, err, "the file copy is written")

	code, stdout, stderr := cli("checkpoint")
	require.Equal(t, 0, code)
	assert.Contains(t, stderr, "has not grown")
	assert.Contains(t, stdout, `"tree_size":5`)

	code, stdout, _ = cli("verify", "--public-key", pub)
	assert.Equal(t, 0, code, stdout)
	other, err := eventstore.NewSigner(make([]byte, 32))
	require.NoError(t, err)
	// Without the data dir's key, a pinned foreign key refuses the checkpoints.
	code, stdout, _ = runAuditCLI(t, "--data-dir", t.TempDir(), "--database-url", l.url, "audit", "verify",
		"--public-key", eventstore.EncodePublicKey(other.PublicKey()))
	assert.Equal(t, 1, code)
	assert.Contains(t, stdout, "not trusted")
	code, _, stderr = runAuditCLI(t, "--data-dir", t.TempDir(), "--database-url", l.url, "audit", "verify")
	assert.Equal(t, 0, code)
	assert.Contains(t, stderr, "no public key pinned")

	for _, args := range [][]string{
		{"verify", "--public-key", "not-base64"},
		{"verify", "--checkpoints="},
		{"verify", "--checkpoints", filepath.Join(dataDir, "nope")},
		{"verify", "--bundle", "x", "--checkpoints", dataDir},
		{"checkpoint", "extra"},
		{"public-key", "extra"},
	} {
		code, _, stderr := cli(args...)
		assert.Equal(t, 2, code, "%v: %s", args, stderr)
	}
	code, _, stderr = runAuditCLI(t, "--data-dir", t.TempDir(), "--database-url", l.url, "audit", "checkpoint")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "DASHTAM_AUDIT_SIGNING_KEY is not set")
}

// TestServeCheckpointsTheLog runs serve with a short interval and waits for
// the checkpoint of a registration to appear in the directory.
func TestServeCheckpointsTheLog(t *testing.T) {
	o := &globalOptions{dataDir: t.TempDir(), databaseURL: testdb.NewEmptyURL(t)}
	env := map[string]string{
		"DASHTAM_HTTP_ADDR":                 "127.0.0.1:0",
		"DASHTAM_ENCRYPTION_KEY":            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
		"DASHTAM_AUDIT_SIGNING_KEY":         base64.StdEncoding.EncodeToString(tamperSeed),
		"DASHTAM_AUDIT_CHECKPOINT_INTERVAL": "1s",
		"DASHTAM_JWT_SECRET":                strings.Repeat("j", 40),
		"DASHTAM_MAIL_URL":                  "file://" + t.TempDir(),
	}
	var logs strings.Builder
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, err := openServer(ctx, o, func(k string) string { return env[k] }, &logs)
	require.NoError(t, err)
	defer app.Close()
	done := make(chan error, 1)
	go func() { done <- app.Run(ctx) }()
	resp, err := http.Post("http://"+app.Addr()+"/api/v1/users", "application/json",
		strings.NewReader(`{"email":"cp@example.com","password":"a long and unusual passphrase"}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusCreated, resp.StatusCode)
	dir, err := eventstore.ReadCheckpointDir(filepath.Join(o.dataDir, "checkpoints"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		seqs, err := dir.Seqs()
		require.NoError(t, err)
		return len(seqs) > 0
	}, 30*time.Second, 20*time.Millisecond)
	cancel()
	require.NoError(t, <-done)
}
