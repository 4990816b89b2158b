package identity

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// Connections is what an erasure needs of the connections context
// (commands/connections' Handler implements it): the user's aliases
// forgotten in the erasure's transaction, then each live connection
// disconnected as the user would (credentials destroyed, alias released).
type Connections interface {
	// ForgetAliases removes the aliases the user typed from the connections' rows, in tx.
	ForgetAliases(ctx context.Context, tx pgx.Tx, userID uuid.UUID) error
	// Live lists the user's connections that are not disconnected.
	Live(ctx context.Context, userID uuid.UUID) ([]uuid.UUID, error)
	// Disconnect ends one of p's connections.
	Disconnect(ctx context.Context, p commands.Principal, id uuid.UUID, rc commands.RequestContext) error
}

// ErrErasureUnavailable means the server was started without personal-data keys.
var ErrErasureUnavailable = errors.New("erasure is not available on this server")

// EraseSelf erases the caller after checking their password: see Erase.
func (h *Handler) EraseSelf(ctx context.Context, p commands.Principal, password string, rc commands.RequestContext) error {
	var hash string
	err := h.pool.QueryRow(ctx, `SELECT password_hash FROM user_credentials WHERE user_id = $1`, p.UserID).Scan(&hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("erase: read credentials: %w", err)
	}
	ok, _, err := h.hasher.Verify(password, hash)
	if err != nil || !ok {
		return ErrInvalidCredentials
	}
	return h.erase(ctx, p.UserID, p.UserID, commands.ActorUser(p.UserID), rc)
}

// EraseUser erases userID at an administrator's request: see Erase.
func (h *Handler) EraseUser(ctx context.Context, p commands.Principal, userID uuid.UUID, rc commands.RequestContext) error {
	return h.erase(ctx, userID, p.UserID, commands.ActorUser(p.UserID), rc)
}

// erase is the erasure (GDPR Art. 17) of one user, in one unit of work:
// every session ends (UserSessionRevoked, reason erasure) and UserErased is
// recorded, without personal data; the user's data key is destroyed, so
// every personal field of their events (email, IP addresses, user agents,
// connection aliases) reads as erased from now on while every chain still
// verifies; the security tables forget them (the email is freed, the
// password hash, addresses and user agents of sessions, tokens, lockout
// row and snapshots are gone). Then, outside the transaction, every live
// connection is disconnected. Erasing twice erases once and disconnects
// what is left.
func (h *Handler) erase(ctx context.Context, target, by uuid.UUID, actor string, rc commands.RequestContext) error {
	if h.keys == nil {
		return ErrErasureUnavailable
	}
	ctx = commands.WithMetadata(ctx, target, actor, "erase user", rc)
	err := h.update(ctx, target, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		now := h.clock()
		events, err := u.Erase(by, now)
		if err != nil {
			return decision{}, err
		}
		if err := applyEvents(ctx, tx, u, events); err != nil {
			return decision{}, err
		}
		if err := h.forgetRows(ctx, tx, target, now, rc); err != nil {
			return decision{}, err
		}
		if h.connections != nil {
			if err := h.connections.ForgetAliases(ctx, tx, target); err != nil {
				return decision{}, err
			}
		}
		if err := h.keys.Erase(ctx, tx, target, now); err != nil {
			return decision{}, err
		}
		tx.AfterCommit(func() { h.keys.Forget(target) })
		return decision{Events: events}, nil
	})
	switch {
	case errors.Is(err, user.ErrNotRegistered):
		return ErrNotFound
	case errors.Is(err, user.ErrAlreadyErased):
		// Done before; finish what may be left below.
	case err != nil:
		return fmt.Errorf("erase: %w", err)
	}
	return h.disconnectAll(ctx, target, rc)
}

// erasedEmail replaces an erased user's address in user_emails, freeing the
// real one for a new registration: unique per user, and an address no mail
// can reach (RFC 2606's .invalid).
func erasedEmail(id uuid.UUID) string { return "erased+" + id.String() + "@erased.invalid" }

// forgetRows removes the user's personal data from the security tables in
// the erasure's transaction.
func (h *Handler) forgetRows(ctx context.Context, tx *eventstore.Tx, id uuid.UUID, now time.Time, rc commands.RequestContext) error {
	// The rate limiter's buckets are keyed by address: those of every
	// address the user held a session from, and the erasure request's
	// own when the user asked, go too. Buckets of other addresses (a
	// failed login from elsewhere) are swept within minutes, once full.
	rows, err := tx.Query(ctx, `SELECT ip FROM auth_sessions WHERE user_id = $1 UNION SELECT last_ip FROM auth_sessions WHERE user_id = $1`, id)
	if err != nil {
		return fmt.Errorf("erase: read addresses: %w", err)
	}
	addrs, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("erase: read addresses: %w", err)
	}
	if ip := rc.IPString(); ip != "" && rc.IP.IsValid() {
		addrs = append(addrs, ip)
	}
	keys := []string{id.String()}
	for _, a := range addrs {
		if ip, err := netip.ParseAddr(a); err == nil {
			ip = ip.Unmap()
			keys = append(keys, ip.String())
			if ip.Is6() {
				keys = append(keys, netip.PrefixFrom(ip, 64).Masked().String())
			}
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM rate_limit_buckets WHERE substr(key, strpos(key, ':') + 1) = ANY($1)`, keys); err != nil {
		return fmt.Errorf("erase: rate-limit buckets: %w", err)
	}
	var email string
	err = tx.QueryRow(ctx, `SELECT email FROM user_emails WHERE user_id = $1`, id).Scan(&email)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("erase: read email: %w", err)
	}
	if email != "" {
		mac := hmac.New(sha256.New, h.nameKey)
		mac.Write([]byte(email))
		if _, err := tx.Exec(ctx, `DELETE FROM login_throttle WHERE name_digest = $1`, mac.Sum(nil)); err != nil {
			return fmt.Errorf("erase: lockout row: %w", err)
		}
	}
	steps := []struct {
		sql  string
		args []any
	}{
		{`UPDATE user_emails SET email = $2 WHERE user_id = $1`, []any{id, erasedEmail(id)}},
		// No password opens the account again: the hash cannot be parsed.
		{`UPDATE user_credentials SET password_hash = '!erased', updated_at = $2 WHERE user_id = $1`, []any{id, now}},
		{`UPDATE auth_sessions SET ip = '', last_ip = '', user_agent = '', device = '' WHERE user_id = $1`, []any{id}},
		{`DELETE FROM secret_tokens WHERE user_id = $1`, []any{id}},
		// Snapshots hold the decoded state; the erasure's own, if one is
		// due, is taken after this from the state that forgot.
		{`DELETE FROM snapshots WHERE stream_type = 'user' AND stream_id = $1`, []any{id}},
		// Mail jobs for the user, waiting or kept after they ran: their
		// arguments hold what the mail says (a connection's alias). A
		// running one is left to finish against the forgotten address.
		// Webhook endpoints: the user's own configuration, not history;
		// their deliveries and attempts go with them (ON DELETE CASCADE),
		// and a delivery job then finds nothing to send.
		{`DELETE FROM webhook_endpoints WHERE user_id = $1`, []any{id}},
		{`DELETE FROM river_job WHERE kind = ANY($2) AND args->>'user_id' = $1::text AND state <> 'running'`,
			[]any{id, []string{commands.UserMail{}.Kind(), LinkMail{}.Kind()}}},
	}
	for _, st := range steps {
		if _, err := tx.Exec(ctx, st.sql, st.args...); err != nil {
			return fmt.Errorf("erase: %w", err)
		}
	}
	return nil
}

// disconnectAll disconnects every live connection of the user, each
// attempted even when one fails; the errors come back joined.
func (h *Handler) disconnectAll(ctx context.Context, id uuid.UUID, rc commands.RequestContext) error {
	if h.connections == nil {
		return nil
	}
	ids, err := h.connections.Live(ctx, id)
	if err != nil {
		return fmt.Errorf("erase: list connections: %w", err)
	}
	var errs []error
	p := commands.Principal{UserID: id}
	for _, c := range ids {
		if err := h.connections.Disconnect(ctx, p, c, rc); err != nil {
			errs = append(errs, fmt.Errorf("erase: disconnect %s: %w", c, err))
		}
	}
	return errors.Join(errs...)
}
