// Package user owns the security state of one user — registration, email
// verification, login attempts and lockout, sessions and their refresh
// generations, password resets, roles and token rotation — as a plain
// aggregate: command methods validate and return events, and one apply switch
// folds events into state.
//
// Nothing here hashes a password, mints a token, reads a clock or draws a
// random number. Facts computed elsewhere (whether a password matched, the
// current time, the id of a new session) arrive as arguments, so every
// decision can be replayed from the log, and no event can carry a secret
// because none ever reaches this package.
//
// Commands that are refused but must still leave an audit trace — a login
// with a wrong password, a login before verification or during a lockout, a
// reused refresh token, a refresh after token rotation — return both events
// and an error. The caller appends the events and then reports the error;
// when the error comes with no events, nothing happened and nothing is
// appended. Update's decide function returns an error only to abort, so a
// handler captures such an error beside the events it returns.
package user
