package mail

import (
	"fmt"
	netmail "net/mail"
	"net/textproto"
	"sort"
	"strings"

	gomail "github.com/wneessen/go-mail"

	"github.com/dashtam/dashtam/commands"
)

// reservedHeaders are the fields the Mailer writes itself; letting a caller
// set them would allow a spoofed sender, extra recipients or a broken MIME
// structure.
var reservedHeaders = map[string]bool{
	"From": true, "Sender": true, "To": true, "Cc": true, "Bcc": true,
	"Subject": true, "Date": true, "Message-Id": true, "Mime-Version": true,
	"Content-Type": true, "Content-Transfer-Encoding": true, "Content-Disposition": true,
	"Return-Path": true, "Received": true,
}

// buildMessage validates m and renders it as a go-mail message. Validation
// happens here, before any transport is touched, so that header injection is
// impossible whatever go-mail would have done with a stray CR or LF.
func buildMessage(from *netmail.Address, m commands.Message) (*gomail.Msg, error) {
	if strings.TrimSpace(m.To) == "" {
		return nil, invalid("no recipient")
	}
	// Checked before parsing: net/mail accepts folding whitespace (CRLF
	// followed by a space) inside an address.
	if hasControl(m.To) {
		return nil, invalid("recipient contains a control character such as CR or LF")
	}
	to, err := netmail.ParseAddress(m.To)
	if err != nil {
		return nil, invalid(fmt.Sprintf("parse recipient: %v", err))
	}
	if hasControl(m.Subject) {
		return nil, invalid("subject contains a control character such as CR or LF")
	}
	if m.TextBody == "" {
		return nil, invalid("empty text body")
	}

	names := make([]string, 0, len(m.Headers))
	for name := range m.Headers {
		names = append(names, name)
	}
	// Sorted so the rendered message does not depend on map order.
	sort.Strings(names)
	for _, name := range names {
		if !isFieldName(name) {
			return nil, invalid(fmt.Sprintf("header name %q is not a valid field name", name))
		}
		if reservedHeaders[textproto.CanonicalMIMEHeaderKey(name)] {
			return nil, invalid(fmt.Sprintf("header %q is set by the mailer", name))
		}
		if hasControl(m.Headers[name]) {
			return nil, invalid(fmt.Sprintf("header %q contains a control character such as CR or LF", name))
		}
	}

	// No default User-Agent: the mail need not advertise the library version.
	msg := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	msg.FromMailAddress(from)
	msg.ToMailAddress(to)
	msg.Subject(m.Subject)
	for _, name := range names {
		msg.SetGenHeader(gomail.Header(textproto.CanonicalMIMEHeaderKey(name)), m.Headers[name])
	}
	msg.SetBodyString(gomail.TypeTextPlain, m.TextBody)
	if m.HTMLBody != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTMLBody)
	}
	return msg, nil
}

func invalid(reason string) error {
	return fmt.Errorf("%w: %s", commands.ErrInvalidMessage, reason)
}

// hasControl reports ASCII control characters other than horizontal tab:
// CR and LF would end the header, and NUL or the others have no business in
// a header value either.
func hasControl(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 0x20 && c != '\t') || c == 0x7f {
			return true
		}
	}
	return false
}

// isFieldName reports whether s is an RFC 5322 field name: printable US-ASCII
// other than the colon.
func isFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}
