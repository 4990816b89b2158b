// Package personaldata implements eventstore.PersonalData: one AES-256-GCM
// data key per person, kept wrapped by the master keyring (commands.Vault)
// in table personal_data_keys, outside the event log. Destroying a key
// erases that person's personal data from the log without changing a byte
// of it (crypto-shredding; docs/audit.md).
package personaldata

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// DefaultCacheTTL bounds how long an unwrapped key (or the knowledge that
// a person was erased) is kept in memory. An erasure in this process
// forgets the key at once; other processes stop using it within the TTL.
const DefaultCacheTTL = 30 * time.Second

// ErrTampered means a sealed value does not authenticate: altered, or moved
// to another person or field.
var ErrTampered = errors.New("personal data does not authenticate")

// Keys is the keystore: it seals and opens values and erases people.
type Keys struct {
	pool  *pgxpool.Pool
	vault commands.Vault
	now   func() time.Time
	ttl   time.Duration

	mu    sync.Mutex
	cache map[uuid.UUID]entry
}

type entry struct {
	aead   cipher.AEAD // nil when erased or absent
	erased bool
	at     time.Time
}

var _ eventstore.PersonalData = (*Keys)(nil)

// New returns the keystore over pool, wrapping keys with vault.
func New(pool *pgxpool.Pool, vault commands.Vault, now func() time.Time) (*Keys, error) {
	if pool == nil || vault == nil || now == nil {
		return nil, errors.New("personaldata: pool, vault and clock are required")
	}
	return &Keys{pool: pool, vault: vault, now: now, ttl: DefaultCacheTTL, cache: map[uuid.UUID]entry{}}, nil
}

// key returns owner's key, creating it when create is set and there is none.
func (k *Keys) key(ctx context.Context, owner uuid.UUID, create bool) (entry, error) {
	k.mu.Lock()
	e, ok := k.cache[owner]
	k.mu.Unlock()
	if ok && k.now().Sub(e.at) < k.ttl && (e.aead != nil || e.erased || !create) {
		return e, nil
	}
	e, found, err := k.read(ctx, owner)
	if err != nil {
		return entry{}, err
	}
	if !found && create {
		if err := k.create(ctx, owner); err != nil {
			return entry{}, err
		}
		if e, found, err = k.read(ctx, owner); err != nil {
			return entry{}, err
		}
	}
	if !found {
		return entry{at: k.now()}, nil // no key and none wanted: nothing sealed yet
	}
	k.mu.Lock()
	k.cache[owner] = e
	k.mu.Unlock()
	return e, nil
}

func (k *Keys) read(ctx context.Context, owner uuid.UUID) (entry, bool, error) {
	var wrapped []byte
	var erasedAt *time.Time
	err := k.pool.QueryRow(ctx, `SELECT wrapped, erased_at FROM personal_data_keys WHERE user_id = $1`, owner).Scan(&wrapped, &erasedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return entry{}, false, nil
	}
	if err != nil {
		return entry{}, false, fmt.Errorf("read the data key of %s: %w", owner, err)
	}
	e := entry{at: k.now()}
	if erasedAt != nil {
		e.erased = true
		return e, true, nil
	}
	raw, err := k.vault.Open(owner, wrapped)
	if err != nil {
		return entry{}, false, fmt.Errorf("unwrap the data key of %s: %w", owner, err)
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return entry{}, false, fmt.Errorf("data key of %s: %w", owner, err)
	}
	if e.aead, err = cipher.NewGCM(block); err != nil {
		return entry{}, false, fmt.Errorf("data key of %s: %w", owner, err)
	}
	return e, true, nil
}

// create stores a new key for owner unless one (or an erasure) exists: the
// first writer wins, so concurrent appends agree on one key.
func (k *Keys) create(ctx context.Context, owner uuid.UUID) error {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return fmt.Errorf("new data key: %w", err)
	}
	wrapped, keyID, err := k.vault.Seal(owner, raw)
	if err != nil {
		return fmt.Errorf("wrap the data key of %s: %w", owner, err)
	}
	if _, err := k.pool.Exec(ctx, `INSERT INTO personal_data_keys (user_id, key_id, wrapped, created_at)
		VALUES ($1, $2, $3, $4) ON CONFLICT (user_id) DO NOTHING`, owner, keyID, wrapped, k.now().UTC()); err != nil {
		return fmt.Errorf("store the data key of %s: %w", owner, err)
	}
	return nil
}

// aad binds a sealed value to its person and its place, so it cannot be
// moved to another person's event or to another field.
func aad(owner uuid.UUID, where string) []byte {
	return append(append([]byte("dashtam personal data v1\x00"), owner[:]...), where...)
}

// Seal encrypts value for owner, creating owner's key on first use.
func (k *Keys) Seal(ctx context.Context, owner uuid.UUID, where, value string) (string, error) {
	e, err := k.key(ctx, owner, true)
	if err != nil {
		return "", err
	}
	if e.erased {
		return "", eventstore.ErrErased
	}
	nonce := make([]byte, e.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("seal: nonce: %w", err)
	}
	out := e.aead.Seal(nonce, nonce, []byte(value), aad(owner, where))
	return eventstore.SealedPrefix + base64.RawURLEncoding.EncodeToString(out), nil
}

// Open decrypts a sealed value of owner.
func (k *Keys) Open(ctx context.Context, owner uuid.UUID, where, sealed string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, eventstore.SealedPrefix))
	if err != nil || !strings.HasPrefix(sealed, eventstore.SealedPrefix) {
		return "", ErrTampered
	}
	e, err := k.key(ctx, owner, false)
	if err != nil {
		return "", err
	}
	if e.erased || e.aead == nil {
		// No key: destroyed, or (a row deleted by hand) gone; either way
		// the data cannot be read again.
		return "", eventstore.ErrErased
	}
	if len(b) < e.aead.NonceSize() {
		return "", ErrTampered
	}
	plain, err := e.aead.Open(nil, b[:e.aead.NonceSize()], b[e.aead.NonceSize():], aad(owner, where))
	if err != nil {
		return "", ErrTampered
	}
	return string(plain), nil
}

// Erased reports whether owner was erased.
func (k *Keys) Erased(ctx context.Context, owner uuid.UUID) (bool, error) {
	e, err := k.key(ctx, owner, false)
	return e.erased, err
}

// Erase destroys owner's key in tx, the transaction that records the
// erasure, so both commit or neither; a person without a key yet gets an
// erased row, so nothing is ever sealed for them again. Call Forget after
// the commit.
func (k *Keys) Erase(ctx context.Context, tx pgx.Tx, owner uuid.UUID, at time.Time) error {
	if _, err := tx.Exec(ctx, `INSERT INTO personal_data_keys (user_id, key_id, wrapped, created_at, erased_at)
		VALUES ($1, NULL, NULL, $2, $2)
		ON CONFLICT (user_id) DO UPDATE SET key_id = NULL, wrapped = NULL, erased_at = excluded.erased_at
		WHERE personal_data_keys.erased_at IS NULL`, owner, at.UTC()); err != nil {
		return fmt.Errorf("destroy the data key of %s: %w", owner, err)
	}
	return nil
}

// Forget drops owner's key from this process's memory.
func (k *Keys) Forget(owner uuid.UUID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.cache, owner)
}
