package connections

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dashtam/dashtam/commands"
)

// ResealOptions tune Reseal.
type ResealOptions struct {
	// BatchSize is how many rows one statement re-seals; DefaultResealBatch when zero.
	BatchSize int
	// Progress, when set, is told the counts so far after every batch.
	Progress func(ResealCounts)
}

// DefaultResealBatch keeps each re-sealing statement short: it locks only
// the rows it rewrites, for a few milliseconds, so refreshes running
// meanwhile wait at most that long.
const DefaultResealBatch = 100

// maxResealPasses bounds the passes over rows that moved under a pass (a
// refresh replaced them): a server still sealing under an old key would
// otherwise keep the rotation going for ever.
const maxResealPasses = 5

// ResealCounts says what Reseal did.
type ResealCounts struct {
	// Credentials is how many credential blobs were re-sealed.
	Credentials int
	// Verifiers is how many PKCE verifiers of authorisations in flight were re-sealed.
	Verifiers int
	// Moved is how many rows changed while being re-sealed (a refresh
	// stored new credentials) and were left to the refresh, which seals
	// under its own newest key.
	Moved int
	// Failed is how many blobs did not open (a key missing from the
	// keyring, a damaged blob); they are left as they are.
	Failed int
	// Remaining is how many blobs are still under another key than the
	// newest when Reseal ends: the failed ones, and any a server sealing
	// with an older keyring wrote meanwhile.
	Remaining int
}

// Done is how many rows were handled so far, for progress.
func (c ResealCounts) Done() int { return c.Credentials + c.Verifiers + c.Moved + c.Failed }

// ToReseal counts the blobs not under v's newest key: what Reseal has to do.
func ToReseal(ctx context.Context, pool *pgxpool.Pool, v commands.Vault) (int, error) {
	creds, states, err := countStale(ctx, pool, v.NewestKeyID())
	return creds + states, err
}

// Reseal re-seals under v's newest key every stored secret of the
// connections sealed under another: the credentials in the vault table and
// the PKCE verifiers of authorisations in flight (`dashtam keys rotate`).
// It runs beside live servers: each batch is one short statement outside
// any long transaction, and each row is rewritten only if it is still the
// one that was read (its generation for credentials, its blob for a
// verifier), so credentials a refresh stored meanwhile are never replaced
// by a re-sealed copy of the stale ones. A rotation does not move the
// generation either, so a refresh that started from the row before it was
// re-sealed still stores its result.
//
// Servers must run with the new keyring (new key first, old ones after)
// before Reseal runs, or they keep sealing new rows under the old key;
// Remaining then stays above zero. It returns an error only when the
// database fails; blobs that do not open are counted in Failed.
func Reseal(ctx context.Context, pool *pgxpool.Pool, v commands.Vault, opts ResealOptions) (ResealCounts, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultResealBatch
	}
	newest := v.NewestKeyID()
	var counts ResealCounts
	// Blobs that do not open are met again by later passes: count each once.
	failed := map[string]bool{}
	fail := func(key string) {
		if !failed[key] {
			failed[key] = true
			counts.Failed++
		}
	}
	report := func() {
		if opts.Progress != nil {
			opts.Progress(counts)
		}
	}
	for pass := 0; pass < maxResealPasses; pass++ {
		moved := counts.Moved
		if err := resealCredentials(ctx, pool, v, newest, opts.BatchSize, &counts, fail, report); err != nil {
			return counts, err
		}
		if err := resealVerifiers(ctx, pool, v, newest, opts.BatchSize, &counts, fail, report); err != nil {
			return counts, err
		}
		if counts.Moved == moved {
			break // nothing moved under this pass: whatever remains did not open
		}
	}
	creds, states, err := countStale(ctx, pool, newest)
	if err != nil {
		return counts, err
	}
	counts.Remaining = creds + states
	return counts, nil
}

// resealCredentials makes one pass over the credentials not under newest.
func resealCredentials(ctx context.Context, pool *pgxpool.Pool, v commands.Vault, newest string, batch int,
	counts *ResealCounts, fail func(string), report func()) error {
	after := uuid.Nil
	for {
		rows, err := staleCredentials(ctx, pool, newest, after, batch)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		after = rows[len(rows)-1].connectionID
		resealed := make([]sealedRow, 0, len(rows))
		for _, r := range rows {
			blob, err := reseal(v, r.connectionID, r.blob, newest)
			if err != nil {
				fail("credentials " + r.connectionID.String())
				continue
			}
			resealed = append(resealed, sealedRow{connectionID: r.connectionID, generation: r.generation, blob: blob})
		}
		n, err := replaceSealedCredentials(ctx, pool, newest, resealed)
		if err != nil {
			return err
		}
		counts.Credentials += n
		counts.Moved += len(resealed) - n
		report()
	}
}

// resealVerifiers makes one pass over the PKCE verifiers not under newest.
func resealVerifiers(ctx context.Context, pool *pgxpool.Pool, v commands.Vault, newest string, batch int,
	counts *ResealCounts, fail func(string), report func()) error {
	var after []byte
	for {
		rows, err := staleVerifiers(ctx, pool, newest, after, batch)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		after = rows[len(rows)-1].digest
		resealed := make([]sealedVerifier, 0, len(rows))
		for _, r := range rows {
			blob, err := reseal(v, r.connectionID, r.blob, newest)
			if err != nil {
				fail("state " + string(r.digest))
				continue
			}
			resealed = append(resealed, sealedVerifier{digest: r.digest, old: r.blob, blob: blob})
		}
		n, err := replaceSealedVerifiers(ctx, pool, resealed)
		if err != nil {
			return err
		}
		counts.Verifiers += n
		counts.Moved += len(resealed) - n
		report()
	}
}

// reseal opens blob of connection id and seals it again under newest.
func reseal(v commands.Vault, id uuid.UUID, blob []byte, newest string) ([]byte, error) {
	plain, err := v.Open(id, blob)
	if err != nil {
		return nil, fmt.Errorf("open blob of connection %s: %w", id, err)
	}
	out, keyID, err := v.Seal(id, plain)
	if err != nil {
		return nil, fmt.Errorf("seal blob of connection %s: %w", id, err)
	}
	if keyID != newest {
		return nil, errors.New("vault sealed under another key than its newest")
	}
	return out, nil
}
