package commands_test

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/shopspring/decimal"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// The user aggregate must be usable on the generic path, which is how the
// user command handlers load and append.
var _ = eventstore.NewRepository[*user.User, user.Event]

// TestRegisterEventsCoversEveryUserEvent proves that no user event was
// forgotten: an unregistered event could be decided but never stored.
func TestRegisterEventsCoversEveryUserEvent(t *testing.T) {
	r := eventstore.NewRegistry()
	commands.RegisterEvents(r)
	for _, e := range user.AllEvents() {
		if !r.Known(e.EventType()) {
			t.Errorf("%s is not registered", e.EventType())
		}
	}
}

// TestRegisteredUserEventsRoundTrip encodes a sample of every user event as
// JSON and decodes it through the registry, as reading the log does, and
// checks that user.Event survives so the generic path (commands.UserAggregate) can load it.
func TestRegisteredUserEventsRoundTrip(t *testing.T) {
	r := eventstore.NewRegistry()
	commands.RegisterEvents(r)
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	id := uuid.MustParse("00000000-0000-0000-0000-00000000000a")
	sid := uuid.MustParse("00000000-0000-0000-0000-000000000001")
	samples := []user.Event{
		user.UserRegistered{UserID: id, Email: "ann@example.com", Role: user.RoleUser, At: at},
		user.UserVerificationRequested{UserID: id, RequestID: sid, ExpiresAt: at.Add(time.Hour), At: at},
		user.UserEmailVerified{UserID: id, RequestID: sid, Method: user.VerifiedByEmailLink, At: at},
		user.UserLoginAttempted{UserID: id, IP: "192.0.2.1", UserAgent: "curl/8", Device: "curl", At: at},
		user.UserLoginSucceeded{UserID: id, SessionID: sid, IP: "192.0.2.1", TokenVersion: 1, ExpiresAt: at.Add(time.Hour), At: at},
		user.UserLoginFailed{UserID: id, Reason: user.LoginFailedLocked, FailedAttempts: 5, At: at},
		user.UserLockedOut{UserID: id, FailedAttempts: 5, Until: at.Add(user.LockoutDuration), At: at},
		user.UserLoggedOut{UserID: id, SessionID: sid, At: at},
		user.UserSessionRevoked{UserID: id, SessionID: sid, Reason: user.RevokedPasswordReset, At: at},
		user.UserSessionEvicted{UserID: id, SessionID: sid, Limit: 10, At: at},
		user.UserTokenRefreshed{UserID: id, SessionID: sid, RefreshGeneration: 2, TokenVersion: 1, ExpiresAt: at.Add(time.Hour), At: at},
		user.UserRefreshTokenReuseDetected{UserID: id, SessionID: sid, PresentedGeneration: 1, CurrentGeneration: 2, At: at},
		user.UserPasswordResetRequested{UserID: id, RequestID: sid, ExpiresAt: at.Add(user.PasswordResetTTL), At: at},
		user.UserPasswordResetCompleted{UserID: id, RequestID: sid, At: at},
		user.UserPasswordRehashed{UserID: id, At: at},
		user.UserRoleGranted{UserID: id, Role: user.RoleAdmin, At: at},
		user.UserRoleRevoked{UserID: id, Role: user.RoleUser, At: at},
		user.UserTokensRotated{UserID: id, TokenVersion: 2, Reason: "stolen laptop", At: at},
		user.UserAccessDenied{UserID: id, SessionID: sid, Method: "GET", Route: "/api/v1/audit-events", Permission: user.PermissionAuditRead, At: at},
		user.UserAuditTrailViewed{UserID: id, SessionID: sid, Route: "GET /api/v1/audit-events", Filters: map[string]string{"actor": "user:x"}, At: at},
		user.UserErased{UserID: id, By: id, At: at},
	}
	var covered []string
	for _, e := range samples {
		name := e.EventType()
		covered = append(covered, name)
		payload, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("%s: encode: %v", name, err)
		}
		got, err := r.Decode(name, 1, payload)
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		if _, ok := got.(user.Event); !ok {
			t.Errorf("%s: decoded %T is not a user.Event", name, got)
		}
		if !reflect.DeepEqual(got, eventstore.Event(e)) {
			t.Errorf("%s round trip:\n got %#v\nwant %#v", name, got, e)
		}
	}
	var all []string
	for _, e := range user.AllEvents() {
		all = append(all, e.EventType())
	}
	if !slices.Equal(covered, all) {
		t.Fatalf("samples cover %v\nwant %v", covered, all)
	}
}

// TestRegisteredConnectionEventsRoundTrip encodes a sample of every
// connection event and decodes it through the registry, as the log is read.
func TestRegisteredConnectionEventsRoundTrip(t *testing.T) {
	r := eventstore.NewRegistry()
	commands.RegisterEvents(r)
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	cid := uuid.MustParse("00000000-0000-0000-0000-00000000000c")
	uid := uuid.MustParse("00000000-0000-0000-0000-00000000000a")
	creds := connection.Credentials{KeyID: "k1", Fingerprint: "0123456789abcdef", AccessExpiresAt: at.Add(30 * time.Minute), RefreshExpiresAt: at.Add(7 * 24 * time.Hour)}
	samples := []connection.Event{
		connection.ProviderConnectionAttempted{ConnectionID: cid, UserID: uid, ProviderSlug: "schwab", Alias: "Personal", ExpiresAt: at.Add(10 * time.Minute), At: at},
		connection.ProviderConnectionSucceeded{ConnectionID: cid, Credentials: creds, At: at},
		connection.ProviderConnectionFailed{ConnectionID: cid, Reason: connection.FailedAccessDenied, At: at},
		connection.ProviderTokenRefreshAttempted{ConnectionID: cid, Trigger: connection.RefreshScheduled, At: at},
		connection.ProviderTokenRefreshSucceeded{ConnectionID: cid, Credentials: creds, At: at},
		connection.ProviderTokenRefreshFailed{ConnectionID: cid, Reason: connection.FailedProviderUnavailable, Transient: true, At: at},
		connection.ProviderReauthenticationRequired{ConnectionID: cid, Reason: connection.FailedAuthentication, At: at},
		connection.ProviderConnectionRenamed{ConnectionID: cid, Alias: "Business", At: at},
		connection.ProviderDisconnectionAttempted{ConnectionID: cid, At: at},
		connection.ProviderDisconnectionSucceeded{ConnectionID: cid, RevokedAtProvider: true, At: at},
		connection.ProviderDisconnectionFailed{ConnectionID: cid, Reason: connection.FailedProviderUnavailable, At: at},
		connection.SyncStarted{ConnectionID: cid, SyncID: uid, Trigger: connection.SyncManual, From: "2025-03-01", To: "2026-03-01", At: at},
		connection.SyncPickedUp{ConnectionID: cid, SyncID: uid, At: at},
		connection.SyncCompleted{ConnectionID: cid, SyncID: uid, Accounts: 2, Counts: connection.SyncCounts{Created: 3, Updated: 1, Unchanged: 7, Removed: 2},
			AccountErrors: []connection.AccountError{{AccountID: cid, Reason: connection.FailedProviderUnavailable}}, LatestPosted: "2026-02-27", At: at},
		connection.SyncFailed{ConnectionID: cid, SyncID: uid, Reason: connection.FailedAuthentication, At: at},
	}
	var covered, all []string
	for _, e := range samples {
		covered = append(covered, e.EventType())
		payload, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("%s: encode: %v", e.EventType(), err)
		}
		got, err := r.Decode(e.EventType(), 1, payload)
		if err != nil {
			t.Fatalf("%s: decode: %v", e.EventType(), err)
		}
		if !reflect.DeepEqual(got, eventstore.Event(e)) {
			t.Errorf("%s round trip:\n got %#v\nwant %#v", e.EventType(), got, e)
		}
	}
	for _, e := range connection.AllEvents() {
		all = append(all, e.EventType())
	}
	if !slices.Equal(covered, all) {
		t.Fatalf("samples cover %v\nwant %v", covered, all)
	}
}

// TestRegisteredDataEventsRoundTrip encodes a sample of every account and
// transaction event and decodes it through the registry; amounts survive
// as decimals, never floats.
func TestRegisteredDataEventsRoundTrip(t *testing.T) {
	r := eventstore.NewRegistry()
	commands.RegisterEvents(r)
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	id := uuid.MustParse("00000000-0000-0000-0000-00000000000d")
	qty := decimal.RequireFromString("-3.5")
	samples := []eventstore.Event{
		account.AccountOpened{AccountID: id, ConnectionID: id, UserID: id, SyncID: id,
			Details: account.Details{ProviderAccountID: "p", Name: "Brokerage", Type: "brokerage", MaskedNumber: "6789", Currency: "USD", Raw: []byte(`{"a":1}`)}, At: at},
		account.AccountUpdated{AccountID: id, SyncID: id, Details: account.Details{ProviderAccountID: "p", Type: "brokerage", Currency: "USD"}, Changed: []string{"name"}, At: at},
		account.AccountBalanceRecorded{AccountID: id, SyncID: id, Balance: account.Balance{Current: decimal.RequireFromString("12345.67"), Available: &qty, Currency: "USD"}, At: at},
		account.AccountHoldingsRecorded{AccountID: id, SyncID: id, Holdings: []account.Holding{{Symbol: "VTI", Quantity: qty, MarketValue: decimal.RequireFromString("0.10"), Currency: "USD"}}, At: at},
		account.AccountClosed{AccountID: id, Reason: account.ClosedDisconnected, At: at},
		transaction.TransactionRecorded{TransactionID: id, AccountID: id, ConnectionID: id, SyncID: id, Data: transaction.Data{ProviderTransactionID: "1",
			Type: "sell", Amount: decimal.RequireFromString("1000.10"), Currency: "USD", Date: "2026-02-27", Symbol: "VTI", Quantity: &qty}, At: at},
		transaction.TransactionUpdated{TransactionID: id, SyncID: id, Data: transaction.Data{ProviderTransactionID: "1", Type: "sell", Amount: decimal.RequireFromString("1000.10"),
			Currency: "USD", Date: "2026-02-27"}, Changed: []string{"status"}, At: at},
		transaction.TransactionRemoved{TransactionID: id, SyncID: id, Reason: transaction.ReasonDisappeared, At: at},
	}
	var covered, all []string
	for _, e := range samples {
		covered = append(covered, e.EventType())
		payload, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("%s: encode: %v", e.EventType(), err)
		}
		if strings.Contains(string(payload), "1000.1,") || strings.Contains(string(payload), ":1000.1") {
			t.Errorf("%s: an amount encoded as a number: %s", e.EventType(), payload)
		}
		got, err := r.Decode(e.EventType(), 1, payload)
		if err != nil {
			t.Fatalf("%s: decode: %v", e.EventType(), err)
		}
		again, _ := json.Marshal(got)
		if string(again) != string(payload) {
			t.Errorf("%s round trip:\n got %s\nwant %s", e.EventType(), again, payload)
		}
	}
	for _, e := range account.AllEvents() {
		all = append(all, e.EventType())
	}
	for _, e := range transaction.AllEvents() {
		all = append(all, e.EventType())
	}
	if !slices.Equal(covered, all) {
		t.Fatalf("samples cover %v\nwant %v", covered, all)
	}
}
