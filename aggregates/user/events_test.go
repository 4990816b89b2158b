package user

import (
	"encoding/json"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// contractNames are the registered event names; they are stored in the log
// forever, so this list changes only by adding.
var contractNames = []string{
	"UserRegistered", "UserVerificationRequested", "UserEmailVerified",
	"UserLoginAttempted", "UserLoginSucceeded", "UserLoginFailed", "UserLockedOut",
	"UserLoggedOut", "UserSessionRevoked", "UserSessionEvicted",
	"UserTokenRefreshed", "UserRefreshTokenReuseDetected",
	"UserPasswordResetRequested", "UserPasswordResetCompleted", "UserPasswordRehashed",
	"UserRoleGranted", "UserRoleRevoked", "UserTokensRotated", "UserAccessDenied",
	"UserAuditTrailViewed", "UserErased",
}

func TestEventNamesAreTheContract(t *testing.T) {
	var names []string
	for _, e := range AllEvents() {
		// The Go type name equals the stored name, so the two cannot drift
		// apart silently; renaming a type is then a visible contract change.
		if got := reflect.TypeOf(e).Name(); got != e.EventType() {
			t.Errorf("%s.EventType() = %q", got, e.EventType())
		}
		names = append(names, e.EventType())
	}
	if !slices.Equal(names, contractNames) {
		t.Fatalf("AllEvents names:\n got %v\nwant %v", names, contractNames)
	}
}

var (
	snakeCase = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	// secretish are words that must not name a payload field: the identity contract (docs/identity.md)
	// 10 keeps passwords, tokens, hashes and links out of the log.
	secretish = []string{"password", "token", "hash", "secret", "link", "digest", "credential"}
	// allowedNames mention a token without holding one.
	allowedNames = map[string]bool{"token_version": true}
)

// secretWord returns the secret-ish word in a JSON field name, if any; ids
// are exempt, because an id names a secret stored elsewhere without being one.
func secretWord(name string) (string, bool) {
	if allowedNames[name] || strings.HasSuffix(name, "_id") {
		return "", false
	}
	for _, w := range secretish {
		if strings.Contains(name, w) {
			return w, true
		}
	}
	return "", false
}

// TestEventPayloadsCarryNoSecrets walks every event struct, nested structs
// included, and checks each JSON field name.
func TestEventPayloadsCarryNoSecrets(t *testing.T) {
	for _, e := range AllEvents() {
		walkFields(t, e.EventType(), reflect.TypeOf(e), func(path, name string, f reflect.StructField) {
			if !f.IsExported() {
				t.Errorf("%s: unexported field %s is not stored", path, f.Name)
				return
			}
			if !snakeCase.MatchString(name) {
				t.Errorf("%s: JSON name %q is not snake_case", path, name)
			}
			if w, bad := secretWord(name); bad {
				t.Errorf("%s: JSON name %q looks like it carries a secret (%q)", path, name, w)
			}
		})
	}
}

// walkFields calls visit for every field of t and of structs nested in it,
// with the field's JSON name; time.Time and uuid.UUID are leaves.
func walkFields(tb testing.TB, path string, t reflect.Type, visit func(path, name string, f reflect.StructField)) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t.PkgPath() != reflect.TypeOf(UserRegistered{}).PkgPath() {
		return
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "" {
			tb.Errorf("%s.%s: no json tag, so its stored name would follow the Go name", path, f.Name)
			tag = f.Name
		}
		visit(path+"."+f.Name, tag, f)
		walkFields(tb, path+"."+f.Name, f.Type, visit)
	}
}

func TestSecretWordCheckCatchesOffenders(t *testing.T) {
	type leaky struct {
		RefreshToken string `json:"refresh_token"`
		PasswordHash string `json:"password_hash"`
		ResetLink    string `json:"reset_link"`
		TokenID      string `json:"token_id"`
		Version      int64  `json:"token_version"`
		Secret       string `json:"client_secret"`
	}
	var flagged []string
	walkFields(t, "leaky", reflect.TypeOf(leaky{}), func(_, name string, _ reflect.StructField) {
		if _, bad := secretWord(name); bad {
			flagged = append(flagged, name)
		}
	})
	if want := []string{"refresh_token", "password_hash", "reset_link", "client_secret"}; !slices.Equal(flagged, want) {
		t.Fatalf("flagged %v, want %v", flagged, want)
	}
}

// TestEventsRoundTripJSON checks that every decided event survives the
// store's JSON encoding unchanged, so replay rebuilds the same state.
func TestEventsRoundTripJSON(t *testing.T) {
	for _, e := range sampleEvents() {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("%s: %v", e.EventType(), err)
		}
		back := reflect.New(reflect.TypeOf(e))
		if err := json.Unmarshal(b, back.Interface()); err != nil {
			t.Fatalf("%s: %v", e.EventType(), err)
		}
		if got := back.Elem().Interface(); !reflect.DeepEqual(got, e) {
			t.Errorf("%s round trip:\n got %#v\nwant %#v", e.EventType(), got, e)
		}
	}
}

// sampleEvents returns one filled-in value of every event type, checked to
// cover AllEvents, so a new event cannot skip the round-trip test.
func sampleEvents() []Event {
	at := t0
	out := []Event{
		UserRegistered{UserID: uid, Email: email, Role: RoleUser, At: at},
		UserVerificationRequested{UserID: uid, RequestID: rid1, ExpiresAt: at.Add(VerificationTTL), At: at},
		UserEmailVerified{UserID: uid, RequestID: rid1, Method: VerifiedByEmailLink, At: at},
		attempted(at),
		succeeded(sid1, 1, at),
		UserLoginFailed{UserID: uid, Reason: LoginFailedInvalidCredentials, FailedAttempts: 2, At: at},
		UserLockedOut{UserID: uid, FailedAttempts: 5, Until: at.Add(LockoutDuration), At: at},
		UserLoggedOut{UserID: uid, SessionID: sid1, At: at},
		UserSessionRevoked{UserID: uid, SessionID: sid1, Reason: RevokedByUser, At: at},
		UserSessionEvicted{UserID: uid, SessionID: sid1, Limit: 10, At: at},
		refreshed(2, 1, at),
		UserRefreshTokenReuseDetected{UserID: uid, SessionID: sid1, PresentedGeneration: 1, CurrentGeneration: 2, IP: ip, UserAgent: ua, At: at},
		resetRequested(rid1, at),
		UserPasswordResetCompleted{UserID: uid, RequestID: rid1, At: at},
		UserPasswordRehashed{UserID: uid, At: at},
		UserRoleGranted{UserID: uid, Role: RoleAdmin, At: at},
		UserRoleRevoked{UserID: uid, Role: RoleUser, At: at},
		UserTokensRotated{UserID: uid, TokenVersion: 2, Reason: "r", At: at},
		UserAccessDenied{UserID: uid, SessionID: sid1, Method: "GET", Route: "/api/v1/audit-events", Permission: PermissionAuditRead, IP: ip, At: at},
		UserAuditTrailViewed{UserID: uid, SessionID: sid1, Route: "GET /api/v1/audit-events", Filters: map[string]string{"actor": "user:x"}, At: at},
		UserErased{UserID: uid, By: uid, At: at},
	}
	return out
}

func TestSampleEventsCoverAllEvents(t *testing.T) {
	var got, want []string
	for _, e := range sampleEvents() {
		got = append(got, e.EventType())
	}
	for _, e := range AllEvents() {
		want = append(want, e.EventType())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("sampleEvents %v\n  AllEvents %v", got, want)
	}
}
