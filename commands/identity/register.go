package identity

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/google/uuid"

	"github.com/dashtam/dashtam/aggregates/user"
	"github.com/dashtam/dashtam/commands"
	"github.com/dashtam/dashtam/eventstore"
)

// Register creates an unverified user with the role user and mails a
// verification link; see Service.
func (h *Handler) Register(ctx context.Context, in RegisterInput) (UserView, error) {
	return h.createUser(ctx, newUser{
		email: in.Email, password: in.Password, role: user.RoleUser,
		actor: commands.ActorAnonymous, command: "register", rc: in.RequestContext,
	})
}

// CreateUser bootstraps a user from the command line; an unverified one is
// mailed a verification link like a registration. See Service.
func (h *Handler) CreateUser(ctx context.Context, email, password string, role user.Role, verified bool) (UserView, error) {
	return h.createUser(ctx, newUser{
		email: email, password: password, role: role, verified: verified,
		actor: commands.ActorOperator, command: "users create",
	})
}

// newUser is a registration or a bootstrap, as createUser needs it.
type newUser struct {
	email, password string
	role            user.Role
	verified        bool
	actor, command  string
	rc              commands.RequestContext
}

func (h *Handler) createUser(ctx context.Context, n newUser) (UserView, error) {
	email, err := commands.NormalizeEmail(n.email)
	if err != nil {
		return UserView{}, fmt.Errorf("%s: %w", n.command, ErrInvalidEmail)
	}
	if !n.role.Valid() {
		return UserView{}, fmt.Errorf("%s: %w", n.command, user.ErrInvalidRole)
	}
	if err := h.policy.Check(n.password); err != nil {
		return UserView{}, fmt.Errorf("%s: %w", n.command, err)
	}
	// Hash before the transaction: it takes tens of milliseconds, which
	// should not be spent holding a connection and row locks.
	hash, err := h.hasher.Hash(n.password)
	if err != nil {
		return UserView{}, fmt.Errorf("%s: hash password: %w", n.command, err)
	}
	userID, err := uuid.NewV7()
	if err != nil {
		return UserView{}, fmt.Errorf("%s: new user id: %w", n.command, err)
	}
	requestID, err := uuid.NewV7()
	if err != nil {
		return UserView{}, fmt.Errorf("%s: new request id: %w", n.command, err)
	}
	var token string
	var digest []byte
	if !n.verified {
		if token, digest, err = h.secrets.New(); err != nil {
			return UserView{}, fmt.Errorf("%s: new verification token: %w", n.command, err)
		}
	}
	now := h.clock()
	ctx = commands.WithMetadata(ctx, userID, n.actor, n.command, n.rc)
	var view UserView
	err = h.update(ctx, userID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		events, err := u.Register(userID, email, n.role, now)
		if err != nil {
			return decision{}, err
		}
		u.Apply(events...)
		var more []user.Event
		if n.verified {
			more, err = u.VerifyEmailByOperator(now)
		} else {
			more, err = u.RequestVerification(requestID, now)
		}
		if err != nil {
			return decision{}, err
		}
		if err := insertUser(ctx, tx, email, userID, hash, u, now); err != nil {
			return decision{}, err
		}
		if !n.verified {
			if err := insertRequestToken(ctx, tx, digest, "verify", userID, requestID, now.Add(user.VerificationTTL)); err != nil {
				return decision{}, err
			}
			// In the registration's transaction: the mail goes out
			// exactly when the user is stored, even across a crash.
			if err := h.enqueueLinkMail(ctx, tx, userID, verifyMail, token, n.rc); err != nil {
				return decision{}, err
			}
		}
		if err := applyEvents(ctx, tx, u, more); err != nil {
			return decision{}, err
		}
		view = userView(u)
		return decision{Events: append(events, more...)}, nil
	})
	if err != nil {
		return UserView{}, fmt.Errorf("%s: %w", n.command, err)
	}
	return view, nil
}

// findRequestToken returns the unspent, unexpired token of kind with digest,
// or ErrTokenNotFound; unknown, spent and expired are one answer, so the
// error tells a guesser nothing.
func (h *Handler) findRequestToken(ctx context.Context, kind, token string, now time.Time) (requestToken, []byte, error) {
	digest := h.secrets.Digest(token)
	t, err := readRequestToken(ctx, h.pool, digest, kind, now)
	if err != nil {
		return requestToken{}, nil, err
	}
	return t, digest, nil
}

// VerifyEmail consumes a verification token; see Service.
func (h *Handler) VerifyEmail(ctx context.Context, token string, rc commands.RequestContext) error {
	now := h.clock()
	t, digest, err := h.findRequestToken(ctx, "verify", token, now)
	if err != nil {
		return fmt.Errorf("verify email: %w", err)
	}
	ctx = commands.WithMetadata(ctx, t.userID, commands.ActorAnonymous, "verify email", rc)
	err = h.update(ctx, t.userID, func(ctx context.Context, tx *eventstore.Tx, u *user.User) (decision, error) {
		events, err := u.VerifyEmail(t.requestID, now)
		if err != nil {
			// Already verified, superseded or expired: to the client, a dead link.
			return decision{}, ErrTokenNotFound
		}
		if err := spendTokenAndKind(ctx, tx, digest, t.userID, "verify", now); err != nil {
			return decision{}, err
		}
		return decision{Events: events}, applyEvents(ctx, tx, u, events)
	})
	if err != nil {
		return fmt.Errorf("verify email: %w", err)
	}
	return nil
}

// Paths of the links in the mails, relative to Deps.PublicURL; the token
// follows as the query parameter "token". The web layer serves its pages on
// these same constants, so a mailed link cannot point to a page that is not
// there.
const (
	// VerifyEmailPath is the page a verification mail links to.
	VerifyEmailPath = "/verify-email"
	// ResetPasswordPath is the page a password-reset mail links to.
	ResetPasswordPath = "/reset-password"
)

// mailKind is one of the two mails identity sends.
type mailKind struct {
	link, path, subject, body string
}

var (
	verifyMail = mailKind{
		link:    "verify",
		path:    VerifyEmailPath,
		subject: "Confirm your email address for Dashtam",
		body:    "Welcome to Dashtam.\n\nTo confirm your email address, open this link within 24 hours:\n\n%s\n\nIf you did not create an account, ignore this message.\n",
	}
	resetMail = mailKind{
		link:    "reset",
		path:    ResetPasswordPath,
		subject: "Reset your Dashtam password",
		body:    "Someone asked to reset the password of your Dashtam account.\n\nTo choose a new password, open this link within 15 minutes:\n\n%s\n\nIf it was not you, ignore this message; your password stays as it is.\n",
	}
)

// mailKinds finds a mail kind by its link name, as LinkMail jobs carry it.
var mailKinds = map[string]mailKind{verifyMail.link: verifyMail, resetMail.link: resetMail}

// sendLink mails to the link of kind carrying token. The link appears
// only in the mail: never in an event, a log line or an error.
func (h *Handler) sendLink(ctx context.Context, to string, rc commands.RequestContext, kind mailKind, token string) error {
	link := h.publicURL + kind.path + "?token=" + url.QueryEscape(token)
	m := commands.Message{To: to, Subject: kind.subject, TextBody: fmt.Sprintf(kind.body, link)}
	if rc.TraceID != "" {
		m.Headers = map[string]string{"X-Trace-Id": rc.TraceID}
	}
	return h.mailer.Send(ctx, m)
}

// userView shows u as the API does.
func userView(u *user.User) UserView {
	return UserView{ID: u.ID(), Email: u.Email(), Verified: u.Verified(), Roles: u.Roles(), CreatedAt: u.RegisteredAt()}
}
