package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/dashtam/dashtam/eventstore"
)

func TestAuditExportVerifiesOfflineAndNoByteCanChange(t *testing.T) {
	t.Parallel()
	l := newCheckpointedLog(t)
	out := filepath.Join(t.TempDir(), "export.bundle")
	code, stdout, stderr := runAuditCLI(t, "--data-dir", l.dataDir, "--database-url", l.url, "audit", "export", "--out", out)
	require.Equal(t, 0, code, "export: %s%s", stdout, stderr)
	assert.Contains(t, stderr, "exported 15 events up to checkpoint")

	// No database at all: the URL points nowhere.
	offline := []string{"--data-dir", l.dataDir, "--database-url", auditUnreachableURL, "audit", "verify", "--bundle", out}
	code, stdout, stderr = runAuditCLI(t, offline...)
	require.Equal(t, 0, code, "verify: %s%s", stdout, stderr)
	assert.Contains(t, stdout, "verified bundle export.bundle: 15 events and")
	assert.Empty(t, stderr, "the data dir's key is pinned")

	code, _, stderr = runAuditCLI(t, "--data-dir", t.TempDir(), "--database-url", auditUnreachableURL, "audit", "verify", "--bundle", out)
	assert.Equal(t, 0, code)
	assert.Contains(t, stderr, "no public key pinned")
	other, err := eventstore.NewSigner(make([]byte, 32))
	require.NoError(t, err)
	code, stdout, _ = runAuditCLI(t, "--data-dir", t.TempDir(), "--database-url", auditUnreachableURL, "audit", "verify", "--bundle", out,
		"--public-key", eventstore.EncodePublicKey(other.PublicKey()))
	assert.Equal(t, 1, code)
	assert.Contains(t, stdout, "not trusted")

	signer, err := eventstore.NewSigner(tamperSeed)
	require.NoError(t, err)
	trusted := eventstore.TrustedKeys{signer.PublicKey()}
	orig, err := os.ReadFile(out)
	require.NoError(t, err)
	_, err = eventstore.VerifyBundle(bytes.NewReader(orig), trusted)
	require.NoError(t, err)
	// Every single byte changed, every fifth changed in case too, and a
	// byte dropped or added every few: each breaks verification.
	for i := range orig {
		for _, flip := range []byte{0x01, 0x20} {
			if flip == 0x20 && i%5 != 0 {
				continue
			}
			b := bytes.Clone(orig)
			b[i] ^= flip
			if _, err := eventstore.VerifyBundle(bytes.NewReader(b), trusted); err == nil {
				t.Fatalf("byte %d (%q) xor %#x still verifies", i, orig[i], flip)
			}
		}
		if i%13 == 0 {
			cut := append(bytes.Clone(orig[:i]), orig[i+1:]...)
			if _, err := eventstore.VerifyBundle(bytes.NewReader(cut), trusted); err == nil {
				t.Fatalf("dropping byte %d still verifies", i)
			}
			grown := append(append(bytes.Clone(orig[:i]), ' '), orig[i:]...)
			if _, err := eventstore.VerifyBundle(bytes.NewReader(grown), trusted); err == nil {
				t.Fatalf("inserting at byte %d still verifies", i)
			}
		}
	}
	code, stdout, _ = runAuditCLI(t, append(offline[:len(offline)-1], writeTemp(t, append(bytes.Clone(orig), '\n')))...)
	assert.Equal(t, 1, code, "data after the trailer")
	assert.Contains(t, stdout, "BROKEN")

	// One stream only.
	one := filepath.Join(t.TempDir(), "one.bundle")
	code, _, stderr = runAuditCLI(t, "--data-dir", l.dataDir, "--database-url", l.url, "audit", "export", "--stream", l.streams[1].String(), "--out", one)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stderr, "exported 5 events")
	b, err := os.ReadFile(one)
	require.NoError(t, err)
	assert.Equal(t, 5, strings.Count(string(b), l.streams[1].ID.String()+`","version"`))
	_, err = eventstore.VerifyBundle(bytes.NewReader(b), trusted)
	require.NoError(t, err)

	for _, args := range [][]string{{"export"}, {"export", "--out", out}, {"export", "--out", one + "x", "--from", "soon"}} {
		code, _, stderr := runAuditCLI(t, append([]string{"--data-dir", l.dataDir, "--database-url", l.url, "audit"}, args...)...)
		assert.Equal(t, 2, code, "%v: %s", args, stderr)
	}
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "b")
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}
