package commands

import (
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/aggregates/user"
)

// UserState is a user's state as auditors see it at a moment: who they
// were, what they could do and which sessions they held. It carries no
// secret (the aggregate holds none).
type UserState struct {
	UserID         uuid.UUID      `json:"user_id"`
	Email          string         `json:"email"`
	EmailVerified  bool           `json:"email_verified"`
	Roles          []user.Role    `json:"roles"`
	RegisteredAt   time.Time      `json:"registered_at"`
	FailedAttempts int            `json:"failed_attempts"`
	LockedUntil    *time.Time     `json:"locked_until"`
	TokenVersion   int64          `json:"token_version"`
	Sessions       []SessionState `json:"sessions"`
}

// SessionState is one session within a UserState, its status as of the
// moment looked at.
type SessionState struct {
	ID           uuid.UUID          `json:"id"`
	Status       user.SessionStatus `json:"status"`
	Device       string             `json:"device"`
	IP           string             `json:"ip"`
	UserAgent    string             `json:"user_agent"`
	LastIP       string             `json:"last_ip"`
	CreatedAt    time.Time          `json:"created_at"`
	LastActiveAt time.Time          `json:"last_active_at"`
	ExpiresAt    time.Time          `json:"expires_at"`
	EndedAt      *time.Time         `json:"ended_at"`
	RevokeReason user.RevokeReason  `json:"revoke_reason,omitempty"`
}

// UserStateView renders u as of at: session statuses account for expiry
// at that moment, and a lockout shows only while it lasts.
func UserStateView(u *user.User, at time.Time) any {
	s := u.Snapshot()
	v := UserState{
		UserID: u.ID(), Email: u.Email(), EmailVerified: u.Verified(), Roles: u.Roles(),
		RegisteredAt: u.RegisteredAt(), FailedAttempts: u.FailedAttempts(), TokenVersion: u.TokenVersion(),
		Sessions: make([]SessionState, 0, len(s.Sessions)),
	}
	if until, locked := u.Locked(at); locked {
		v.LockedUntil = &until
	}
	for _, ss := range s.Sessions {
		v.Sessions = append(v.Sessions, SessionState{
			ID: ss.ID, Status: ss.StatusAt(at), Device: ss.Device, IP: ss.IP, UserAgent: ss.UserAgent, LastIP: ss.LastIP,
			CreatedAt: ss.CreatedAt, LastActiveAt: ss.LastActiveAt, ExpiresAt: ss.ExpiresAt,
			EndedAt: timeOrNil(ss.EndedAt), RevokeReason: ss.RevokeReason,
		})
	}
	return v
}

// ConnectionState is a provider connection's state as auditors see it at
// a moment: owner, provider, alias, status, and which credentials (by key
// id and fingerprint, never the tokens) were stored.
type ConnectionState struct {
	ConnectionID   uuid.UUID               `json:"connection_id"`
	UserID         uuid.UUID               `json:"user_id"`
	ProviderSlug   string                  `json:"provider_slug"`
	Alias          string                  `json:"alias"`
	Status         connection.Status       `json:"status"`
	CreatedAt      time.Time               `json:"created_at"`
	ConnectedAt    *time.Time              `json:"connected_at"`
	DisconnectedAt *time.Time              `json:"disconnected_at"`
	ReauthorizeBy  *time.Time              `json:"reauthorize_by"`
	Credentials    *connection.Credentials `json:"credentials"`
}

// ConnectionStateView renders c; it does not depend on the moment.
func ConnectionStateView(c *connection.Connection, _ time.Time) any {
	v := ConnectionState{
		ConnectionID: c.ID(), UserID: c.UserID(), ProviderSlug: c.ProviderSlug(), Alias: c.Alias(), Status: c.Status(),
		CreatedAt: c.CreatedAt(), ConnectedAt: timeOrNil(c.ConnectedAt()), DisconnectedAt: timeOrNil(c.DisconnectedAt()),
		ReauthorizeBy: timeOrNil(c.ReauthorizeBy()),
	}
	if cr := c.Credentials(); cr.KeyID != "" {
		v.Credentials = &cr
	}
	return v
}

func timeOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// AccountState is an account's state as auditors see it at a moment: whose
// it is, through which connection, what the provider called it and the
// balance and holdings last recorded by then. The provider's raw record is
// left out: it is kept for re-mapping, not for reading.
type AccountState struct {
	AccountID    uuid.UUID         `json:"account_id"`
	ConnectionID uuid.UUID         `json:"connection_id"`
	UserID       uuid.UUID         `json:"user_id"`
	Active       bool              `json:"is_active"`
	Details      account.Details   `json:"details"`
	Balance      *account.Balance  `json:"balance"`
	Holdings     []account.Holding `json:"holdings"`
}

// AccountStateView renders a; it does not depend on the moment.
func AccountStateView(a *account.Account, _ time.Time) any {
	d := a.Details()
	d.Raw = nil
	holdings := a.Holdings()
	if holdings == nil {
		holdings = []account.Holding{}
	}
	return AccountState{AccountID: a.ID(), ConnectionID: a.ConnectionID(), UserID: a.UserID(), Active: a.Active(),
		Details: d, Balance: a.Balance(), Holdings: holdings}
}

// TransactionState is a transaction's state as auditors see it at a
// moment: its account, status and what the provider reported (amount,
// dates, description), without the provider's raw record.
type TransactionState struct {
	TransactionID uuid.UUID          `json:"transaction_id"`
	AccountID     uuid.UUID          `json:"account_id"`
	Status        transaction.Status `json:"status"`
	Data          transaction.Data   `json:"data"`
}

// TransactionStateView renders t; it does not depend on the moment.
func TransactionStateView(t *transaction.Transaction, _ time.Time) any {
	d := t.Data()
	d.Raw = nil
	return TransactionState{TransactionID: t.ID(), AccountID: t.AccountID(), Status: t.Status(), Data: d}
}
