package connection

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// t0 is the fixed start of every scenario; tests add durations to it and
// never read the clock.
var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

var (
	cid = id(0xC)
	uid = id(0xA)
)

func id(n int) uuid.UUID { return uuid.MustParse(fmt.Sprintf("00000000-0000-0000-0000-%012x", n)) }

var creds1 = Credentials{KeyID: "k1", Fingerprint: "f1", AccessExpiresAt: t0.Add(31 * time.Minute), RefreshExpiresAt: t0.Add(7 * 24 * time.Hour)}
var creds2 = Credentials{KeyID: "k1", Fingerprint: "f2", AccessExpiresAt: t0.Add(61 * time.Minute), RefreshExpiresAt: t0.Add(7 * 24 * time.Hour)}

// Histories, so each scenario's given reads as its story.
var (
	attempted = []Event{ProviderConnectionAttempted{ConnectionID: cid, UserID: uid, ProviderSlug: "schwab", Alias: "Personal", ExpiresAt: t0.Add(10 * time.Minute), At: t0}}
	active    = append(clone(attempted), ProviderConnectionSucceeded{ConnectionID: cid, Credentials: creds1, At: t0.Add(time.Minute)})
	needsAuth = append(clone(active), ProviderTokenRefreshFailed{ConnectionID: cid, Reason: FailedAuthentication, At: t0.Add(time.Hour)},
		ProviderReauthenticationRequired{ConnectionID: cid, Reason: FailedAuthentication, At: t0.Add(time.Hour)})
	failed       = append(clone(attempted), ProviderConnectionFailed{ConnectionID: cid, Reason: FailedAccessDenied, At: t0.Add(time.Minute)})
	disconnected = append(clone(active), ProviderDisconnectionAttempted{ConnectionID: cid, At: t0.Add(2 * time.Hour)},
		ProviderDisconnectionSucceeded{ConnectionID: cid, At: t0.Add(2 * time.Hour)})
)

func clone(e []Event) []Event { return append([]Event(nil), e...) }

// scenario is one given-events / when-command / then-events case.
type scenario struct {
	name  string
	given []Event
	when  func(c *Connection) ([]Event, error)
	then  []Event
	err   error
}

func run(t *testing.T, cases []scenario) {
	t.Helper()
	for _, sc := range cases {
		t.Run(sc.name, func(t *testing.T) {
			c := New(cid)
			c.Apply(sc.given...)
			got, err := sc.when(c)
			switch {
			case sc.err == nil && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case sc.err != nil && !errors.Is(err, sc.err):
				t.Fatalf("error = %v, want %v", err, sc.err)
			}
			if !reflect.DeepEqual(got, sc.then) {
				t.Fatalf("events:\n got %#v\nwant %#v", got, sc.then)
			}
			c.Apply(got...)
		})
	}
}

func TestStart(t *testing.T) {
	start := func(alias string) func(c *Connection) ([]Event, error) {
		return func(c *Connection) ([]Event, error) {
			return c.Start(Start{UserID: uid, ProviderSlug: "schwab", Alias: alias, ExpiresAt: t0.Add(10 * time.Minute), At: t0})
		}
	}
	run(t, []scenario{
		{name: "new connection", when: start("  Personal "), then: attempted},
		{name: "twice", given: attempted, when: start("Personal"), err: ErrExists},
		{name: "empty alias", when: start("   "), err: ErrInvalidAlias},
		{name: "long alias", when: start(strings.Repeat("a", MaxAliasLength+1)), err: ErrInvalidAlias},
		{name: "control character", when: start("a\x00b"), err: ErrInvalidAlias},
		{name: "zero-width character", when: start("a\u200bb"), err: ErrInvalidAlias},
		{name: "alias of the longest length", when: start(strings.Repeat("é", MaxAliasLength)), then: []Event{ProviderConnectionAttempted{
			ConnectionID: cid, UserID: uid, ProviderSlug: "schwab", Alias: strings.Repeat("é", MaxAliasLength), ExpiresAt: t0.Add(10 * time.Minute), At: t0}}},
		{name: "deadline not after now", when: func(c *Connection) ([]Event, error) {
			return c.Start(Start{UserID: uid, ProviderSlug: "schwab", Alias: "x", ExpiresAt: t0, At: t0})
		}, err: ErrInvalidInput},
	})
}

func TestCompleteAndFail(t *testing.T) {
	run(t, []scenario{
		{name: "complete", given: attempted, when: func(c *Connection) ([]Event, error) { return c.Complete(creds1, t0.Add(time.Minute)) },
			then: []Event{ProviderConnectionSucceeded{ConnectionID: cid, Credentials: creds1, At: t0.Add(time.Minute)}}},
		{name: "complete too late", given: attempted, when: func(c *Connection) ([]Event, error) { return c.Complete(creds1, t0.Add(10*time.Minute)) },
			err: ErrAuthorizationExpired},
		{name: "complete twice (replayed callback)", given: active, when: func(c *Connection) ([]Event, error) { return c.Complete(creds1, t0.Add(2*time.Minute)) },
			err: ErrNoAuthorizationPending},
		{name: "complete without credentials", given: attempted, when: func(c *Connection) ([]Event, error) { return c.Complete(Credentials{}, t0.Add(time.Minute)) },
			err: ErrInvalidInput},
		{name: "complete nothing", when: func(c *Connection) ([]Event, error) { return c.Complete(creds1, t0) }, err: ErrNotFound},
		{name: "fail", given: attempted, when: func(c *Connection) ([]Event, error) { return c.Fail(FailedAccessDenied, t0.Add(time.Minute)) },
			then: failed[1:]},
		{name: "fail after failing", given: failed, when: func(c *Connection) ([]Event, error) { return c.Fail(FailedAccessDenied, t0.Add(time.Minute)) },
			err: ErrNoAuthorizationPending},
	})
	c := New(cid)
	c.Apply(failed...)
	if c.Status() != StatusFailed || c.Status().Live() {
		t.Fatalf("after a failed first authorisation: %s", c.Status())
	}
	c = New(cid)
	c.Apply(active...)
	if c.Status() != StatusActive || c.ConnectedAt() != t0.Add(time.Minute) || c.ReauthorizeBy() != creds1.RefreshExpiresAt {
		t.Fatalf("after success: %s %s %s", c.Status(), c.ConnectedAt(), c.ReauthorizeBy())
	}
}

func TestRefresh(t *testing.T) {
	at := t0.Add(25 * time.Minute)
	run(t, []scenario{
		{name: "attempt", given: active, when: func(c *Connection) ([]Event, error) { return c.AttemptRefresh(RefreshScheduled, at) },
			then: []Event{ProviderTokenRefreshAttempted{ConnectionID: cid, Trigger: RefreshScheduled, At: at}}},
		{name: "succeed", given: active, when: func(c *Connection) ([]Event, error) { return c.RefreshSucceeded(creds2, at) },
			then: []Event{ProviderTokenRefreshSucceeded{ConnectionID: cid, Credentials: creds2, At: at}}},
		{name: "transient failure changes nothing", given: active, when: func(c *Connection) ([]Event, error) {
			return c.RefreshFailed(FailedProviderUnavailable, true, at)
		}, then: []Event{ProviderTokenRefreshFailed{ConnectionID: cid, Reason: FailedProviderUnavailable, Transient: true, At: at}}},
		{name: "refused credentials need the user", given: active, when: func(c *Connection) ([]Event, error) {
			return c.RefreshFailed(FailedAuthentication, false, at)
		}, then: []Event{
			ProviderTokenRefreshFailed{ConnectionID: cid, Reason: FailedAuthentication, At: at},
			ProviderReauthenticationRequired{ConnectionID: cid, Reason: FailedAuthentication, At: at},
		}},
		{name: "not while pending", given: attempted, when: func(c *Connection) ([]Event, error) { return c.AttemptRefresh(RefreshManual, at) }, err: ErrNotActive},
		{name: "not when it needs the user", given: needsAuth, when: func(c *Connection) ([]Event, error) { return c.AttemptRefresh(RefreshManual, at) }, err: ErrNotActive},
		{name: "not when disconnected", given: disconnected, when: func(c *Connection) ([]Event, error) { return c.AttemptRefresh(RefreshManual, at) }, err: ErrDisconnected},
		{name: "not when failed", given: failed, when: func(c *Connection) ([]Event, error) { return c.AttemptRefresh(RefreshManual, at) }, err: ErrFailed},
	})
}

func TestReauthentication(t *testing.T) {
	at := t0.Add(3 * time.Hour)
	run(t, []scenario{
		{name: "require", given: active, when: func(c *Connection) ([]Event, error) { return c.RequireReauthentication(FailedRefreshTokenExpired, at) },
			then: []Event{ProviderReauthenticationRequired{ConnectionID: cid, Reason: FailedRefreshTokenExpired, At: at}}},
		{name: "require again decides nothing", given: needsAuth, when: func(c *Connection) ([]Event, error) {
			return c.RequireReauthentication(FailedRefreshTokenExpired, at)
		}},
		{name: "reauthorize", given: needsAuth, when: func(c *Connection) ([]Event, error) { return c.Reauthorize(at.Add(10*time.Minute), at) },
			then: []Event{ProviderConnectionAttempted{ConnectionID: cid, UserID: uid, ProviderSlug: "schwab", Reauthorization: true, ExpiresAt: at.Add(10 * time.Minute), At: at}}},
		{name: "reauthorize a failed one", given: failed, when: func(c *Connection) ([]Event, error) { return c.Reauthorize(at.Add(10*time.Minute), at) },
			err: ErrNotActive},
		{name: "reauthorization completes", given: append(clone(needsAuth), ProviderConnectionAttempted{ConnectionID: cid, UserID: uid, ProviderSlug: "schwab", Reauthorization: true, ExpiresAt: at.Add(10 * time.Minute), At: at}),
			when: func(c *Connection) ([]Event, error) { return c.Complete(creds2, at.Add(time.Minute)) },
			then: []Event{ProviderConnectionSucceeded{ConnectionID: cid, Credentials: creds2, At: at.Add(time.Minute)}}},
	})
	// A declined re-authorisation leaves the connection as it was.
	c := New(cid)
	c.Apply(needsAuth...)
	c.Apply(ProviderConnectionAttempted{ConnectionID: cid, UserID: uid, ProviderSlug: "schwab", Reauthorization: true, ExpiresAt: at.Add(10 * time.Minute), At: at},
		ProviderConnectionFailed{ConnectionID: cid, Reason: FailedAccessDenied, At: at})
	if c.Status() != StatusNeedsReauth || !c.AuthorizationPending().IsZero() {
		t.Fatalf("declined re-authorisation: %s, pending %s", c.Status(), c.AuthorizationPending())
	}
	// A completed one makes it active again, keeping the first connection time.
	c.Apply(ProviderConnectionAttempted{ConnectionID: cid, UserID: uid, ProviderSlug: "schwab", Reauthorization: true, ExpiresAt: at.Add(20 * time.Minute), At: at.Add(10 * time.Minute)},
		ProviderConnectionSucceeded{ConnectionID: cid, Credentials: creds2, At: at.Add(11 * time.Minute)})
	if c.Status() != StatusActive || c.ConnectedAt() != t0.Add(time.Minute) || c.Credentials() != creds2 || c.Alias() != "Personal" {
		t.Fatalf("completed re-authorisation: %s %s %+v %q", c.Status(), c.ConnectedAt(), c.Credentials(), c.Alias())
	}
}

func TestRenameAndDisconnect(t *testing.T) {
	at := t0.Add(5 * time.Hour)
	attemptedDisconnect := append(clone(active), ProviderDisconnectionAttempted{ConnectionID: cid, At: at})
	run(t, []scenario{
		{name: "rename", given: active, when: func(c *Connection) ([]Event, error) { return c.Rename(" Business ", at) },
			then: []Event{ProviderConnectionRenamed{ConnectionID: cid, Alias: "Business", At: at}}},
		{name: "rename to the same", given: active, when: func(c *Connection) ([]Event, error) { return c.Rename("Personal", at) }},
		{name: "rename to nothing", given: active, when: func(c *Connection) ([]Event, error) { return c.Rename("", at) }, err: ErrInvalidAlias},
		{name: "rename disconnected", given: disconnected, when: func(c *Connection) ([]Event, error) { return c.Rename("x", at) }, err: ErrDisconnected},
		{name: "attempt disconnect", given: needsAuth, when: func(c *Connection) ([]Event, error) { return c.AttemptDisconnect(at) },
			then: []Event{ProviderDisconnectionAttempted{ConnectionID: cid, At: at}}},
		{name: "disconnect twice", given: disconnected, when: func(c *Connection) ([]Event, error) { return c.AttemptDisconnect(at) }, err: ErrDisconnected},
		{name: "disconnected", given: attemptedDisconnect, when: func(c *Connection) ([]Event, error) { return c.Disconnected(true, "", at) },
			then: []Event{ProviderDisconnectionSucceeded{ConnectionID: cid, RevokedAtProvider: true, At: at}}},
		{name: "provider could not revoke", given: attemptedDisconnect, when: func(c *Connection) ([]Event, error) {
			return c.Disconnected(false, FailedProviderUnavailable, at)
		}, then: []Event{ProviderDisconnectionFailed{ConnectionID: cid, Reason: FailedProviderUnavailable, At: at}}},
		{name: "outcome without attempt", given: active, when: func(c *Connection) ([]Event, error) { return c.Disconnected(true, "", at) },
			err: ErrNoDisconnectionPending},
	})
	for _, outcome := range []Event{ProviderDisconnectionSucceeded{ConnectionID: cid, At: at}, ProviderDisconnectionFailed{ConnectionID: cid, Reason: FailedProviderUnavailable, At: at}} {
		c := New(cid)
		c.Apply(attemptedDisconnect...)
		c.Apply(outcome)
		if c.Status() != StatusDisconnected || c.Status().Live() || c.Credentials() != (Credentials{}) || c.DisconnectedAt() != at {
			t.Fatalf("after %s: %s %+v", outcome.EventType(), c.Status(), c.Credentials())
		}
	}
}

// TestEventsCarryNoSecrets: no payload field may be named like a secret.
func TestEventsCarryNoSecrets(t *testing.T) {
	for _, e := range AllEvents() {
		walk(t, e.EventType(), reflect.TypeOf(e))
	}
}

func walk(t *testing.T, path string, typ reflect.Type) {
	if typ.Kind() != reflect.Struct || typ == reflect.TypeOf(time.Time{}) {
		return
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name := strings.ToLower(f.Name + " " + f.Tag.Get("json"))
		for _, bad := range []string{"token", "secret", "password", "code", "verifier"} {
			if strings.Contains(name, bad) {
				t.Errorf("%s.%s: a field named like a secret", path, f.Name)
			}
		}
		walk(t, path+"."+f.Name, f.Type)
	}
}

func TestSync(t *testing.T) {
	s1, s2 := id(0x51), id(0x52)
	at := t0.Add(3 * time.Hour)
	req := func(sid uuid.UUID, when time.Time, force bool) func(c *Connection) ([]Event, error) {
		return func(c *Connection) ([]Event, error) {
			return c.StartSync(SyncRequest{SyncID: sid, Trigger: SyncManual, Force: force, From: "2025-03-01", To: "2026-03-01", At: when})
		}
	}
	started := func(sid uuid.UUID, when time.Time) Event {
		return SyncStarted{ConnectionID: cid, SyncID: sid, Trigger: SyncManual, From: "2025-03-01", To: "2026-03-01", At: when}
	}
	completed := SyncCompleted{ConnectionID: cid, SyncID: s1, Accounts: 1, Counts: SyncCounts{Created: 2}, At: at.Add(time.Minute)}
	running := append(clone(active), started(s1, at))
	done := append(clone(running), completed)
	run(t, []scenario{
		{name: "start", given: active, when: req(s1, at, false), then: []Event{started(s1, at)}},
		{name: "one at a time", given: running, when: req(s2, at.Add(time.Minute), true), err: ErrSyncRunning},
		{name: "a stale sync no longer blocks", given: running, when: req(s2, at.Add(SyncStale), false), then: []Event{started(s2, at.Add(SyncStale))}},
		{name: "too soon after the last", given: done, when: req(s2, at.Add(2*time.Minute), false), err: ErrSyncTooSoon},
		{name: "forced", given: done, when: req(s2, at.Add(2*time.Minute), true), then: []Event{
			SyncStarted{ConnectionID: cid, SyncID: s2, Trigger: SyncManual, Force: true, From: "2025-03-01", To: "2026-03-01", At: at.Add(2 * time.Minute)}}},
		{name: "after the interval", given: done, when: req(s2, at.Add(MinSyncInterval), false), then: []Event{started(s2, at.Add(MinSyncInterval))}},
		{name: "not while it needs the user", given: needsAuth, when: req(s1, at, false), err: ErrNotActive},
		{name: "window backwards", given: active, when: func(c *Connection) ([]Event, error) {
			return c.StartSync(SyncRequest{SyncID: s1, Trigger: SyncManual, From: "2026-03-01", To: "2025-03-01", At: at})
		}, err: ErrInvalidInput},
		{name: "complete", given: running, when: func(c *Connection) ([]Event, error) {
			return c.CompleteSync(s1, 1, SyncCounts{Created: 2}, nil, at.Add(time.Minute))
		}, then: []Event{completed}},
		{name: "complete another", given: running, when: func(c *Connection) ([]Event, error) {
			return c.CompleteSync(s2, 1, SyncCounts{}, nil, at)
		}, err: ErrNoSuchSync},
		{name: "fail", given: running, when: func(c *Connection) ([]Event, error) { return c.FailSync(s1, FailedAuthentication, at) },
			then: []Event{SyncFailed{ConnectionID: cid, SyncID: s1, Reason: FailedAuthentication, At: at}}},
	})
	c := New(cid)
	c.Apply(done...)
	if sid, _ := c.Syncing(); sid != uuid.Nil || c.LastSyncAt() != completed.At {
		t.Fatalf("after completion: syncing %s, last %s", sid, c.LastSyncAt())
	}
}
