package user

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// userFieldsInSnapshot names every field of User that Snapshot carries. A
// field added to User fails TestSnapshotCarriesEveryField until it is listed
// here, which is the moment to add it to Snapshot, Snapshot(), FromSnapshot
// and snapshotShapes under a new SnapshotSchema.
var userFieldsInSnapshot = []string{
	"id", "registered", "registeredAt", "email", "roles", "verified", "verifications",
	"failedAttempts", "lastFailureAt", "lockedUntil", "sessions", "tokenVersion", "tokensRotatedAt", "resets", "erased",
}

// snapshotShapes are the JSON keys of a snapshot of each schema, nested ones
// as "sessions.id". Stored snapshots keep their shape forever, so a schema's
// list never changes: a new shape is a new schema.
var snapshotShapes = map[int][]string{
	1: {
		"email", "failed_attempts", "id", "locked_until", "registered", "registered_at",
		"resets", "resets.at", "resets.expires_at", "resets.id", "resets.used", "roles", "schema",
		"sessions", "sessions.created_at", "sessions.device", "sessions.ended_at", "sessions.expires_at",
		"sessions.id", "sessions.ip", "sessions.last_active_at", "sessions.last_ip",
		"sessions.refresh_generation", "sessions.revoke_reason", "sessions.status",
		"sessions.token_version", "sessions.user_agent",
		"token_version", "tokens_rotated_at", "verifications", "verified",
	},
	2: {
		"email", "failed_attempts", "id", "last_failure_at", "locked_until", "registered", "registered_at",
		"resets", "resets.at", "resets.expires_at", "resets.id", "resets.used", "roles", "schema",
		"sessions", "sessions.created_at", "sessions.device", "sessions.ended_at", "sessions.expires_at",
		"sessions.id", "sessions.ip", "sessions.last_active_at", "sessions.last_ip",
		"sessions.refresh_generation", "sessions.revoke_reason", "sessions.status",
		"sessions.token_version", "sessions.user_agent",
		"token_version", "tokens_rotated_at", "verifications", "verified",
	},
	3: {
		"email", "erased", "failed_attempts", "id", "last_failure_at", "locked_until", "registered", "registered_at",
		"resets", "resets.at", "resets.expires_at", "resets.id", "resets.used", "roles", "schema",
		"sessions", "sessions.created_at", "sessions.device", "sessions.ended_at", "sessions.expires_at",
		"sessions.id", "sessions.ip", "sessions.last_active_at", "sessions.last_ip",
		"sessions.refresh_generation", "sessions.revoke_reason", "sessions.status",
		"sessions.token_version", "sessions.user_agent",
		"token_version", "tokens_rotated_at", "verifications", "verified",
	},
}

// lifeStory is a user's history with every event type in it, made by the
// aggregate's own commands so that it is one the aggregate could decide. It
// leaves every field of User non-zero and forgets ended sessions on the
// way (a login 40 days on), so a snapshot of it exercises all of the state.
func lifeStory(tb testing.TB) []Event {
	tb.Helper()
	u := &User{}
	var story []Event
	do := func(events []Event, err error) {
		tb.Helper()
		if err != nil && len(events) == 0 {
			tb.Fatalf("step %d: %v", len(story), err)
		}
		u.Apply(events...)
		story = append(story, events...)
	}
	sid := func(n int) LoginAttempt { return login(id(n), true, t0) }
	at := func(a LoginAttempt, t time.Time, limit int) LoginAttempt {
		a.At, a.ExpiresAt, a.SessionLimit = t, t.Add(ttl), limit
		return a
	}

	do(u.Register(uid, email, RoleUser, t0))
	do(u.RequestVerification(rid1, t0))
	do(u.RequestVerification(rid2, t0.Add(time.Minute)))
	do(u.VerifyEmail(rid2, t0.Add(2*time.Minute)))
	do(u.Login(at(sid(1), t0.Add(time.Hour), 0)))
	do(u.Login(at(login(id(2), false, t0), t0.Add(time.Hour), 0))) // a failure
	do(u.RequestPasswordReset(askReset(rid3, t0.Add(2*time.Hour))))
	do(u.CompletePasswordReset(rid3, t0.Add(2*time.Hour+time.Minute))) // revokes session 1
	do(u.RequestPasswordReset(askReset(rid4, t0.Add(2*time.Hour+2*time.Minute))))
	do(u.Login(at(sid(2), t0.Add(3*time.Hour), 0)))
	do(u.Refresh(refresh(id(2), 1, t0.Add(3*time.Hour+time.Minute))))
	do(u.Refresh(refresh(id(2), 1, t0.Add(3*time.Hour+2*time.Minute)))) // reuse: revoked
	do(u.Login(at(sid(3), t0.Add(4*time.Hour), 0)))
	do(u.Logout(id(3), t0.Add(4*time.Hour+time.Minute)))
	do(u.Login(at(sid(4), t0.Add(5*time.Hour), 0)))
	do(u.Login(at(sid(5), t0.Add(5*time.Hour+time.Minute), 1))) // evicts session 4
	do(u.RecordPasswordRehash(t0.Add(5 * time.Hour)))
	do(u.SetRoles([]Role{RoleAdmin, RoleUser}, t0.Add(6*time.Hour)))
	do(u.SetRoles([]Role{RoleAdmin}, t0.Add(6*time.Hour+time.Minute)))
	do(u.RotateTokens("laptop stolen", t0.Add(7*time.Hour)))
	do(u.RecordAccessDenied(AccessDenial{SessionID: id(5), Method: "GET", Route: "/api/v1/audit-events", Permission: PermissionAuditRead, IP: ip, At: t0.Add(7 * time.Hour)}))
	do(u.RecordGlobalRotation(2, "key rotation", t0.Add(8*time.Hour)))
	do(u.RecordAuditTrailView(AuditView{SessionID: id(5), Route: "GET /api/v1/audit-events", Filters: map[string]string{"limit": "10"}, At: t0.Add(8 * time.Hour)}))

	// 40 days on: sessions 1 to 4 ended more than EndedSessionRetention
	// ago and are forgotten; 5 expired without ending and stays.
	later := t0.Add(40 * 24 * time.Hour)
	do(u.Login(at(sid(6), later, 0)))
	do(u.Login(at(sid(7), later.Add(time.Minute), 0)))
	do(u.RevokeOtherSessions(id(7), later.Add(2*time.Minute))) // revokes 6
	do(u.Login(at(sid(8), later.Add(3*time.Minute), 0)))
	do(u.RevokeSession(id(8), later.Add(4*time.Minute)))
	for i := range MaxFailedLogins {
		do(u.Login(at(login(id(100+i), false, t0), later.Add(time.Hour), 0))) // the last locks out
	}
	do(u.Login(at(login(id(200), false, t0), later.Add(2*time.Hour), 0))) // one failure after the lockout
	do(u.Erase(uid, later.Add(3*time.Hour)))                              // ends session 7, forgets the personal data
	return story
}

// roundTrip is what a stored snapshot goes through: JSON and back.
func roundTrip(tb testing.TB, s Snapshot) Snapshot {
	tb.Helper()
	b, err := json.Marshal(s)
	require.NoError(tb, err)
	var back Snapshot
	require.NoError(tb, json.Unmarshal(b, &back))
	return back
}

func TestLifeStoryCoversEveryEventType(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range lifeStory(t) {
		seen[e.EventType()] = true
	}
	for _, e := range slices.Concat(AllEvents(), GlobalEvents()) {
		if !seen[e.EventType()] {
			t.Errorf("lifeStory has no %s: add one, so snapshots are tested with its effect", e.EventType())
		}
	}
	// And the story forgets sessions on the way, so snapshots are taken
	// before and after that too.
	u := FromHistory(lifeStory(t))
	for n := 1; n <= 4; n++ {
		if _, kept := u.Session(id(n)); kept {
			t.Errorf("session %d is still kept at the end of lifeStory", n)
		}
	}
	if _, kept := u.Session(id(5)); !kept {
		t.Error("session 5, expired but never ended, was forgotten")
	}
}

// TestSnapshotRestoresTheFoldedUser takes a snapshot after every prefix of
// the story: restored from JSON it equals the user folded from the same
// events, unexported fields included, and folding the rest of the story
// into both gives equal users again.
func TestSnapshotRestoresTheFoldedUser(t *testing.T) {
	story := lifeStory(t)
	whole := FromHistory(story)
	for k := 0; k <= len(story); k++ {
		folded := FromHistory(story[:k])
		restored, err := FromSnapshot(roundTrip(t, folded.Snapshot()))
		require.NoError(t, err)
		require.Equal(t, folded, restored, "snapshot after %d events", k)

		folded.Apply(story[k:]...)
		restored.Apply(story[k:]...)
		require.Equal(t, folded, restored, "snapshot after %d events, then the rest", k)
		require.Equal(t, whole, restored, "snapshot after %d events, then the rest", k)
	}
}

// TestSnapshotCarriesEveryField fails when User gains a field that the
// snapshot does not know of, and checks that the story sets every field, so
// that the round trip above would notice one the snapshot loses.
func TestSnapshotCarriesEveryField(t *testing.T) {
	typ := reflect.TypeFor[User]()
	var fields []string
	for i := range typ.NumField() {
		fields = append(fields, typ.Field(i).Name)
	}
	require.Equal(t, userFieldsInSnapshot, fields,
		"User's fields changed: carry the new one in Snapshot under a new SnapshotSchema, then list it in userFieldsInSnapshot")

	u := reflect.ValueOf(FromHistory(lifeStory(t))).Elem()
	for i := range typ.NumField() {
		if u.Field(i).IsZero() {
			t.Errorf("lifeStory leaves User.%s zero: extend it so the round trip covers the field", typ.Field(i).Name)
		}
	}

	for _, st := range []reflect.Type{reflect.TypeFor[Snapshot](), reflect.TypeFor[Session](), reflect.TypeFor[ResetSnapshot]()} {
		for i := range st.NumField() {
			if f := st.Field(i); !f.IsExported() || f.Tag.Get("json") == "" {
				t.Errorf("%s.%s: every field of a snapshot must be exported and named in JSON", st.Name(), f.Name)
			}
		}
	}
}

// TestSnapshotShapeIsTheSchemas keeps a schema's JSON shape fixed: a field
// added, removed or renamed in Snapshot or Session changes the keys, and
// then needs a new SnapshotSchema with its own entry in snapshotShapes.
func TestSnapshotShapeIsTheSchemas(t *testing.T) {
	b, err := json.Marshal(FromHistory(lifeStory(t)).Snapshot())
	require.NoError(t, err)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(b, &doc))
	var keys []string
	for k, v := range doc {
		keys = append(keys, k)
		if list, ok := v.([]any); ok && len(list) > 0 {
			if item, ok := list[0].(map[string]any); ok {
				for nested := range maps.Keys(item) {
					keys = append(keys, k+"."+nested)
				}
			}
		}
	}
	slices.Sort(keys)
	want, ok := snapshotShapes[SnapshotSchema]
	require.True(t, ok, "no shape recorded for SnapshotSchema %d", SnapshotSchema)
	require.Equal(t, want, keys, "the snapshot's shape changed: raise SnapshotSchema and record the new shape")
}

func TestFromSnapshotRefusesOtherSchemas(t *testing.T) {
	s := FromHistory(verified()).Snapshot()
	for _, schema := range []int{0, SnapshotSchema + 1} {
		s.Schema = schema
		u, err := FromSnapshot(s)
		if !errors.Is(err, ErrSnapshotSchema) || u != nil {
			t.Errorf("schema %d: %v, %v; want ErrSnapshotSchema", schema, u, err)
		}
	}
}

// TestSnapshotSharesNoMemory: a snapshot is a value; folding more events into
// the user does not change it, and a restored user does not write into it.
func TestSnapshotSharesNoMemory(t *testing.T) {
	u := FromHistory(history(verified(), loggedIn(sid1, t0), []Event{resetRequested(rid1, t0)}))
	s := u.Snapshot()
	before := roundTrip(t, s)
	more := []Event{
		UserTokenRefreshed{UserID: uid, SessionID: sid1, RefreshGeneration: 2, TokenVersion: 1, ExpiresAt: t0.Add(2 * ttl), At: t0.Add(time.Hour)},
		UserPasswordResetCompleted{UserID: uid, RequestID: rid1, At: t0.Add(time.Minute)},
		UserVerificationRequested{UserID: uid, RequestID: rid2, ExpiresAt: t0.Add(VerificationTTL), At: t0},
		UserRoleGranted{UserID: uid, Role: RoleAdmin, At: t0},
	}
	u.Apply(more...)
	require.Equal(t, before, s, "folding into the user changed its snapshot")

	restored, err := FromSnapshot(s)
	require.NoError(t, err)
	restored.Apply(more...)
	require.Equal(t, before, s, "folding into a restored user changed the snapshot")
}

// TestEndedSessionsAreForgotten: a login forgets sessions that ended or
// expired more than EndedSessionRetention before it, keeps younger ones,
// and commands on a forgotten session refuse with no events.
func TestEndedSessionsAreForgotten(t *testing.T) {
	ended := t0.Add(time.Hour)
	given := history(verified(), loggedIn(sid1, t0), loggedIn(sid2, t0), loggedIn(sid3, t0),
		[]Event{
			UserLoggedOut{UserID: uid, SessionID: sid1, At: ended},
			UserSessionRevoked{UserID: uid, SessionID: sid2, Reason: RevokedByUser, At: ended.Add(24 * time.Hour)},
		})
	u := FromHistory(given)
	for _, sid := range []uuid.UUID{sid1, sid2, sid3} {
		_, kept := u.Session(sid)
		require.True(t, kept)
	}

	// Exactly the retention after session 1 ended: not more, so kept.
	folds(t, u)(u.Login(login(sid4, true, ended.Add(EndedSessionRetention))))
	_, kept := u.Session(sid1)
	require.True(t, kept, "a session is kept for the whole retention")

	next := ended.Add(EndedSessionRetention + time.Minute)
	folds(t, u)(u.Login(login(id(5), true, next)))
	_, kept = u.Session(sid1)
	require.False(t, kept, "session 1 ended more than the retention before the login")
	_, kept = u.Session(sid2)
	require.True(t, kept, "session 2 ended within the retention")
	_, kept = u.Session(sid3)
	require.True(t, kept, "session 3 expired within the retention")

	for name, decide := range map[string]func() ([]Event, error){
		"logout":  func() ([]Event, error) { return u.Logout(sid1, next) },
		"revoke":  func() ([]Event, error) { return u.RevokeSession(sid1, next) },
		"refresh": func() ([]Event, error) { return u.Refresh(refresh(sid1, 1, next)) },
	} {
		events, err := decide()
		require.Empty(t, events, name)
		require.ErrorIs(t, err, ErrSessionNotFound, name)
	}
	events, err := u.RevokeSession(sid3, next)
	require.NoError(t, err)
	require.Len(t, events, 1, "session 3 expired within the retention: revoking it is still recorded")

	// More than the retention after session 3 expired, unended: forgotten too.
	later := t0.Add(ttl + EndedSessionRetention + time.Minute)
	folds(t, u)(u.Login(login(id(6), true, later)))
	_, kept = u.Session(sid3)
	require.False(t, kept, "session 3 expired more than the retention before the login")
	events, err = u.RevokeSession(sid3, later)
	require.Empty(t, events)
	require.ErrorIs(t, err, ErrSessionNotFound)
}
