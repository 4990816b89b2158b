package identity

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/commands"
)

// The identity's background jobs. Every mail is a job enqueued in the
// transaction of the events that call for it, so a crash between commit
// and send loses no mail: the job runs after a restart. Job arguments stay
// in the database until the job is done, so what must not be read there —
// a link's token, an address typed into a public form — is sealed by the
// vault, bound to a random id that travels beside it.

// LinkMail mails a verification or password-reset link.
type LinkMail struct {
	UserID uuid.UUID `json:"user_id"`
	// Link is "verify" or "reset".
	Link string `json:"link"`
	// SealID binds Sealed; Sealed is the link's token, sealed.
	SealID  uuid.UUID `json:"seal_id"`
	Sealed  []byte    `json:"sealed"`
	TraceID string    `json:"trace_id,omitempty"`
}

// Kind names the job's worker.
func (LinkMail) Kind() string { return "identity_link_mail" }

// AddressRequest is a request made on a public form that names an address
// (a password reset, a new verification link): decided after the request
// was answered, so the answer and its timing are the same whether the
// address belongs to someone or not.
type AddressRequest struct {
	// Request is "reset" or "verify".
	Request string `json:"request"`
	// SealID binds Sealed; Sealed is the request (address and client), sealed.
	SealID uuid.UUID `json:"seal_id"`
	Sealed []byte    `json:"sealed"`
}

// Kind names the job's worker.
func (AddressRequest) Kind() string { return "identity_address_request" }

// sealedRequest is what AddressRequest seals.
type sealedRequest struct {
	Email     string `json:"email"`
	IP        string `json:"ip,omitempty"`
	UserAgent string `json:"user_agent,omitempty"`
	TraceID   string `json:"trace_id,omitempty"`
}

// enqueueLinkMail enqueues the mail of a link carrying token, in tx.
func (h *Handler) enqueueLinkMail(ctx context.Context, tx pgx.Tx, userID uuid.UUID, kind mailKind, token string, rc commands.RequestContext) error {
	sealID, err := uuid.NewV7()
	if err != nil {
		return fmt.Errorf("enqueue %s mail: %w", kind.link, err)
	}
	sealed, _, err := h.vault.Seal(sealID, []byte(token))
	if err != nil {
		return fmt.Errorf("enqueue %s mail: seal: %w", kind.link, err)
	}
	job := LinkMail{UserID: userID, Link: kind.link, SealID: sealID, Sealed: sealed, TraceID: rc.TraceID}
	if err := h.jobs.EnqueueTx(ctx, tx, job, commands.JobOptions{}); err != nil {
		return fmt.Errorf("enqueue %s mail: %w", kind.link, err)
	}
	return nil
}

// SendLinkMail is the LinkMail worker: it opens the token, looks the
// user's address up and mails the link. A user who no longer exists, or a
// token the vault cannot open, ends the job; a failing mail server is
// retried.
func (h *Handler) SendLinkMail(ctx context.Context, job LinkMail) error {
	kind, ok := mailKinds[job.Link]
	if !ok {
		return fmt.Errorf("link mail: unknown link %q: %w", job.Link, commands.ErrJobCancelled)
	}
	token, err := h.vault.Open(job.SealID, job.Sealed)
	if err != nil {
		return fmt.Errorf("link mail to user %s: %w: %w", job.UserID, err, commands.ErrJobCancelled)
	}
	to, err := readEmail(ctx, h.pool, job.UserID)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("link mail to user %s: no such user: %w", job.UserID, commands.ErrJobCancelled)
	}
	if err != nil {
		return err
	}
	if err := h.sendLink(ctx, to, commands.RequestContext{TraceID: job.TraceID}, kind, string(token)); err != nil {
		if errors.Is(err, commands.ErrInvalidMessage) {
			return fmt.Errorf("link mail to user %s: %w: %w", job.UserID, err, commands.ErrJobCancelled)
		}
		return fmt.Errorf("link mail to user %s: %w", job.UserID, err)
	}
	return nil
}

// enqueueAddressRequest enqueues a request on a public form naming email,
// in a transaction of its own.
func (h *Handler) enqueueAddressRequest(ctx context.Context, request, email string, rc commands.RequestContext) error {
	sealID, err := uuid.NewV7()
	if err != nil {
		return err
	}
	plain, err := json.Marshal(sealedRequest{Email: email, IP: rc.IPString(), UserAgent: rc.UserAgent, TraceID: rc.TraceID})
	if err != nil {
		return err
	}
	sealed, _, err := h.vault.Seal(sealID, plain)
	if err != nil {
		return fmt.Errorf("seal the request: %w", err)
	}
	return pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		return h.jobs.EnqueueTx(ctx, tx, AddressRequest{Request: request, SealID: sealID, Sealed: sealed}, commands.JobOptions{})
	})
}

// RunAddressRequest is the AddressRequest worker: it decides the request
// as the public form's handler would have, with the client it came from.
func (h *Handler) RunAddressRequest(ctx context.Context, job AddressRequest) error {
	plain, err := h.vault.Open(job.SealID, job.Sealed)
	if err != nil {
		return fmt.Errorf("address request: %w: %w", err, commands.ErrJobCancelled)
	}
	var r sealedRequest
	if err := json.Unmarshal(plain, &r); err != nil {
		return fmt.Errorf("address request: %w: %w", err, commands.ErrJobCancelled)
	}
	rc := commands.RequestContext{UserAgent: r.UserAgent, TraceID: r.TraceID}
	if ip, err := netip.ParseAddr(r.IP); err == nil {
		rc.IP = ip
	}
	switch job.Request {
	case "reset":
		return h.requestPasswordReset(ctx, r.Email, rc)
	case "verify":
		return h.requestEmailVerification(ctx, r.Email, rc)
	}
	return fmt.Errorf("address request: unknown request %q: %w", job.Request, commands.ErrJobCancelled)
}
