package identity

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// maxLoginAttempts bounds how often Login starts over because the password
// changed while it was being verified.
const maxLoginAttempts = 3

// errPasswordChanged means the stored hash is no longer the one Login
// verified the password against: a reset or another login's rehash committed
// meanwhile. Login starts over from reading the credentials.
var errPasswordChanged = errors.New("password changed during login")

// Login checks credentials and opens a session; see Service.
func (h *Handler) Login(ctx context.Context, in LoginInput) (Tokens, error) {
	for range maxLoginAttempts {
		tok, err := h.login(ctx, in)
		if !errors.Is(err, errPasswordChanged) {
			return tok, err
		}
	}
	// The password keeps changing under us: refuse rather than judge the
	// attempt against a hash that is already gone.
	h.log.InfoContext(ctx, "login refused: password changed during every attempt", "trace_id", in.TraceID)
	return Tokens{}, ErrInvalidCredentials
}

// login is one attempt of Login. The password is verified outside the
// transaction, as hashing takes tens of milliseconds, so the step locks the
// credentials row and fails with errPasswordChanged when the hash is no
// longer the verified one: otherwise a reset committing in between would let
// the old password open a session, and the rehash would write the old
// password's hash over the new one.
func (h *Handler) login(ctx context.Context, in LoginInput) (Tokens, error) {
	userID, hash, found, err := h.credentials(ctx, in.Email)
	if err != nil {
		return Tokens{}, fmt.Errorf("login: %w", err)
	}
	if !found {
		// Spend the work of a real check so that timing does not tell an
		// unknown email from a wrong password, and count the failure by a
		// digest of the name under the aggregate's lockout rule, so that
		// an unknown address is locked out exactly as a registered one.
		// There is no stream to record the attempt on, and the address is
		// not logged: it may be a password typed into the wrong field.
		h.hasher.VerifyDummy(in.Password)
		refusal := h.failUnknown(ctx, in.Email)
		h.log.InfoContext(ctx, "login refused: unknown email", "trace_id", in.TraceID, "reason", refusal)
		if errors.Is(refusal, user.ErrLocked) {
			return Tokens{}, refusal
		}
		if !errors.Is(refusal, user.ErrInvalidCredentials) {
			return Tokens{}, fmt.Errorf("login: %w", refusal)
		}
		return Tokens{}, ErrInvalidCredentials
	}
	matches, needsRehash, err := h.hasher.Verify(in.Password, hash)
	if err != nil {
		return Tokens{}, fmt.Errorf("login: verify password of user %s: %w", userID, err)
	}
	var newHash string
	if matches && needsRehash {
		if newHash, err = h.hasher.Hash(in.Password); err != nil {
			return Tokens{}, fmt.Errorf("login: rehash password: %w", err)
		}
	}
	sessionID, err := uuid.NewV7()
	if err != nil {
		return Tokens{}, fmt.Errorf("login: new session id: %w", err)
	}
	refresh, digest, err := h.secrets.New()
	if err != nil {
		return Tokens{}, fmt.Errorf("login: new refresh token: %w", err)
	}
	now := h.clock()
	ctx = commands.WithMetadata(ctx, userID, commands.ActorAnonymous, "login", in.RequestContext)
	var issue issued
	err = h.update(ctx, userID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		// A reset's UPDATE waits for this transaction, and then revokes
		// the session opened here.
		current, err := lockPasswordHash(ctx, tx, userID)
		if err != nil {
			return decision{}, err
		}
		if current != hash {
			return decision{}, errPasswordChanged
		}
		events, refusal := u.Login(user.LoginAttempt{
			SessionID:       sessionID,
			PasswordMatches: matches,
			IP:              in.RequestContext.IPString(),
			UserAgent:       in.UserAgent,
			Device:          Device(in.UserAgent),
			At:              now,
			ExpiresAt:       now.Add(h.refreshTTL),
			SessionLimit:    h.sessionLimit,
		})
		if len(events) == 0 {
			return decision{}, refusal
		}
		if refusal == nil && newHash != "" {
			more, err := u.RecordPasswordRehash(now)
			if err != nil {
				return decision{}, err
			}
			events = append(events, more...)
			// Conditional although the row is locked.
			replaced, err := replacePasswordHash(ctx, tx, userID, hash, newHash, now)
			if err != nil {
				return decision{}, err
			}
			if !replaced {
				return decision{}, errPasswordChanged
			}
		}
		version, err := applyEventsIssuing(ctx, tx, u, events)
		if err != nil {
			return decision{}, err
		}
		if refusal != nil {
			return decision{Events: events, Refusal: refusal}, nil
		}
		if err := insertRefreshToken(ctx, tx, digest, userID, sessionID, 1, now.Add(h.refreshTTL)); err != nil {
			return decision{}, err
		}
		issue = issued{userID: u.ID(), sessionID: sessionID, roles: u.Roles(), version: version}
		return decision{Events: events}, nil
	})
	if err != nil {
		if errors.Is(err, errPasswordChanged) {
			return Tokens{}, err
		}
		if errors.Is(err, user.ErrInvalidCredentials) {
			h.log.InfoContext(ctx, "login refused: wrong password", "user_id", userID, "trace_id", in.TraceID)
			return Tokens{}, ErrInvalidCredentials
		}
		h.log.InfoContext(ctx, "login refused", "user_id", userID, "trace_id", in.TraceID, "reason", err)
		return Tokens{}, fmt.Errorf("login: %w", err)
	}
	return h.tokens(issue, refresh)
}

// failUnknown counts a failed login to name, which belongs to no user,
// and returns the refusal: user.ErrInvalidCredentials or a
// *user.LockedError, or the database's error.
func (h *Handler) failUnknown(ctx context.Context, name string) error {
	key := strings.TrimSpace(name)
	if n, err := commands.NormalizeEmail(name); err == nil {
		key = n
	}
	mac := hmac.New(sha256.New, h.nameKey)
	mac.Write([]byte(key))
	digest := mac.Sum(nil)
	now := h.clock()
	var refusal error
	err := pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		refusal = failUnknownLogin(ctx, tx, digest, now)
		if errors.Is(refusal, user.ErrInvalidCredentials) || errors.Is(refusal, user.ErrLocked) {
			return nil
		}
		return refusal
	})
	if err != nil {
		return err
	}
	return refusal
}

// credentials finds the user and password hash of an email; found is false
// for an email that is malformed or unknown, which Login treats alike.
func (h *Handler) credentials(ctx context.Context, email string) (userID uuid.UUID, hash string, found bool, err error) {
	n, err := commands.NormalizeEmail(email)
	if err != nil {
		return uuid.Nil, "", false, nil
	}
	return readCredentials(ctx, h.pool, n)
}

// issued is what an access token for a session says, as the transaction
// that opened or refreshed it wrote it (applyEventsIssuing).
type issued struct {
	userID, sessionID uuid.UUID
	roles             []user.Role
	version           int64
}

// tokens mints the access token of i and pairs it with the refresh token.
func (h *Handler) tokens(i issued, refresh string) (Tokens, error) {
	access, expires, err := h.access.Issue(commands.AccessClaims{
		Subject:      i.userID,
		SessionID:    i.sessionID,
		Roles:        rolesToStrings(i.roles),
		TokenVersion: i.version,
	})
	if err != nil {
		return Tokens{}, fmt.Errorf("issue access token: %w", err)
	}
	return Tokens{
		AccessToken:  access,
		RefreshToken: refresh,
		TokenType:    "Bearer",
		ExpiresIn:    expires.Sub(h.now()),
		SessionID:    i.sessionID,
	}, nil
}
