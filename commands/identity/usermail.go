package identity

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dashtam/dashtam/commands"
)

// userMailTemplates are the texts of commands.UserMail, by template name:
// a subject and a body, each with the params named in braces.
var userMailTemplates = map[string]struct{ subject, body string }{
	commands.MailReauthorizationRequired: {
		subject: "Your {provider} connection needs your attention",
		body: "Your {provider} connection \"{alias}\" can no longer reach {provider}: the authorization was refused or has ended.\n\n" +
			"Sign in to Dashtam and authorize the connection again to keep your accounts up to date.\n",
	},
	commands.MailWebhookDisabled: {
		subject: "A webhook endpoint of yours was disabled",
		body: "Dashtam stopped sending events to your webhook endpoint at {host} (id {webhook_id}): {reason_text}.\n\n" +
			"Deliveries that were waiting were cancelled. Once the endpoint works again, enable it with " +
			"PATCH /api/v1/webhooks/{webhook_id} {\"enabled\": true}; the change feed (GET /api/v1/transactions/sync) " +
			"lets you catch up on what you missed.\n",
	},
	commands.MailReauthorizationReminder: {
		subject: "Your {provider} connection ends soon",
		body: "The authorization of your {provider} connection \"{alias}\" ends at {deadline}.\n\n" +
			"Sign in to Dashtam and authorize the connection again before then to keep your accounts up to date.\n",
	},
}

// SendUserMail is the worker of commands.UserMail: it looks the user's
// address up now (a job carries none), renders the template and sends it.
// A user that no longer exists, or an unknown template, ends the job;
// a failing mail server is retried by the job queue.
func (h *Handler) SendUserMail(ctx context.Context, m commands.UserMail) error {
	tmpl, ok := userMailTemplates[m.Template]
	if !ok {
		return fmt.Errorf("user mail: unknown template %q: %w", m.Template, commands.ErrJobCancelled)
	}
	email, err := readEmail(ctx, h.pool, m.UserID)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("user mail to %s: no such user: %w", m.UserID, commands.ErrJobCancelled)
	}
	if err != nil {
		return err
	}
	render := func(s string) string {
		for k, v := range m.Params {
			if k == "deadline" {
				if t, err := time.Parse(time.RFC3339, v); err == nil {
					v = t.UTC().Format("Monday 2 January 2006, 15:04 UTC")
				}
			}
			s = strings.ReplaceAll(s, "{"+k+"}", v)
		}
		return s
	}
	msg := commands.Message{To: email, Subject: render(tmpl.subject), TextBody: render(tmpl.body)}
	if err := h.mailer.Send(ctx, msg); err != nil {
		if errors.Is(err, commands.ErrInvalidMessage) {
			return fmt.Errorf("user mail to %s: %w: %w", m.UserID, err, commands.ErrJobCancelled)
		}
		return fmt.Errorf("user mail to %s: %w", m.UserID, err)
	}
	return nil
}
