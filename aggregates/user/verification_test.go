package user

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

func verificationRequested(rid uuid.UUID, at time.Time) UserVerificationRequested {
	return UserVerificationRequested{UserID: uid, RequestID: rid, ExpiresAt: at.Add(VerificationTTL), At: at}
}

func TestResendVerification(t *testing.T) {
	// Registration mails the first link; two resends 20 minutes apart fill
	// the window until an hour after registration, and only then.
	atRegistration := history(registered(), []Event{verificationRequested(rid1, t0)})
	three := history(atRegistration, []Event{
		verificationRequested(rid2, t0.Add(20*time.Minute)),
		verificationRequested(rid3, t0.Add(40*time.Minute)),
	})
	run(t, []scenario{
		{
			name:  "a first resend issues a new link valid for 24 hours",
			given: atRegistration,
			when:  func(u *User) ([]Event, error) { return u.RequestVerification(rid2, t0.Add(10*time.Minute)) },
			then:  []Event{verificationRequested(rid2, t0.Add(10*time.Minute))},
		},
		{
			name:  "registration's link and two resends fill the hour: a fourth is refused without an event",
			given: three,
			when:  func(u *User) ([]Event, error) { return u.RequestVerification(rid4, t0.Add(59*time.Minute)) },
			err:   ErrTooManyVerificationRequests,
		},
		{
			name:  "the window rolls: an hour after registration one more is allowed",
			given: three,
			when:  func(u *User) ([]Event, error) { return u.RequestVerification(rid4, t0.Add(time.Hour)) },
			then:  []Event{verificationRequested(rid4, t0.Add(time.Hour))},
		},
		{
			name:  "links older than the window do not count",
			given: history(three, []Event{verificationRequested(rid4, t0.Add(2*time.Hour))}),
			when: func(u *User) ([]Event, error) {
				return u.RequestVerification(id(0x15), t0.Add(2*time.Hour+time.Minute))
			},
			then: []Event{verificationRequested(id(0x15), t0.Add(2*time.Hour+time.Minute))},
		},
		{
			name:  "a verified user is refused",
			given: history(atRegistration, []Event{UserEmailVerified{UserID: uid, RequestID: rid1, Method: VerifiedByEmailLink, At: t0}}),
			when:  func(u *User) ([]Event, error) { return u.RequestVerification(rid2, t0.Add(time.Minute)) },
			err:   ErrAlreadyVerified,
		},
		{
			name:  "a verified user over the limit is refused as verified",
			given: history(three, []Event{UserEmailVerified{UserID: uid, RequestID: rid3, Method: VerifiedByEmailLink, At: t0.Add(41 * time.Minute)}}),
			when:  func(u *User) ([]Event, error) { return u.RequestVerification(rid4, t0.Add(50*time.Minute)) },
			err:   ErrAlreadyVerified,
		},
		{
			name: "an unregistered user is refused",
			when: func(u *User) ([]Event, error) { return u.RequestVerification(rid1, t0) },
			err:  ErrNotRegistered,
		},
		{
			name:  "a resend does not spend the older link",
			given: history(atRegistration, []Event{verificationRequested(rid2, t0.Add(time.Minute))}),
			when:  func(u *User) ([]Event, error) { return u.VerifyEmail(rid1, t0.Add(2*time.Minute)) },
			then:  []Event{UserEmailVerified{UserID: uid, RequestID: rid1, Method: VerifiedByEmailLink, At: t0.Add(2 * time.Minute)}},
		},
		{
			name:  "the newer link verifies too",
			given: history(atRegistration, []Event{verificationRequested(rid2, t0.Add(time.Minute))}),
			when:  func(u *User) ([]Event, error) { return u.VerifyEmail(rid2, t0.Add(2*time.Minute)) },
			then:  []Event{UserEmailVerified{UserID: uid, RequestID: rid2, Method: VerifiedByEmailLink, At: t0.Add(2 * time.Minute)}},
		},
		{
			name:  "an expired link stays dead after a resend",
			given: history(atRegistration, []Event{verificationRequested(rid2, t0.Add(VerificationTTL))}),
			when:  func(u *User) ([]Event, error) { return u.VerifyEmail(rid1, t0.Add(VerificationTTL+time.Minute)) },
			err:   ErrVerificationExpired,
		},
	})
}

// TestResentLinksAreSpentTogether: once either link verifies the address,
// the other is dead.
func TestResentLinksAreSpentTogether(t *testing.T) {
	u := FromHistory(registered())
	folds(t, u)(u.RequestVerification(rid1, t0))
	folds(t, u)(u.RequestVerification(rid2, t0.Add(time.Minute)))
	folds(t, u)(u.VerifyEmail(rid2, t0.Add(2*time.Minute)))
	if _, err := u.VerifyEmail(rid1, t0.Add(3*time.Minute)); !errors.Is(err, ErrAlreadyVerified) {
		t.Fatalf("older link after verifying: %v, want ErrAlreadyVerified", err)
	}
}
