package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/dashtam/dashtam/eventstore"
)

// auditConfig is the configuration of the audit trail's signed checkpoints
// (docs/audit.md): the signing key, the write-once directory outside the
// database, and how often serve checkpoints a grown log.
type auditConfig struct {
	// Signer signs checkpoints; nil when no key is configured (then only
	// verification, against pinned keys, is possible).
	Signer *eventstore.Signer
	// Dir is the write-once checkpoint directory.
	Dir string
	// Interval is how often serve checkpoints.
	Interval time.Duration
}

// Bounds of DASHTAM_AUDIT_CHECKPOINT_INTERVAL: often enough to narrow the
// window a rewrite could hide in, rarely enough to be negligible work.
const (
	minCheckpointInterval     = time.Second
	maxCheckpointInterval     = 24 * time.Hour
	defaultCheckpointInterval = 15 * time.Minute
)

// signingKeyFile is the development key `make run` generates into the data dir.
const signingKeyFile = "audit-signing.key"

// loadAuditConfig reads the audit settings; requireKey makes a missing
// signing key an error (serve, checkpoint, export). Errors name the
// variable, never the key.
func loadAuditConfig(getenv func(string) string, dataDir string, requireKey bool) (auditConfig, error) {
	c := auditConfig{
		Dir:      orDefault(strings.TrimSpace(getenv("DASHTAM_AUDIT_CHECKPOINT_DIR")), filepath.Join(dataDir, "checkpoints")),
		Interval: defaultCheckpointInterval,
	}
	if raw := strings.TrimSpace(getenv("DASHTAM_AUDIT_CHECKPOINT_INTERVAL")); raw != "" {
		d, err := time.ParseDuration(raw)
		if err != nil || d < minCheckpointInterval || d > maxCheckpointInterval {
			return c, fmt.Errorf("DASHTAM_AUDIT_CHECKPOINT_INTERVAL %q is not a duration from 1s to 24h, such as 15m", raw)
		}
		c.Interval = d
	}
	raw, from, err := secretSetting(getenv, "DASHTAM_AUDIT_SIGNING_KEY", dataDir, signingKeyFile)
	if err != nil {
		return c, err
	}
	if raw == "" {
		if requireKey {
			return c, fmt.Errorf("DASHTAM_AUDIT_SIGNING_KEY is not set: it must be base64 of a 32-byte Ed25519 seed (make run generates one)")
		}
		return c, nil
	}
	if c.Signer, err = eventstore.ParseSigningKey(raw); err != nil {
		return c, fmt.Errorf("DASHTAM_AUDIT_SIGNING_KEY%s is malformed: it must be base64 of a 32-byte Ed25519 seed", from)
	}
	return c, nil
}
