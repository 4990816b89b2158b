package commands

import (
	"context"
	"errors"

	"github.com/google/uuid"
)

// Message is one e-mail to one recipient as a use case composes it; the
// Mailer owns the sender address, the envelope, the Date and Message-ID and
// the MIME encoding, so handlers cannot get those wrong.
type Message struct {
	// To is the single recipient, a bare address or "Name <address>".
	To string
	// Subject is the subject line; it may be empty but never contains a line break.
	Subject string
	// TextBody is the plain-text body, required so that every client can show
	// the link a verification or reset mail carries.
	TextBody string
	// HTMLBody is an optional HTML alternative to TextBody.
	HTMLBody string
	// Headers are optional extra header fields (for example a trace id); they
	// cannot replace the fields the Mailer sets itself.
	Headers map[string]string
}

// ErrInvalidMessage is wrapped by Send when the message cannot be sent as
// given, so retrying it unchanged is pointless.
var ErrInvalidMessage = errors.New("commands: invalid mail message")

// Mailer delivers mail for the use cases (verification links, password
// resets); adapters/mail implements it over SMTP and as a file outbox.
type Mailer interface {
	// Send hands m to the mail transport and returns nil once the transport
	// has accepted it. It returns an error wrapping ErrInvalidMessage when m
	// is malformed (missing or unparsable recipient, empty TextBody, a
	// control character such as CR or LF in a header value, a malformed or
	// reserved header name) before anything is transmitted; an error
	// wrapping ctx.Err() when ctx ended first; and any other error when the
	// transport could not be reached or refused the message, in which case
	// it was not accepted and the caller may retry. No error ever contains
	// the transport's credentials.
	Send(ctx context.Context, m Message) error
}

// UserMail is a job that mails a user about their account: the worker
// (identity, which owns the addresses) looks the address up when it
// runs, so the job carries no address, and renders Template with Params.
// Templates and their params are listed where the worker renders them.
type UserMail struct {
	UserID   uuid.UUID         `json:"user_id"`
	Template string            `json:"template"`
	Params   map[string]string `json:"params,omitempty"`
}

// Kind names the job's worker.
func (UserMail) Kind() string { return "user_mail" }

// The templates of UserMail.
const (
	// MailReauthorizationRequired tells a user that a connection needs
	// authorising again. Params: alias, provider.
	MailReauthorizationRequired = "reauthorization_required"
	// MailReauthorizationReminder tells a user that a connection's
	// authorisation ends soon. Params: alias, provider, deadline (RFC 3339).
	MailReauthorizationReminder = "reauthorization_reminder"
	// MailWebhookDisabled tells a user that deliveries to a webhook
	// endpoint stopped. Params: host, webhook_id, reason (failing, gone),
	// reason_text (the reason in a sentence).
	MailWebhookDisabled = "webhook_disabled"
)
