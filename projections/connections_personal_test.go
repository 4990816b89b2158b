package projections_test

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/eventstore"
	"github.com/dashtam/dashtam/projections"
)

// sealingKeys stands in for the keystore (adapters/personaldata, tested
// against its own table): it seals reversibly, bound to owner and place,
// and forgets an erased owner.
type sealingKeys struct {
	mu     sync.Mutex
	erased map[uuid.UUID]bool
}

func (k *sealingKeys) Seal(_ context.Context, owner uuid.UUID, where, v string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.erased[owner] {
		return "", eventstore.ErrErased
	}
	return eventstore.SealedPrefix + base64.RawURLEncoding.EncodeToString([]byte(owner.String()+"|"+where+"|"+v)), nil
}

func (k *sealingKeys) Open(_ context.Context, owner uuid.UUID, where, sealed string) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.erased[owner] {
		return "", eventstore.ErrErased
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, eventstore.SealedPrefix))
	prefix := owner.String() + "|" + where + "|"
	if err != nil || !strings.HasPrefix(string(b), prefix) {
		return "", eventstore.ErrErased
	}
	return strings.TrimPrefix(string(b), prefix), nil
}

func (k *sealingKeys) Erased(_ context.Context, owner uuid.UUID) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.erased[owner], nil
}

func (k *sealingKeys) erase(owner uuid.UUID) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.erased[owner] = true
}

// TestConnectionsProjectorOpensAndErasesAliases: the log holds aliases
// sealed under their owner's key; the read model shows them opened, and
// once the owner is erased (UserErased) every alias of theirs reads
// eventstore.ErasedValue, live and after a rebuild, while other users'
// stay. A store that cannot open them makes the projector fail rather
// than show ciphertext.
func TestConnectionsProjectorOpensAndErasesAliases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	keys := &sealingKeys{erased: map[uuid.UUID]bool{}}
	reg := eventstore.NewRegistry()
	eventstore.Register[connection.ProviderConnectionAttempted](reg, 1)
	eventstore.Register[connection.ProviderConnectionRenamed](reg, 1)
	eventstore.Register[user.UserErased](reg, 1)
	pool := mustPool(t)
	store, err := eventstore.New(pool, reg, eventstore.WithPersonalData(keys))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	ada, bob := uuid.New(), uuid.New()
	appendAs := func(owner uuid.UUID, s eventstore.Stream, version int64, e eventstore.Event) {
		t.Helper()
		at = at.Add(time.Minute)
		if _, err := store.Append(eventstore.WithMetadata(ctx, eventstore.Metadata{OwnerID: owner, Actor: "user:" + owner.String()}), s, version, e); err != nil {
			t.Fatal(err)
		}
	}
	conn := func() eventstore.Stream { return eventstore.Stream{Type: eventstore.StreamConnection, ID: uuid.New()} }
	attempted := func(s eventstore.Stream, owner uuid.UUID, alias string) connection.ProviderConnectionAttempted {
		return connection.ProviderConnectionAttempted{ConnectionID: s.ID, UserID: owner, ProviderSlug: "sandbox", Alias: alias,
			ExpiresAt: at.Add(10 * time.Minute), At: at}
	}
	personal, business, joint := conn(), conn(), conn()
	appendAs(ada, personal, 0, attempted(personal, ada, "Personal"))
	appendAs(ada, personal, 1, connection.ProviderConnectionRenamed{ConnectionID: personal.ID, Alias: "Main", At: at})
	appendAs(ada, business, 0, attempted(business, ada, "Business"))
	appendAs(bob, joint, 0, attempted(joint, bob, "Joint"))
	var plaintext int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE payload::text ~ '(Personal|Main|Business|Joint)'`).Scan(&plaintext); err != nil {
		t.Fatal(err)
	}
	if plaintext != 0 {
		t.Fatalf("%d events hold an alias in plaintext", plaintext)
	}

	aliases := func() map[uuid.UUID]string {
		t.Helper()
		out := map[uuid.UUID]string{}
		for _, u := range []uuid.UUID{ada, bob} {
			for _, v := range listAll(t, pool, u, 10) {
				out[v.ID] = v.Alias
			}
		}
		return out
	}
	m, err := projections.NewManager(store, []projections.Projector{projections.Connections{}}, opts(ownerOf(t, store))...)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	stop := running(t, m.Start)
	eventually(t, "the aliases opened", func() bool {
		a := aliases()
		return a[personal.ID] == "Main" && a[business.ID] == "Business" && a[joint.ID] == "Joint"
	})

	// Ada is erased: her key goes, then UserErased is recorded; a rename
	// appended afterwards is sealed for nobody.
	keys.erase(ada)
	appendAs(ada, eventstore.Stream{Type: eventstore.StreamUser, ID: ada}, 0, user.UserErased{UserID: ada, By: ada, At: at})
	appendAs(ada, business, 1, connection.ProviderConnectionRenamed{ConnectionID: business.ID, Alias: "After", At: at})
	want := map[uuid.UUID]string{personal.ID: eventstore.ErasedValue, business.ID: eventstore.ErasedValue, joint.ID: "Joint"}
	same := func(got map[uuid.UUID]string) bool {
		for id, a := range want {
			if got[id] != a {
				return false
			}
		}
		return len(got) == len(want)
	}
	eventually(t, "Ada's aliases erased", func() bool { return same(aliases()) })
	stop()
	if err := m.Rebuild(ctx, "connections", nil); err != nil {
		t.Fatal(err)
	}
	if got := aliases(); !same(got) {
		t.Fatalf("after a rebuild: %v, want %v", got, want)
	}

	// Without keys, the sealed alias of Bob's connection cannot be folded.
	plain, err := eventstore.New(pool, reg)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := plain.ReadStream(ctx, joint, 0)
	if err != nil {
		t.Fatal(err)
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		// As on a first pass: the row the live projector wrote is gone.
		if _, err := tx.Exec(ctx, `DELETE FROM connections WHERE id = $1`, joint.ID); err != nil {
			return err
		}
		p := projections.Connections{}
		if err := p.Apply(ctx, tx, projections.LiveTables(p), recs); err == nil || !strings.Contains(err.Error(), "sealed") {
			t.Errorf("applying a sealed alias without keys: %v, want an error saying it is sealed", err)
		}
		return pgx.ErrTxClosed // roll back
	})
	if err != pgx.ErrTxClosed {
		t.Fatal(err)
	}
}
