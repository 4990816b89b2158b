package user

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestRegister(t *testing.T) {
	run(t, []scenario{
		{
			name: "registers with the email as normalised by the caller",
			when: func(u *User) ([]Event, error) { return u.Register(uid, email, RoleUser, t0) },
			then: []Event{UserRegistered{UserID: uid, Email: email, Role: RoleUser, At: t0}},
		},
		{
			name: "refuses an address that was not normalised",
			when: func(u *User) ([]Event, error) { return u.Register(uid, "  Ann@Example.com ", RoleUser, t0) },
			err:  ErrInvalidEmail,
		},
		{
			name: "bootstraps an admin",
			when: func(u *User) ([]Event, error) { return u.Register(uid, email, RoleAdmin, t0) },
			then: []Event{UserRegistered{UserID: uid, Email: email, Role: RoleAdmin, At: t0}},
		},
		{
			name:  "refuses a second registration on the stream",
			given: registered(),
			when:  func(u *User) ([]Event, error) { return u.Register(uid, email, RoleUser, t0) },
			err:   ErrAlreadyRegistered,
		},
		{
			name: "refuses the nil id",
			when: func(u *User) ([]Event, error) { return u.Register(uuid.Nil, email, RoleUser, t0) },
			err:  ErrInvalidID,
		},
		{
			name: "refuses an invalid email",
			when: func(u *User) ([]Event, error) { return u.Register(uid, "not-an-address", RoleUser, t0) },
			err:  ErrInvalidEmail,
		},
		{
			name: "refuses an unknown role",
			when: func(u *User) ([]Event, error) { return u.Register(uid, email, Role("root"), t0) },
			err:  ErrInvalidRole,
		},
	})
}

func TestRegisteredAt(t *testing.T) {
	if got := FromHistory(nil).RegisteredAt(); !got.IsZero() {
		t.Fatalf("unregistered: %v, want zero", got)
	}
	if got := FromHistory(history(registered(), []Event{UserEmailVerified{UserID: uid, At: t0.Add(time.Hour)}})).RegisteredAt(); !got.Equal(t0) {
		t.Fatalf("registered at %v, want %v", got, t0)
	}
}

func TestVerification(t *testing.T) {
	requested := history(registered(), []Event{UserVerificationRequested{UserID: uid, RequestID: rid1, ExpiresAt: t0.Add(VerificationTTL), At: t0}})
	run(t, []scenario{
		{
			name:  "requests a verification valid for 24 hours",
			given: registered(),
			when:  func(u *User) ([]Event, error) { return u.RequestVerification(rid1, t0) },
			then:  []Event{UserVerificationRequested{UserID: uid, RequestID: rid1, ExpiresAt: t0.Add(VerificationTTL), At: t0}},
		},
		{
			name: "request refuses an unregistered user",
			when: func(u *User) ([]Event, error) { return u.RequestVerification(rid1, t0) },
			err:  ErrNotRegistered,
		},
		{
			name:  "request refuses a verified user",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.RequestVerification(rid1, t0) },
			err:   ErrAlreadyVerified,
		},
		{
			name:  "request refuses the nil id",
			given: registered(),
			when:  func(u *User) ([]Event, error) { return u.RequestVerification(uuid.Nil, t0) },
			err:   ErrInvalidID,
		},
		{
			name:  "request refuses a reused id",
			given: requested,
			when:  func(u *User) ([]Event, error) { return u.RequestVerification(rid1, t0.Add(time.Minute)) },
			err:   ErrInvalidID,
		},
		{
			name:  "verifies with a pending request",
			given: requested,
			when:  func(u *User) ([]Event, error) { return u.VerifyEmail(rid1, t0.Add(VerificationTTL-time.Second)) },
			then:  []Event{UserEmailVerified{UserID: uid, RequestID: rid1, Method: VerifiedByEmailLink, At: t0.Add(VerificationTTL - time.Second)}},
		},
		{
			name:  "verify refuses an expired request",
			given: requested,
			when:  func(u *User) ([]Event, error) { return u.VerifyEmail(rid1, t0.Add(VerificationTTL)) },
			err:   ErrVerificationExpired,
		},
		{
			name:  "verify refuses an unknown request",
			given: requested,
			when:  func(u *User) ([]Event, error) { return u.VerifyEmail(rid2, t0) },
			err:   ErrVerificationNotFound,
		},
		{
			name:  "verify is single use",
			given: history(requested, []Event{UserEmailVerified{UserID: uid, RequestID: rid1, Method: VerifiedByEmailLink, At: t0}}),
			when:  func(u *User) ([]Event, error) { return u.VerifyEmail(rid1, t0) },
			err:   ErrAlreadyVerified,
		},
		{
			name: "verify refuses an unregistered user",
			when: func(u *User) ([]Event, error) { return u.VerifyEmail(rid1, t0) },
			err:  ErrNotRegistered,
		},
		{
			name:  "an operator vouches for the address",
			given: registered(),
			when:  func(u *User) ([]Event, error) { return u.VerifyEmailByOperator(t0) },
			then:  []Event{UserEmailVerified{UserID: uid, Method: VerifiedByOperator, At: t0}},
		},
		{
			name:  "operator verification refuses a verified user",
			given: verified(),
			when:  func(u *User) ([]Event, error) { return u.VerifyEmailByOperator(t0) },
			err:   ErrAlreadyVerified,
		},
		{
			name: "operator verification refuses an unregistered user",
			when: func(u *User) ([]Event, error) { return u.VerifyEmailByOperator(t0) },
			err:  ErrNotRegistered,
		},
	})
}
