package commands

import (
	"github.com/dashtam/dashtam/aggregates/account"
	"github.com/dashtam/dashtam/aggregates/connection"
	"github.com/dashtam/dashtam/aggregates/transaction"
	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/eventstore"
)

// RegisterEvents registers every domain event type with r, at its current
// schema version. It is the one place where the binary learns its event
// types, so that decoding the log never depends on Go type names; raising a
// version here needs an upcaster from the old one beside it.
func RegisterEvents(r *eventstore.Registry) {
	registerUserEvents(r)
	registerConnectionEvents(r)
	registerAccountEvents(r)
	registerTransactionEvents(r)
}

// registerAccountEvents registers the events of the account aggregate;
// keep it in step with account.AllEvents.
func registerAccountEvents(r *eventstore.Registry) {
	eventstore.Register[account.AccountOpened](r, 1)
	eventstore.Register[account.AccountUpdated](r, 1)
	eventstore.Register[account.AccountBalanceRecorded](r, 1)
	eventstore.Register[account.AccountHoldingsRecorded](r, 1)
	eventstore.Register[account.AccountClosed](r, 1)
}

// registerTransactionEvents registers the events of the transaction
// aggregate; keep it in step with transaction.AllEvents.
func registerTransactionEvents(r *eventstore.Registry) {
	eventstore.Register[transaction.TransactionRecorded](r, 1)
	eventstore.Register[transaction.TransactionUpdated](r, 1)
	eventstore.Register[transaction.TransactionRemoved](r, 1)
}

// registerConnectionEvents registers the events of the connection
// aggregate; keep it in step with connection.AllEvents, which the tests
// compare it with.
func registerConnectionEvents(r *eventstore.Registry) {
	eventstore.Register[connection.ProviderConnectionAttempted](r, 1)
	eventstore.Register[connection.ProviderConnectionSucceeded](r, 1)
	eventstore.Register[connection.ProviderConnectionFailed](r, 1)
	eventstore.Register[connection.ProviderTokenRefreshAttempted](r, 1)
	eventstore.Register[connection.ProviderTokenRefreshSucceeded](r, 1)
	eventstore.Register[connection.ProviderTokenRefreshFailed](r, 1)
	eventstore.Register[connection.ProviderReauthenticationRequired](r, 1)
	eventstore.Register[connection.ProviderConnectionRenamed](r, 1)
	eventstore.Register[connection.ProviderDisconnectionAttempted](r, 1)
	eventstore.Register[connection.ProviderDisconnectionSucceeded](r, 1)
	eventstore.Register[connection.ProviderDisconnectionFailed](r, 1)
	eventstore.Register[connection.SyncStarted](r, 1)
	eventstore.Register[connection.SyncPickedUp](r, 1)
	eventstore.Register[connection.SyncCompleted](r, 1)
	eventstore.Register[connection.SyncFailed](r, 1)
}

// registerUserEvents registers the events of the user aggregate; keep it in
// step with user.AllEvents and user.GlobalEvents, which the tests compare it with.
func registerUserEvents(r *eventstore.Registry) {
	eventstore.Register[user.UserRegistered](r, 1)
	eventstore.Register[user.UserVerificationRequested](r, 1)
	eventstore.Register[user.UserEmailVerified](r, 1)
	eventstore.Register[user.UserLoginAttempted](r, 1)
	eventstore.Register[user.UserLoginSucceeded](r, 1)
	eventstore.Register[user.UserLoginFailed](r, 1)
	eventstore.Register[user.UserLockedOut](r, 1)
	eventstore.Register[user.UserLoggedOut](r, 1)
	eventstore.Register[user.UserSessionRevoked](r, 1)
	eventstore.Register[user.UserSessionEvicted](r, 1)
	eventstore.Register[user.UserTokenRefreshed](r, 1)
	eventstore.Register[user.UserRefreshTokenReuseDetected](r, 1)
	eventstore.Register[user.UserPasswordResetRequested](r, 1)
	eventstore.Register[user.UserPasswordResetCompleted](r, 1)
	eventstore.Register[user.UserPasswordRehashed](r, 1)
	eventstore.Register[user.UserRoleGranted](r, 1)
	eventstore.Register[user.UserRoleRevoked](r, 1)
	eventstore.Register[user.UserTokensRotated](r, 1)
	eventstore.Register[user.UserAccessDenied](r, 1)
	eventstore.Register[user.UserAuditTrailViewed](r, 1)
	eventstore.Register[user.UserErased](r, 1)
	eventstore.Register[user.SecurityTokensRotated](r, 1)
}
